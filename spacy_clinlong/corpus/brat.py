"""BRAT standoff (`.txt` + `.ann`, e.g. n2c2 2018 track 2, MACCROBAT) to Docs.

What a Doc gets:
- `doc.spans[span_key]` (default "brat"): every text-bound annotation (T
  line), overlapping ones included. A discontinuous entity `T1 Type 10 20;25 30`
  becomes one span per fragment, all with the entity's label, so no token
  between the fragments is labelled; the grouping is kept in
  `doc.user_data["brat_entities"]`: `[{"id": "T1", "label": "Type",
  "fragments": [[10, 20], [25, 30]]}, ...]` (every converted entity, in order,
  with the annotated offsets, whitespace-trimmed).
- `doc.ents`: the longest non-overlapping subset of those spans (greedy by
  length in tokens, then position).
- Attributes (A/M lines) on an entity, or on an event whose trigger it is:
  negation-like ones (Negation, Negated, POLARITY) as
  `doc.user_data[("._.", "is_negated", start, end)]`, like the ConText flags of
  the synthetic corpus (POLARITY=NEG is True, other values False); the others,
  and POLARITY's raw value, as `("brat_attr", name, start, end)` -> value.
  Set on each fragment span's offsets (after any expansion to token
  boundaries, so `span._.is_negated` finds them).
- Relations (R lines): `doc.user_data["brat_relations"]`, `[{"id", "type",
  "args": [{"role", "id", "start", "end"}]}]`, event arguments resolved to
  their trigger entity; start/end cover the entity's spans. Events (E) are resolved and counted; equivalences (*),
  notes (#) and normalizations (N) are counted and not kept.
- `doc.user_data["note_id"]`: the file stem.
"""

import re
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc

from .convert_utils import (
    UNDECODABLE,
    attribute_items,
    decode,
    decode_lines,
    make_span,
    normalize_ws,
    read_input,
    set_spans,
    text_problem,
    trim,
)
from .report import ConversionReport

Fragments = List[Tuple[int, int]]


def find_files(path: Union[str, Path], suffix: str) -> List[Path]:
    """List the files with a suffix: the path itself, or all under a directory.

    path (Union[str, Path]): A file or a directory (searched recursively).
    suffix (str): e.g. ".txt".
    RETURNS (List[Path]): Sorted paths.
    """
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.rglob(f"*{suffix}") if p.is_file())
    return [path] if path.suffix == suffix else []


def _parse_entity(line: str) -> Tuple[str, str, Fragments, Optional[str]]:
    """Split `T1<TAB>Type 10 20;25 30<TAB>text`; ValueError if malformed."""
    parts = line.split("\t")
    if len(parts) < 2:
        raise ValueError("missing fields")
    label, _, offsets = parts[1].partition(" ")
    fragments = []
    for frag in offsets.split(";"):
        start, end = (int(x) for x in frag.split())
        fragments.append((start, end))
    if not label or not fragments:
        raise ValueError("missing label or offsets")
    return parts[0], label, fragments, parts[2] if len(parts) > 2 else None


def parse_ann(
    text: str, ann_path: Path, report: ConversionReport
) -> Tuple[Dict[str, Tuple[str, Fragments, int]], List[Tuple[int, str]]]:
    """Read the T lines of an .ann file (checked against the text) and keep the rest.

    text (str): The .txt content.
    ann_path (Path): The .ann file.
    report (ConversionReport): Where problems are recorded.
    RETURNS (Tuple[Dict, List]): Entity id -> (label, trimmed fragments, line);
        and the other lines as (line number, line).
    """
    entities: Dict[str, Tuple[str, Fragments, int]] = {}
    others: List[Tuple[int, str]] = []
    for lineno, line in decode_lines(ann_path.read_bytes()):
        if line is None:
            report.skip(UNDECODABLE, ann_path, lineno)
            continue
        if not line.strip():
            continue
        if not line.startswith("T"):
            others.append((lineno, line))
            continue
        try:
            ann_id, label, fragments, ann_text = _parse_entity(line)
        except ValueError:
            report.skip("malformed_line", ann_path, lineno)
            continue
        where = f"{ann_id} " + ";".join(f"{s}-{e}" for s, e in fragments)
        if any(not (0 <= s < e <= len(text)) for s, e in fragments):
            report.skip("offset_out_of_range", ann_path, lineno, f"{where}, text length {len(text)}")
            continue
        covered = " ".join(text[s:e] for s, e in fragments)
        if ann_text is not None and normalize_ws(ann_text) != normalize_ws(covered):
            report.skip("text_mismatch", ann_path, lineno, where)
            continue
        trimmed = [trim(text, s, e) for s, e in fragments]
        trimmed = [(s, e) for s, e in trimmed if s < e]
        if not trimmed:
            report.skip("empty_span", ann_path, lineno, where)
            continue
        if trimmed != fragments or (ann_text is not None and ann_text != ann_text.strip()):
            report.count("trimmed")
        if len(fragments) > 1:
            report.count("discontinuous")
        entities[ann_id] = (label, trimmed, lineno)
    return entities, others


def _apply_others(
    doc: Doc,
    entities: Dict[str, Tuple[str, Fragments, int]],
    others: List[Tuple[int, str]],
    ann_path: Path,
    report: ConversionReport,
) -> None:
    """Resolve events, then put attributes and relations in doc.user_data."""
    triggers: Dict[str, str] = {}
    rest = []
    for lineno, line in others:
        fields = line.split("\t")
        # `E1<TAB>Type:T1 Role:T2`: the trigger is the first argument.
        first_arg = fields[1].split()[0] if len(fields) > 1 and fields[1].split() else ""
        if line.startswith("E") and ":" in first_arg:
            triggers[fields[0]] = first_arg.split(":", 1)[1]
            report.count("events")
        else:
            rest.append((lineno, line, fields))
    relations = []
    for lineno, line, fields in rest:
        kind = line[:1]
        if kind in ("A", "M") and len(fields) > 1 and len(fields[1].split()) >= 2:
            name, target, *value = fields[1].split()
            target = triggers.get(target, target)
            if target not in entities:
                report.skip("dangling_reference", ann_path, lineno, _ann_id(fields[0]))
                continue
            for start, end in entities[target][1]:
                for key, flag in attribute_items(name, value[0] if value else None, start, end):
                    doc.user_data[key] = flag
            report.count("attributes")
        elif kind == "R" and len(fields) > 1 and len(fields[1].split()) >= 3:
            rel_type, *args = fields[1].split()
            resolved = []
            for arg in args:
                role, _, ref = arg.partition(":")
                ref = triggers.get(ref, ref)
                if ref not in entities:
                    break
                frags = entities[ref][1]
                resolved.append({"role": role, "id": ref, "start": frags[0][0], "end": frags[-1][1]})
            if len(resolved) != len(args):
                report.skip("dangling_reference", ann_path, lineno, _ann_id(fields[0]))
                continue
            relations.append({"id": fields[0], "type": rel_type, "args": resolved})
            report.count("relations")
        elif kind in ("*", "#", "N"):
            report.count(
                {"*": "equivalences_ignored", "#": "notes_ignored", "N": "normalizations_ignored"}[kind]
            )
        else:
            report.skip("malformed_line", ann_path, lineno)
    doc.user_data["brat_relations"] = relations


def _ann_id(field: str) -> str:
    """RETURNS (str): An annotation id (T1, A3, R12 ...) as the report may show it, or "" where
    a malformed line has something else (possibly note text) in that place."""
    return field if re.fullmatch(r"[TEARMN#*]\d{1,9}", field) else ""


def brat_doc(
    nlp: Language, txt_path: Path, report: ConversionReport, *, span_key: str = "brat"
) -> Optional[Doc]:
    """Convert one `.txt` and its `.ann` to a Doc.

    nlp (Language): Its tokenizer makes the Doc.
    txt_path (Path): The text file; the .ann is beside it with the same stem.
    report (ConversionReport): Where counts and problems are recorded.
    span_key (str): The span group that gets every entity.
    RETURNS (Optional[Doc]): The Doc, or None if the file was skipped.
    """
    ann_path = txt_path.with_suffix(".ann")
    if not ann_path.exists():
        report.skip("missing_ann", txt_path, None, f"no {ann_path.name}")
        return None
    # Bytes, not text mode: BRAT offsets count "\r" characters too.
    data = read_input(txt_path, report)
    if data is None or read_input(ann_path, report) is None:
        return None
    text = decode(data, txt_path, report)
    if text is None:
        return None
    problem = text_problem(text, nlp.max_length)
    if problem is not None:
        report.skip(problem[0], txt_path, None, problem[1])
        return None
    entities, others = parse_ann(text, ann_path, report)
    doc = nlp.make_doc(text)
    spans, records, aligned = [], [], {}
    for ann_id, (label, fragments, lineno) in entities.items():
        frag_spans = [make_span(doc, s, e, label, report, ann_path, lineno, ann_id) for s, e in fragments]
        if any(span is None for span in frag_spans):
            continue
        spans.extend(frag_spans)
        records.append({"id": ann_id, "label": label, "fragments": [list(f) for f in fragments]})
        # Attribute keys use the spans' own offsets, so span._.is_negated finds them after expansion.
        aligned[ann_id] = (label, [(sp.start_char, sp.end_char) for sp in frag_spans], lineno)
    set_spans(doc, spans, span_key, report)
    report.count("brat_entities", len(records))
    doc.user_data["brat_entities"] = records
    _apply_others(doc, aligned, others, ann_path, report)
    doc.user_data["note_id"] = txt_path.stem
    report.count("docs")
    return doc


def iter_brat_docs(
    nlp: Language, path: Union[str, Path], report: ConversionReport, *, span_key: str = "brat"
) -> Iterator[Doc]:
    """Convert a BRAT directory (or one .txt file) to Docs, one per .txt.

    nlp (Language): Its tokenizer makes the Docs.
    path (Union[str, Path]): A directory, searched recursively, or a .txt file.
    report (ConversionReport): Where counts and problems are recorded.
    span_key (str): The span group that gets every entity.
    YIELDS (Doc): The converted Docs.
    """
    for txt_path in find_files(path, ".txt"):
        doc = brat_doc(nlp, txt_path, report, span_key=span_key)
        if doc is not None:
            yield doc
