"""Write notes (from `generate_notes`, or any list in the same schema) to disk.

Per split (train/dev/test) three files:
- `{split}.spacy`: a DocBin. `doc.ents` are the entities, `doc.cats` the
  note-level labels as floats, `doc.spans["sections"]` the sections labelled
  by canonical name. ConText flags are in `doc.user_data` under the keys that
  spaCy uses for Span extensions, `("._.", "is_negated", start_char, end_char)`
  (also `is_historical`, `is_family`, `is_hypothetical`), so once those Span
  extensions exist (medspacy's ConText registers them, or
  `Span.set_extension("is_negated", default=False)`), `ent._.is_negated`
  reads them. `doc.user_data["note_id"]` and `["note_type"]` identify the note;
  `doc.user_data["clinlong_qa"]` holds its QA pairs (the SQuAD-style dicts of
  `note["qas"]`), the gold that `clinlong_qa` trains on.
- `{split}.jsonl`: the note dicts, one per line.
- `qa_{split}.json`: SQuAD v2.0 JSON.
With `qa_excerpts`, also `{split}_qa_excerpts.spacy` for train and dev: each
note cut to its answer lines and their headers (`qa.qa_excerpt`), QA
gold only, for training a QA model quickly before reading whole notes.
"""

import random
from pathlib import Path
from typing import Any, Dict, Iterable, List, Sequence, Tuple, Union

import srsly

from .qa import qa_excerpt

SPLIT_NAMES: Tuple[str, ...] = ("train", "dev", "test")
CONTEXT_FLAGS: Tuple[Tuple[str, str], ...] = (
    ("negated", "is_negated"),
    ("historical", "is_historical"),
    ("family", "is_family"),
    ("hypothetical", "is_hypothetical"),
)


def split_notes(notes: Sequence[Dict[str, Any]], splits: Sequence[float]) -> Dict[str, List[Dict[str, Any]]]:
    """Cut notes, in order, into train/dev/test by fractions.

    notes (Sequence[Dict[str, Any]]): The notes.
    splits (Sequence[float]): Three non-negative fractions summing to 1.
    RETURNS (Dict[str, List[Dict[str, Any]]]): Split name -> notes.
    """
    if len(splits) != 3 or any(f < 0 for f in splits) or abs(sum(splits) - 1.0) > 1e-6:
        raise ValueError(f"splits must be three non-negative fractions summing to 1, got {tuple(splits)}")
    n = len(notes)
    cut1 = round(n * splits[0])
    cut2 = min(n, cut1 + round(n * splits[1]))
    return {"train": list(notes[:cut1]), "dev": list(notes[cut1:cut2]), "test": list(notes[cut2:])}


def note_to_doc(nlp, note: Dict[str, Any]):
    """Tokenize a note and attach entities, cats, sections and ConText flags.

    nlp (Language): A pipeline whose tokenizer is used (e.g. `spacy.blank("en")`).
    note (Dict[str, Any]): A note dict.
    RETURNS (Doc): The annotated Doc.
    """
    doc = nlp.make_doc(note["text"])
    ents = []
    for ent in note["entities"]:
        span = doc.char_span(ent["start"], ent["end"], label=ent["label"])
        if span is None:
            # Offsets and ids only: the note text must not reach error messages.
            raise ValueError(
                f"Entity {ent['start']}-{ent['end']} of note {note['id']} is not on token boundaries"
            )
        ents.append(span)
        for key, attr in CONTEXT_FLAGS:
            doc.user_data[("._.", attr, ent["start"], ent["end"])] = bool(ent[key])
    doc.ents = ents
    sections = []
    for sec in note["sections"]:
        span = doc.char_span(sec["start"], sec["end"], label=sec["name"])
        if span is None:
            raise ValueError(
                f"Section {sec['start']}-{sec['end']} of note {note['id']} is not on token boundaries"
            )
        sections.append(span)
    doc.spans["sections"] = sections
    doc.cats = {label: float(value) for label, value in note["cats"].items()}
    doc.user_data["note_id"] = note["id"]
    doc.user_data["note_type"] = note["note_type"]
    # SQuAD-style QA gold (id, question, answers, is_impossible) for clinlong_qa.
    doc.user_data["clinlong_qa"] = [dict(qa) for qa in note.get("qas", [])]
    return doc


def squad_json(notes: Iterable[Dict[str, Any]]) -> Dict[str, Any]:
    """Convert notes to a SQuAD v2.0 dataset (one article per note).

    notes (Iterable[Dict[str, Any]]): The notes.
    RETURNS (Dict[str, Any]): {"version": "v2.0", "data": [...]}.
    """
    data = []
    for note in notes:
        qas = [
            {
                "id": qa["id"],
                "question": qa["question"],
                "answers": list(qa["answers"]),
                "is_impossible": bool(qa["is_impossible"]),
            }
            for qa in note["qas"]
        ]
        data.append({"title": note["id"], "paragraphs": [{"context": note["text"], "qas": qas}]})
    return {"version": "v2.0", "data": data}


def write_corpus(
    notes: Sequence[Dict[str, Any]],
    output_dir: Union[str, Path],
    *,
    splits: Sequence[float] = (0.8, 0.1, 0.1),
    lang: str = "en",
    qa_excerpts: bool = False,
) -> Dict[str, int]:
    """Write train/dev/test as DocBin, JSONL and SQuAD v2.0 files.

    notes (Sequence[Dict[str, Any]]): Notes from `generate_notes` (split in order).
    output_dir (Union[str, Path]): Directory to write; created if missing.
    splits (Sequence[float]): Fractions for train, dev and test.
    lang (str): Language of the blank tokenizer (`blank_tokenizer(lang)`).
    qa_excerpts (bool): Also write `train_qa_excerpts.spacy` and
        `dev_qa_excerpts.spacy` (each excerpt's extra line chosen by its note id).
    RETURNS (Dict[str, int]): Split name -> number of notes written.
    """
    from spacy.tokens import DocBin

    from ..blank import blank_tokenizer

    parts = split_notes(notes, splits)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    nlp = blank_tokenizer(lang)
    for name in SPLIT_NAMES:
        docbin = DocBin(store_user_data=True)
        for note in parts[name]:
            docbin.add(note_to_doc(nlp, note))
        docbin.to_disk(output_dir / f"{name}.spacy")
        srsly.write_jsonl(output_dir / f"{name}.jsonl", parts[name])
        srsly.write_json(output_dir / f"qa_{name}.json", squad_json(parts[name]))
        if qa_excerpts and name != "test":
            excerpts = [qa_excerpt(note, random.Random(note["id"])) for note in parts[name]]
            DocBin(docs=[note_to_doc(nlp, note) for note in excerpts], store_user_data=True).to_disk(
                output_dir / f"{name}_qa_excerpts.spacy"
            )
    return {name: len(parts[name]) for name in SPLIT_NAMES}
