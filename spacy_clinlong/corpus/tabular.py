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
"""
import csv
import io
import itertools
import json
import re
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc

from ..annotate.records import csv_row_start
from .convert_utils import (
    INVALID_JSON, JSON_ERRORS, MALFORMED_CSV, MISSING_TEXT, UNDECODABLE, decode_lines, has_surrogates,
    id_problem, json_error, make_span, set_spans, text_problem,
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
        if (isinstance(item, (list, tuple)) and len(item) == 3 and all(isinstance(x, int) for x in item[:2])
                and isinstance(item[2], str) and not has_surrogates(item[2])):
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
    path: Path, report: ConversionReport, *, text_field: str = "text", labels_field: Optional[str] = None,
    max_length: int = 1_000_000,
) -> List[Record]:
    """Parse a JSONL file into records; bad lines are reported and skipped.

    Bad records get annotate's reasons (`annotate.records.REASONS`), in its
    order: invalid_json, undecodable or invalid_id (the id), missing_text,
    then undecodable, empty or too_long (the text).

    path (Path): The file.
    report (ConversionReport): Where problems are recorded.
    text_field (str): The key holding the text.
    labels_field (Optional[str]): The key holding the labels (default: cats, labels or label).
    max_length (int): The longest text kept (`nlp.max_length`).
    RETURNS (List[Record]): One record per good line.
    """
    records = []
    for lineno, line in decode_lines(path.read_bytes()):
        if line is None:
            report.skip(UNDECODABLE, path, lineno)
            continue
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except JSON_ERRORS as err:
            report.skip(INVALID_JSON, path, lineno, json_error(err)[1])
            continue
        if not isinstance(obj, dict):
            report.skip(INVALID_JSON, path, lineno, "not an object")
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
        records.append({"file": path, "line": lineno, "text": text, "cats": cats,
                         "spans": _spans(raw_spans, path, lineno, report), "id": obj.get("id")})
    return records


def _csv_rows(
    lines: List[str], first: int, columns: int, path: Path, report: ConversionReport
) -> List[Tuple[int, List[str]]]:
    """Parse CSV lines into rows; a row csv cannot parse is reported and the rest still read.

    Strict, because the lenient parser reads a quote left open as a cell that
    runs on to the next quote or the end of the file, silently swallowing the
    rows in between. A bad row is reported with the lines it took; where its
    quotes are left open, the lines after it go with it until they close or a
    line is a whole row by itself (`annotate.records.csv_row_start`), so the
    rest of a multi-line note does not pass for a row.

    lines (List[str]): The file's lines, line ends kept.
    first (int): The 1-based line of the first row.
    columns (int): The header's number of columns.
    path (Path): The file, for the report.
    report (ConversionReport): Where malformed rows are recorded.
    RETURNS (List[Tuple[int, List[str]]]): The 1-based first line and cells of each row.
    """
    rows: List[Tuple[int, List[str]]] = []
    base = first - 1  # index in `lines` where the current parser started
    while base < len(lines):
        # A last empty line (a blank row to csv): an error after reading it is at the end
        # of the file, a quote never closed.
        reader = csv.reader(itertools.chain(itertools.islice(lines, base, None), [""]), strict=True)
        start = base + 1
        try:
            for row in reader:
                rows.append((start, row))
                start = base + reader.line_num + 1
            return rows
        except csv.Error as err:
            end = base + reader.line_num  # the last line the bad row took, 1-based
            where = "quote not closed" if end > len(lines) else str(err)
            end = min(end, len(lines))
            quotes_open = sum(line.count('"') for line in lines[start - 1:end]) % 2 == 1
            while quotes_open and end < len(lines) and not csv_row_start(lines[end], columns):
                quotes_open = bool(lines[end].count('"') % 2) != quotes_open
                end += 1
            if end > start:
                where += f"; lines {start}-{end} lost"
            report.skip(MALFORMED_CSV, path, start, where)
            base = end
    return rows


def read_csv(
    path: Path, report: ConversionReport, *, text_field: str = "text", labels_field: Optional[str] = None,
    id_field: str = "id", max_length: int = 1_000_000,
) -> List[Record]:
    """Parse a CSV file into records; bad rows are reported and skipped.

    Bad rows get annotate's reasons (`annotate.records.REASONS`):
    malformed_csv (unparsable, or not as many cells as the header),
    undecodable, empty or too_long.

    path (Path): The file.
    report (ConversionReport): Where problems are recorded.
    text_field (str): The text column.
    labels_field (Optional[str]): The label column (multi-label split on | or ;);
        default "label"/"labels" if present, else the 0/1 columns.
    id_field (str): The id column, if present.
    max_length (int): The longest text kept (`nlp.max_length`).
    RETURNS (List[Record]): One record per good row.
    """
    # surrogateescape: a bad byte spoils only its row, found by its surrogate.
    text = path.read_bytes().decode("utf-8", errors="surrogateescape").lstrip("\ufeff")
    # Whole notes can exceed csv's default 128 KiB field limit.
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    lines = io.StringIO(text, newline="").readlines()
    header_reader = csv.reader(lines)
    try:
        header = next(header_reader, None)
    except csv.Error:
        header = None
    if header is None or text_field not in header:
        report.skip("missing_text_field", path, 1, f"no column {text_field!r}")
        return []
    rows = _csv_rows(lines, header_reader.line_num + 1, len(header), path, report)
    if labels_field is None:
        labels_field = next((c for c in ("labels", "label") if c in header), None)
    if labels_field is not None and labels_field not in header:
        report.skip("missing_labels_field", path, 1, f"no column {labels_field!r}")
        return []
    ti, li = header.index(text_field), header.index(labels_field) if labels_field else None
    ii = header.index(id_field) if id_field in header else None
    label_cols = [] if labels_field else [
        i for i, col in enumerate(header) if col not in (text_field, id_field)
        and all(len(r) <= i or r[i].strip().lower() in BINARY_VALUES for _, r in rows)]
    for i in [i for i in label_cols if has_surrogates(header[i])]:
        # A label no Doc can hold; the column is dropped, not the file.
        report.skip(UNDECODABLE, path, 1, f"column {i + 1}")
        label_cols.remove(i)
    records = []
    for lineno, row in rows:
        if not row:
            continue
        if any(has_surrogates(cell) for cell in row):
            report.skip(UNDECODABLE, path, lineno)
            continue
        if len(row) != len(header):
            report.skip(MALFORMED_CSV, path, lineno, f"{len(row)} columns, header has {len(header)}")
            continue
        problem = text_problem(row[ti], max_length)
        if problem is not None:
            report.skip(problem[0], path, lineno, problem[1])
            continue
        if li is not None:
            cats = {lab.strip(): 1.0 for lab in re.split(r"[|;]", row[li]) if lab.strip()}
        else:
            cats = {header[i]: float(row[i].strip().lower() in ("1", "1.0", "true")) for i in label_cols}
        records.append({"file": path, "line": lineno, "text": row[ti], "cats": cats, "spans": None,
                        "id": row[ii] if ii is not None else None})
    return records


def records_to_docs(
    nlp: Language, records: Sequence[Record], report: ConversionReport, *,
    labels: Optional[Sequence[str]] = None, span_key: str = "sc",
) -> Iterator[Doc]:
    """Make Docs from parsed records, with cats over the full label set.

    nlp (Language): Its tokenizer makes the Docs.
    records (Sequence[Record]): From `read_jsonl` or `read_csv`.
    report (ConversionReport): Where counts and problems are recorded.
    labels (Optional[Sequence[str]]): The label set; default: all labels seen.
    span_key (str): The span group that gets every span.
    YIELDS (Doc): The converted Docs.
    """
    label_set = list(labels) if labels else sorted({lab for rec in records for lab in rec["cats"]})
    for rec in records:
        doc = nlp.make_doc(rec["text"])
        if label_set:
            doc.cats = {lab: float(rec["cats"].get(lab, 0.0)) for lab in label_set}
        if rec["spans"] is not None:
            spans = [make_span(doc, s, e, lab, report, rec["file"], rec["line"]) for s, e, lab in rec["spans"]]
            set_spans(doc, [s for s in spans if s is not None], span_key, report)
        if rec["id"] is not None:
            doc.user_data["note_id"] = str(rec["id"])
        report.count("docs")
        yield doc


def iter_tabular_docs(
    nlp: Language, path: Union[str, Path], report: ConversionReport, *, fmt: str,
    text_field: str = "text", labels_field: Optional[str] = None, id_field: str = "id",
    labels: Optional[Sequence[str]] = None, span_key: str = "sc",
) -> Iterator[Doc]:
    """Convert a JSONL or CSV file to Docs.

    nlp (Language): Its tokenizer makes the Docs.
    path (Union[str, Path]): The file.
    report (ConversionReport): Where counts and problems are recorded.
    fmt (str): "jsonl" or "csv".
    text_field (str): The text key or column.
    labels_field (Optional[str]): The labels key or column.
    id_field (str): The id column (CSV; JSONL uses "id").
    labels (Optional[Sequence[str]]): The label set; default: all labels seen in the file.
    span_key (str): The span group that gets every span (JSONL).
    YIELDS (Doc): The converted Docs.
    """
    path = Path(path)
    if fmt == "jsonl":
        records = read_jsonl(path, report, text_field=text_field, labels_field=labels_field,
                             max_length=nlp.max_length)
    elif fmt == "csv":
        records = read_csv(path, report, text_field=text_field, labels_field=labels_field, id_field=id_field,
                           max_length=nlp.max_length)
    else:
        raise ValueError(f"fmt must be 'jsonl' or 'csv', got {fmt!r}")
    yield from records_to_docs(nlp, records, report, labels=labels, span_key=span_key)
