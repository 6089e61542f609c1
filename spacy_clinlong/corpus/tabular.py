"""JSONL and CSV with text and labels to Docs.

JSONL, one object per line, with a text field (default "text"), an optional
"id", and any of:
- `"cats": {"A": 1, "B": 0}`, `"label": "A"` or `"labels": ["A", "B"]`
  (or the key given as `labels_field`): note-level labels;
- `"entities"` or `"spans"`: `[[start, end, label], ...]` or
  `[{"start", "end", "label"}, ...]` character offsets.

CSV with a header, a text column (default "text"), an optional "id" column,
and either a label column (`labels_field`; by default "label" or "labels" if
present; several labels separated by "|" or ";") or one 0/1 column per label
(every column, other than text and id, whose values are all 0/1/true/false).

`doc.cats` covers the full label set, as floats: the labels given, or else
every label seen in the file (0.0 where absent). Spans go to
`doc.spans[span_key]` (default "sc") and the longest non-overlapping ones to
`doc.ents`. `doc.user_data["note_id"]` keeps the id.

Both are read through the note reader's line and row layers (`spacy_clinlong.io`),
streamed: a file is read again rather than held (once more for the label set when
none is given, and for the 0/1 columns), so a large table costs the memory of a row.
"""

import re
from functools import partial
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Union

from spacy.language import Language
from spacy.tokens import Doc

from ..io import csv_header, csv_rows, has_surrogates, id_problem, jsonl_lines
from .convert_utils import (
    MALFORMED_CSV,
    MISSING_TEXT,
    UNDECODABLE,
    make_span,
    set_spans,
    text_problem,
)
from .report import ConversionReport

BINARY_VALUES = {"0", "1", "0.0", "1.0", "true", "false", ""}
Record = Dict[str, Any]  # file, line, text, cats, spans (or None), id


def _spans(raw: Any, path: Path, line: int, report: ConversionReport) -> Optional[List[tuple]]:
    if raw is None:
        return None
    spans = []
    for item in raw if isinstance(raw, list) else [raw]:
        if isinstance(item, dict):
            item = (item.get("start"), item.get("end"), item.get("label"))
        if (
            isinstance(item, (list, tuple))
            and len(item) == 3
            and all(isinstance(x, int) for x in item[:2])
            and isinstance(item[2], str)
            and not has_surrogates(item[2])
        ):
            spans.append(tuple(item))
        else:
            report.skip("malformed_span", path, line)
    return spans


def _label(value: Any) -> str:
    # Not str() of a list or dict: a label is a scalar, and a deeply nested one would overflow repr.
    if isinstance(value, (dict, list)):
        raise TypeError("label is not a scalar")
    return str(value)


def _labels(obj: Dict[str, Any], labels_field: Optional[str]) -> Dict[str, float]:
    if labels_field is None:
        if isinstance(obj.get("cats"), dict):
            return {str(k): float(v) for k, v in obj["cats"].items()}
        labels_field = "labels" if "labels" in obj else "label"
    value = obj.get(labels_field)
    if isinstance(value, dict):
        return {str(k): float(v) for k, v in value.items()}
    if isinstance(value, str):
        value = [value] if value else []
    return {_label(v): 1.0 for v in value} if isinstance(value, list) else {}


def read_jsonl(
    path: Path,
    report: ConversionReport,
    *,
    text_field: str = "text",
    labels_field: Optional[str] = None,
    max_length: int = 1_000_000,
) -> Iterator[Record]:
    """Read a JSONL file as records, line by line; bad lines are reported and skipped.

    Bad records get the shared reasons (`spacy_clinlong.io.REASONS`), in
    annotate's order: invalid_json, undecodable or invalid_id (the id),
    missing_text, then undecodable, empty or too_long (the text).

    path (Path): The file.
    report (ConversionReport): Where problems are recorded.
    text_field (str): The key holding the text.
    labels_field (Optional[str]): The key holding the labels (default: cats, labels or label).
    max_length (int): The longest text kept (`nlp.max_length`).
    YIELDS (Record): One record per good line.
    """
    for item in jsonl_lines(path):
        lineno, obj = item.line, item.obj
        if obj is None:
            report.skip(item.reason, path, lineno, item.detail or "")
            continue
        if item.bad_bytes:
            # A training record with a mangled byte anywhere (a label, a span) would teach
            # the wrong thing: the whole line is skipped, as before the shared reader.
            report.skip(UNDECODABLE, path, lineno, "not UTF-8")
            continue
        reason = id_problem(obj.get("id"))
        if reason is not None:
            report.skip(reason, path, lineno, "field 'id'")
            continue
        text = obj.get(text_field)
        if not isinstance(text, str):
            report.skip(MISSING_TEXT, path, lineno, f"field {text_field!r}")
            continue
        problem = text_problem(text, max_length)
        if problem is not None:
            report.skip(problem[0], path, lineno, problem[1])
            continue
        try:
            cats = _labels(obj, labels_field)
        except (TypeError, ValueError, OverflowError):
            report.skip("malformed_labels", path, lineno)
            continue
        if any(has_surrogates(label) for label in cats):
            report.skip(UNDECODABLE, path, lineno, "labels")
            continue
        raw_spans = obj.get("entities", obj.get("spans"))
        yield {
            "file": path,
            "line": lineno,
            "text": text,
            "cats": cats,
            "spans": _spans(raw_spans, path, lineno, report),
            "id": obj.get("id"),
        }


def read_csv(
    path: Path,
    report: ConversionReport,
    *,
    text_field: str = "text",
    labels_field: Optional[str] = None,
    id_field: str = "id",
    max_length: int = 1_000_000,
) -> Iterator[Record]:
    """Read a CSV file as records, row by row; bad rows are reported and skipped.

    Rows are parsed strictly, as annotate parses them (`spacy_clinlong.io.csv_rows`):
    a row csv cannot parse is reported with the lines it took, and the rest of a
    multi-line note whose quote it left open does not pass for a row. Bad rows get
    the shared reasons (`spacy_clinlong.io.REASONS`): malformed_csv (unparsable,
    or not as many cells as the header), undecodable, empty or too_long.

    path (Path): The file.
    report (ConversionReport): Where problems are recorded.
    text_field (str): The text column.
    labels_field (Optional[str]): The label column (multi-label split on | or ;);
        default "label"/"labels" if present, else the 0/1 columns.
    id_field (str): The id column, if present.
    max_length (int): The longest text kept (`nlp.max_length`).
    YIELDS (Record): One record per good row.
    """
    header, header_bytes = csv_header(path)
    if text_field not in header:
        report.skip("missing_text_field", path, 1, f"no column {text_field!r}")
        return
    if labels_field is None:
        labels_field = next((c for c in ("labels", "label") if c in header), None)
    if labels_field is not None and labels_field not in header:
        report.skip("missing_labels_field", path, 1, f"no column {labels_field!r}")
        return
    rows = partial(csv_rows, path, columns=len(header), offset=header_bytes, line=2)  # a fresh pass per call
    ti, li = header.index(text_field), header.index(labels_field) if labels_field else None
    ii = header.index(id_field) if id_field in header else None
    label_cols = [] if labels_field else _binary_columns(header, rows(), (text_field, id_field))
    for i in [i for i in label_cols if has_surrogates(header[i])]:
        # A label no Doc can hold; the column is dropped, not the file.
        report.skip(UNDECODABLE, path, 1, f"column {i + 1}")
        label_cols.remove(i)
    for row in rows():
        lineno, cells = row.line, row.cells
        if cells is None:
            lost = f"; lines {row.line}-{row.last_line} lost" if row.last_line > row.line else ""
            report.skip(MALFORMED_CSV, path, lineno, f"{row.error}{lost}")
            continue
        if any(has_surrogates(cell) for cell in cells):
            report.skip(UNDECODABLE, path, lineno)
            continue
        if len(cells) != len(header):
            report.skip(MALFORMED_CSV, path, lineno, f"{len(cells)} columns, header has {len(header)}")
            continue
        problem = text_problem(cells[ti], max_length)
        if problem is not None:
            report.skip(problem[0], path, lineno, problem[1])
            continue
        if li is not None:
            cats = {lab.strip(): 1.0 for lab in re.split(r"[|;]", cells[li]) if lab.strip()}
        else:
            cats = {header[i]: float(cells[i].strip().lower() in ("1", "1.0", "true")) for i in label_cols}
        yield {
            "file": path,
            "line": lineno,
            "text": cells[ti],
            "cats": cats,
            "spans": None,
            "id": cells[ii] if ii is not None else None,
        }


def _binary_columns(header: List[str], rows: Iterable, exclude: Sequence[str]) -> List[int]:
    """RETURNS (List[int]): The columns, other than `exclude`, whose values in every parsed row
    are 0/1/true/false (or empty): one label each, when the file has no label column."""
    candidates = [i for i, col in enumerate(header) if col not in exclude]
    for row in rows:
        if row.cells is not None:
            candidates = [
                i for i in candidates if len(row.cells) <= i or row.cells[i].strip().lower() in BINARY_VALUES
            ]
            if not candidates:
                break
    return candidates


def records_to_docs(
    nlp: Language,
    records: Iterable[Record],
    report: ConversionReport,
    *,
    labels: Optional[Sequence[str]] = None,
    span_key: str = "sc",
) -> Iterator[Doc]:
    """Make Docs from parsed records, with cats over the full label set.

    nlp (Language): Its tokenizer makes the Docs.
    records (Iterable[Record]): From `read_jsonl` or `read_csv`.
    report (ConversionReport): Where counts and problems are recorded.
    labels (Optional[Sequence[str]]): The label set; None: all labels seen
        (the records are then held in memory, to find them first).
    span_key (str): The span group that gets every span.
    YIELDS (Doc): The converted Docs.
    """
    if not labels:
        records = list(records)
        labels = sorted({lab for rec in records for lab in rec["cats"]})
    for rec in records:
        doc = nlp.make_doc(rec["text"])
        if labels:
            doc.cats = {lab: float(rec["cats"].get(lab, 0.0)) for lab in labels}
        if rec["spans"] is not None:
            spans = [
                make_span(doc, s, e, lab, report, rec["file"], rec["line"]) for s, e, lab in rec["spans"]
            ]
            set_spans(doc, [s for s in spans if s is not None], span_key, report)
        if rec["id"] is not None:
            doc.user_data["note_id"] = str(rec["id"])
        report.count("docs")
        yield doc


def iter_tabular_docs(
    nlp: Language,
    path: Union[str, Path],
    report: ConversionReport,
    *,
    fmt: str,
    text_field: str = "text",
    labels_field: Optional[str] = None,
    id_field: str = "id",
    labels: Optional[Sequence[str]] = None,
    span_key: str = "sc",
) -> Iterator[Doc]:
    """Convert a JSONL or CSV file to Docs, streamed.

    nlp (Language): Its tokenizer makes the Docs.
    path (Union[str, Path]): The file.
    report (ConversionReport): Where counts and problems are recorded.
    fmt (str): "jsonl" or "csv".
    text_field (str): The text key or column.
    labels_field (Optional[str]): The labels key or column.
    id_field (str): The id column (CSV; JSONL uses "id").
    labels (Optional[Sequence[str]]): The label set; default: all labels seen in the file
        (found by reading it once before the Docs are made).
    span_key (str): The span group that gets every span (JSONL).
    YIELDS (Doc): The converted Docs.
    """
    path = Path(path)
    if fmt == "jsonl":
        read = partial(
            read_jsonl, path, text_field=text_field, labels_field=labels_field, max_length=nlp.max_length
        )
    elif fmt == "csv":
        read = partial(
            read_csv,
            path,
            text_field=text_field,
            labels_field=labels_field,
            id_field=id_field,
            max_length=nlp.max_length,
        )
    else:
        raise ValueError(f"fmt must be 'jsonl' or 'csv', got {fmt!r}")
    if not labels:
        # Every Doc's cats cover the labels of the whole file, so they are gathered first;
        # that pass's problems are reported by the next one.
        labels = sorted({lab for rec in read(report=ConversionReport()) for lab in rec["cats"]})
    yield from records_to_docs(nlp, read(report=report), report, labels=labels, span_key=span_key)
