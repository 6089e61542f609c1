"""NOTE_NLP rows from an annotated doc: the OMOP CDM v5.4 mapping, and the package's note results.

`note_nlp_rows` turns the JSON view of a doc (`doc_to_json`) into NOTE_NLP rows, one per
entity: `lexical_variant` the entity's text, `snippet` a window of text around it, `offset`
its first character, `section_concept_id` its medspaCy section through a map (0 where
unmapped), `note_nlp_concept_id` its term (lowercased), else its label, through a map (0
otherwise), and ConText's flags as `term_exists` ("n" when negated, hypothetical, family or
uncertain), `term_temporal` ("past" when historical) and `term_modifiers` (`key=value`
pairs, the label last). `note_result_rows` gives a doc's note labels and answers.
"""

import csv
import json
import re
from datetime import date, datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any, Dict, List, Mapping, Optional, Union

from ..about import __version__

#: The ConText flags of `doc_to_json` (is_negated ... without "is_"), in term_modifiers' order.
FLAGS = ("negated", "historical", "family", "hypothetical", "uncertain")
#: An entity with any of these flags is not asserted to exist in the patient.
NOT_PRESENT = ("negated", "hypothetical", "family", "uncertain")
_EMPTY: Mapping[str, int] = MappingProxyType({})
_SPACES = re.compile(r"\s+")


def clip(text: str, limit: int) -> str:
    # PostgreSQL text cannot hold NUL (an escaped \u0000 in JSONL notes would fail the whole shard).
    return text.replace("\x00", "")[:limit]


def nlp_system_name(meta: Mapping[str, Any]) -> str:
    """RETURNS (str): NOTE_NLP's nlp_system for a pipeline's meta: "spacy-clinlong 0.1.0: en_x 1.0.0"."""
    name = f"{meta.get('lang', 'xx')}_{meta.get('name', 'pipeline')}"
    return f"spacy-clinlong {__version__}: {name} {meta.get('version', '0.0.0')}"[:250]


def read_concepts(path: Union[str, Path]) -> Dict[str, int]:
    """Read a concept map (section name, label or term to an OMOP concept id).

    path (Union[str, Path]): A .json object {"name": id}, or a .csv / .tsv of rows name,id (a
        header row whose id is not a number is skipped).
    RETURNS (Dict[str, int]): The map.
    """
    path = Path(path)
    if path.suffix.lower() == ".json":
        pairs = list(json.loads(path.read_text(encoding="utf-8")).items())
    else:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        with open(path, newline="", encoding="utf-8") as handle:
            pairs = [tuple(row) for row in csv.reader(handle, delimiter=delimiter) if row]
        if pairs and len(pairs[0]) == 2 and not str(pairs[0][1]).strip().lstrip("-").isdigit():
            pairs = pairs[1:]
    out: Dict[str, int] = {}
    for number, pair in enumerate(pairs, start=1):
        value = pair[1] if len(pair) == 2 else None
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{path}: entry {number} is not a name and an integer concept id")
        out[str(pair[0]).strip()] = value
    if not out:
        raise ValueError(f"{path}: holds no entries (name, integer concept id)")
    return out


def snippet_for(text: str, start: int, end: int, window: int) -> str:
    """RETURNS (str): At most 250 characters around text[start:end], whitespace collapsed, the
    entity kept whole where it fits and the context trimmed evenly."""
    entity = _SPACES.sub(" ", text[start:end]).strip()
    left = _SPACES.sub(" ", text[max(0, start - window) : start]).lstrip()
    right = _SPACES.sub(" ", text[end : end + window]).rstrip()
    room = 250 - len(entity)
    if room <= 0:
        return entity[:250]
    keep_left = min(len(left), max(room // 2, room - len(right)))
    keep_right = min(len(right), room - keep_left)
    return (left[len(left) - keep_left :] + entity + right[:keep_right]).strip()


def _section_of(ent: Mapping[str, Any], sections: List[Mapping[str, Any]]) -> Optional[str]:
    if "section" in ent:
        return ent["section"]
    for section in reversed(sections):
        if section["start"] <= ent["start"] < section["end"]:
            return section["category"]
    return None


def note_nlp_rows(
    doc_json: Mapping[str, Any],
    note_id: int,
    *,
    nlp_system: str,
    nlp_date: date,
    nlp_datetime: Optional[datetime],
    section_concepts: Mapping[str, int] = _EMPTY,
    concepts: Mapping[str, int] = _EMPTY,
    snippet_window: int = 50,
    text: Optional[str] = None,
) -> List[Dict[str, Any]]:
    """Map a doc's entities to NOTE_NLP rows (without note_nlp_id: the writer allocates it).

    doc_json (Mapping[str, Any]): The JSON view of the doc (`doc_to_json`).
    note_id (int): NOTE.note_id of the note.
    nlp_system (str): e.g. `nlp_system_name(nlp.meta)`; cut to 250 characters.
    nlp_date (date): When the pipeline ran.
    nlp_datetime (Optional[datetime]): The same with its time; an aware one is stored as UTC.
    section_concepts (Mapping[str, int]): medspaCy section name to section_concept_id (else 0).
    concepts (Mapping[str, int]): Lowercase term, else label, to note_nlp_concept_id (else 0).
    snippet_window (int): Characters of context on each side of the entity in the snippet.
    text (Optional[str]): The note's text, for snippets (else doc_json["text"]; without either
        the snippet is the entity alone: the JSON view carries no text).
    RETURNS (List[Dict[str, Any]]): One row per entity, keyed by NOTE_NLP's columns.
    """
    if text is None:
        text = doc_json.get("text")
    if nlp_datetime is not None and nlp_datetime.tzinfo is not None:
        # PostgreSQL's timestamp (without time zone) silently drops an offset.
        nlp_datetime = nlp_datetime.astimezone(timezone.utc).replace(tzinfo=None)
    sections = doc_json.get("sections") or []
    rows = []
    for ent in doc_json.get("entities", []):
        start, end, label = ent["start"], ent["end"], ent["label"]
        term = ent.get("text") or (text[start:end] if text is not None else "")
        flags = {flag: ent[flag] for flag in FLAGS if ent.get(flag) is not None}
        modifiers = [f"{flag}={str(value).lower()}" for flag, value in flags.items()] + [f"label={label}"]
        concept = concepts.get(term.lower(), concepts.get(label, 0))
        section = _section_of(ent, sections)
        rows.append(
            {
                "note_id": note_id,
                "section_concept_id": section_concepts.get(section, 0) if section else 0,
                "snippet": clip(
                    snippet_for(text, start, end, snippet_window)
                    if text is not None
                    else _SPACES.sub(" ", term).strip(),
                    250,
                ),
                "offset": str(start),
                "lexical_variant": clip(term, 250),
                "note_nlp_concept_id": concept,
                "note_nlp_source_concept_id": 0,
                "nlp_system": nlp_system[:250],
                "nlp_date": nlp_date,
                "nlp_datetime": nlp_datetime,
                "term_exists": "n" if any(flags.get(flag) for flag in NOT_PRESENT) else "y",
                "term_temporal": "past" if flags.get("historical") else None,
                "term_modifiers": ",".join(modifiers)[:2000],
            }
        )
    return rows


def note_result_rows(doc_json: Mapping[str, Any], note_id: int) -> List[Dict[str, Any]]:
    """Map a doc's note labels and answers to `clinlong_note_results` rows.

    doc_json (Mapping[str, Any]): The JSON view of the doc (`doc_to_json`).
    note_id (int): NOTE.note_id of the note.
    RETURNS (List[Dict[str, Any]]): One row per label (kind "cat", value its score) and per
        question (kind "answer"; value, offsets and text None where it has no answer).
    """
    rows = []
    empty = {"answer_start": None, "answer_end": None, "answer_text": None}
    for label, score in (doc_json.get("cats") or {}).items():
        rows.append({"note_id": note_id, "kind": "cat", "name": label, "value": float(score), **empty})
    for item in doc_json.get("answers") or []:
        answer = item.get("answer")
        row = {"note_id": note_id, "kind": "answer", "name": item["question"], "value": None, **empty}
        if answer is not None:
            row.update(
                value=answer.get("score"),
                answer_start=answer["start"],
                answer_end=answer["end"],
                answer_text=clip(answer.get("text") or "", 250),
            )
        rows.append(row)
    return rows
