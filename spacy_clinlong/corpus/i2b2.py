"""i2b2 2010 concept files (`.txt` + `.con`, optional `.ast`) to Docs.

A concept line `c="chest pain" 12:3 12:4||t="problem"` gives line:token
offsets of the first and last token: lines are 1-based lines of the .txt,
tokens 0-based whitespace tokens of that line. They become character offsets
and a span labelled with the upper-cased type (PROBLEM, TEST, TREATMENT).

What a Doc gets: every concept in `doc.spans[span_key]` (default "i2b2"),
the longest non-overlapping ones in `doc.ents`. If an `.ast` file with the same
stem exists, its assertions map to ConText flags in `doc.user_data`
(absent -> is_negated, hypothetical -> is_hypothetical,
associated_with_someone_else -> is_family); every assertion is also kept as
`("brat_attr", "assertion", start, end)` -> value. `.con`/`.ast` files are
found anywhere under the input directory by stem (the release keeps them in
`concept/` and `ast/` beside `txt/`).
"""

import re
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple, Union

from spacy.language import Language
from spacy.tokens import Doc

from .brat import find_files
from .convert_utils import (
    UNDECODABLE,
    decode,
    decode_lines,
    make_span,
    normalize_ws,
    read_input,
    set_spans,
    text_problem,
)
from .report import ConversionReport

CONCEPT_RE = re.compile(
    r'^c="(?P<text>.*)" (?P<l1>\d+):(?P<t1>\d+) (?P<l2>\d+):(?P<t2>\d+)\|\|t="(?P<type>[^"]+)"'
    r'(?:\|\|a="(?P<assertion>[^"]+)")?\s*$'
)
ASSERTION_FLAGS = {
    "absent": "is_negated",
    "hypothetical": "is_hypothetical",
    "associated_with_someone_else": "is_family",
}


def token_offsets(text: str) -> List[List[Tuple[int, int]]]:
    """Character offsets of the whitespace tokens of each line.

    text (str): The document text.
    RETURNS (List[List[Tuple[int, int]]]): Per line (0-based), (start, end) per token.
    """
    lines, offset = [], 0
    for line in text.split("\n"):
        lines.append([(offset + m.start(), offset + m.end()) for m in re.finditer(r"\S+", line)])
        offset += len(line) + 1
    return lines


def _index(path: Path, suffix: str) -> Dict[str, Path]:
    root = path if path.is_dir() else path.parent
    found: Dict[str, Path] = {}
    for p in sorted(root.rglob(f"*{suffix}")):
        found.setdefault(p.stem, p)
    return found


def read_concepts(
    text: str, con_path: Path, report: ConversionReport
) -> List[Tuple[int, int, str, Optional[str], int]]:
    """Parse a .con or .ast file into character-offset concepts.

    text (str): The .txt content.
    con_path (Path): The concept (or assertion) file.
    report (ConversionReport): Where problems are recorded.
    RETURNS (List[Tuple[int, int, str, Optional[str], int]]): (start, end,
        LABEL, assertion or None, line in con_path).
    """
    lines = token_offsets(text)
    concepts = []
    for lineno, line in decode_lines(con_path.read_bytes()):
        if line is None:
            report.skip(UNDECODABLE, con_path, lineno)
            continue
        if not line.strip():
            continue
        m = CONCEPT_RE.match(line.strip())
        if m is None:
            report.skip("malformed_line", con_path, lineno)
            continue
        try:
            l1, t1, l2, t2 = (int(m.group(g)) for g in ("l1", "t1", "l2", "t2"))
        except ValueError:  # more digits than Python's int() takes
            report.skip("malformed_line", con_path, lineno)
            continue
        where = f"{l1}:{t1} {l2}:{t2}"
        if not (
            1 <= l1 <= len(lines)
            and 1 <= l2 <= len(lines)
            and t1 < len(lines[l1 - 1])
            and t2 < len(lines[l2 - 1])
        ):
            report.skip("offset_out_of_range", con_path, lineno, where)
            continue
        start, end = lines[l1 - 1][t1][0], lines[l2 - 1][t2][1]
        if end <= start:
            report.skip("offset_out_of_range", con_path, lineno, where)
            continue
        if normalize_ws(m.group("text")).lower() != normalize_ws(text[start:end]).lower():
            report.skip("text_mismatch", con_path, lineno, where)
            continue
        concepts.append((start, end, m.group("type").upper(), m.group("assertion"), lineno))
    return concepts


def i2b2_doc(
    nlp: Language,
    txt_path: Path,
    con_path: Optional[Path],
    ast_path: Optional[Path],
    report: ConversionReport,
    *,
    span_key: str = "i2b2",
) -> Optional[Doc]:
    """Convert one i2b2 document to a Doc.

    nlp (Language): Its tokenizer makes the Doc.
    txt_path (Path): The text file.
    con_path (Optional[Path]): Its concept file (None: reported as missing).
    ast_path (Optional[Path]): Its assertion file, if any.
    report (ConversionReport): Where counts and problems are recorded.
    span_key (str): The span group that gets every concept.
    RETURNS (Optional[Doc]): The Doc, or None if skipped.
    """
    if con_path is None:
        report.skip("missing_con", txt_path, None, f"no {txt_path.stem}.con")
        return None
    data = read_input(txt_path, report)
    if data is None or read_input(con_path, report) is None:
        return None
    if ast_path is not None and read_input(ast_path, report) is None:
        ast_path = None  # reported; the concepts still convert
    text = decode(data, txt_path, report)
    if text is None:
        return None
    problem = text_problem(text, nlp.max_length)
    if problem is not None:
        report.skip(problem[0], txt_path, None, problem[1])
        return None
    doc = nlp.make_doc(text)
    spans = []
    for start, end, label, _, lineno in read_concepts(text, con_path, report):
        span = make_span(doc, start, end, label, report, con_path, lineno)
        if span is not None:
            spans.append(span)
    set_spans(doc, spans, span_key, report)
    if ast_path is not None:
        for start, end, _, assertion, _ in read_concepts(text, ast_path, report):
            if assertion is None:
                continue
            for flag_value, attr in ASSERTION_FLAGS.items():
                doc.user_data[("._.", attr, start, end)] = assertion.lower() == flag_value
            doc.user_data[("brat_attr", "assertion", start, end)] = assertion
            report.count("assertions")
    doc.user_data["note_id"] = txt_path.stem
    report.count("docs")
    return doc


def iter_i2b2_docs(
    nlp: Language, path: Union[str, Path], report: ConversionReport, *, span_key: str = "i2b2"
) -> Iterator[Doc]:
    """Convert i2b2 2010 files (a directory or one .txt) to Docs, one per .txt.

    nlp (Language): Its tokenizer makes the Docs.
    path (Union[str, Path]): A directory, searched recursively, or a .txt file.
    report (ConversionReport): Where counts and problems are recorded.
    span_key (str): The span group that gets every concept.
    YIELDS (Doc): The converted Docs.
    """
    path = Path(path)
    cons, asts = _index(path, ".con"), _index(path, ".ast")
    for txt_path in find_files(path, ".txt"):
        doc = i2b2_doc(
            nlp, txt_path, cons.get(txt_path.stem), asts.get(txt_path.stem), report, span_key=span_key
        )
        if doc is not None:
            yield doc
