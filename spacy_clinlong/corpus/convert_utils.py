"""Helpers shared by the BRAT, i2b2, SQuAD and tabular converters."""

from pathlib import Path
from typing import Iterable, List, Optional, Tuple, Union

from spacy.tokens import Doc, Span
from spacy.util import filter_spans

from ..io import has_surrogates, reason_name
from .report import ConversionReport

# Record problems that every reader has, by the shared names (`spacy_clinlong.io.REASONS`);
# the other reasons (offsets, spans, labels ...) are the converters' own.
EMPTY = reason_name("empty")
UNDECODABLE = reason_name("undecodable")
INVALID_ID = reason_name("invalid_id")
TOO_LONG = reason_name("too_long")
MISSING_TEXT = reason_name("missing_text")
INVALID_JSON = reason_name("invalid_json")
MALFORMED_CSV = reason_name("malformed_csv")
NOT_A_FILE = reason_name("not_a_file")


def text_problem(text: str, max_length: int) -> Optional[Tuple[str, str]]:
    """Why a text cannot become a Doc, by the shared reason names.

    text (str): The text.
    max_length (int): The longest text allowed (`nlp.max_length`; spaCy raises E088 past it).
    RETURNS (Optional[Tuple[str, str]]): The reason and a detail (the length), or None.
    """
    where = f"length {len(text)}"
    if has_surrogates(text):
        return UNDECODABLE, where
    if not text.strip():
        return EMPTY, where
    if len(text) > max_length:
        return TOO_LONG, f"{where}, nlp.max_length {max_length}"
    return None


def read_input(path: Path, report: ConversionReport) -> Optional[bytes]:
    """The bytes of one file of a corpus, or None, reported as `not_a_file`, for a path that is
    not a readable regular file (a folder, a FIFO whose read would block, a dangling link, no
    permission): one odd file is skipped, and the rest of the corpus converts.

    path (Path): The file.
    report (ConversionReport): Where a skip is recorded.
    RETURNS (Optional[bytes]): The file's bytes.
    """
    if not path.is_file():
        report.skip(NOT_A_FILE, path)
        return None
    try:
        return path.read_bytes()
    except OSError as err:
        report.skip(NOT_A_FILE, path, None, err.strerror or type(err).__name__)
        return None


def normalize_ws(text: str) -> str:
    """Collapse every run of whitespace to one space and strip the ends.

    text (str): Any text.
    RETURNS (str): The normalized text.
    """
    return " ".join(text.split())


def decode(
    data: bytes, path: Union[str, Path], report: ConversionReport, encoding: str = "utf-8"
) -> Optional[str]:
    """Decode bytes strictly; report the line of the first bad byte.

    data (bytes): The raw bytes.
    path (Union[str, Path]): The file, for the report.
    report (ConversionReport): Where an undecodable file is recorded.
    encoding (str): The encoding.
    RETURNS (Optional[str]): The text, or None if it did not decode.
    """
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        report.skip(UNDECODABLE, path, line, f"byte offset {err.start}")
        return None


def decode_lines(data: bytes, encoding: str = "utf-8") -> Iterable[Tuple[int, Optional[str]]]:
    """Decode a file line by line, so one bad line does not lose the others.

    data (bytes): The raw bytes.
    encoding (str): The encoding.
    YIELDS (Tuple[int, Optional[str]]): 1-based line number and the line, or
        None where it did not decode.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for i, raw in enumerate(data.split(b"\n"), start=1):
        try:
            yield i, raw.decode(encoding).rstrip("\r")
        except UnicodeDecodeError:
            yield i, None


def trim(text: str, start: int, end: int) -> Tuple[int, int]:
    """Move span boundaries inward past whitespace.

    text (str): The document text.
    start (int): Start character offset.
    end (int): End character offset.
    RETURNS (Tuple[int, int]): The trimmed offsets (start == end if all whitespace).
    """
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def make_span(
    doc: Doc,
    start: int,
    end: int,
    label: str,
    report: ConversionReport,
    path: Union[str, Path],
    line: Optional[int],
    where: str = "",
) -> Optional[Span]:
    """Make a Span from character offsets, expanding to token boundaries if needed.

    Offsets outside the text are reported and give None. Offsets that do not
    fall on token boundaries are expanded and counted as "adjusted".

    doc (Doc): The document.
    start (int): Start character offset.
    end (int): End character offset.
    label (str): The span label.
    report (ConversionReport): Where skips and adjustments are counted.
    path (Union[str, Path]): The annotation file, for the report.
    line (Optional[int]): The annotation's line, for the report.
    where (str): Ids for the report (never text).
    RETURNS (Optional[Span]): The span, or None if it was skipped.
    """
    loc = f"{where} {start}-{end}".strip()
    # Not len(doc.text): that rebuilds the text on every call.
    length = doc[-1].idx + len(doc[-1].text_with_ws) if len(doc) else 0
    if not (0 <= start < end <= length):
        report.skip("offset_out_of_range", path, line, f"{loc}, text length {length}")
        return None
    span = doc.char_span(start, end, label=label)
    if span is None:
        span = doc.char_span(start, end, label=label, alignment_mode="expand")
        if span is None or len(span) == 0:
            report.skip("no_tokens", path, line, loc)
            return None
        report.count("adjusted")
    return span


def set_spans(doc: Doc, spans: List[Span], span_key: Optional[str], report: ConversionReport) -> None:
    """Put all spans in a span group and the longest non-overlapping ones in doc.ents.

    doc (Doc): The document.
    spans (List[Span]): All spans, overlapping or not.
    span_key (Optional[str]): The span group key; None for doc.ents only.
    report (ConversionReport): Counts "entities", "ents" and "ents_dropped_overlap".
    """
    if span_key:
        doc.spans[span_key] = spans
    # filter_spans: longest first (in tokens), ties by position.
    ents = filter_spans(spans)
    doc.ents = ents
    report.count("entities", len(spans))
    report.count("ents", len(ents))
    if len(ents) < len(spans):
        report.count("ents_dropped_overlap", len(spans) - len(ents))


CONTEXT_ATTRS = {
    "negation": "is_negated",
    "negated": "is_negated",
    "negative": "is_negated",
    "historical": "is_historical",
    "history": "is_historical",
    "family": "is_family",
    "hypothetical": "is_hypothetical",
}
NEGATIVE_VALUES = {"neg", "negative", "negated", "absent", "true", "yes", "1"}


def attribute_items(name: str, value: Optional[str], start: int, end: int) -> List[Tuple[tuple, object]]:
    """Map an annotation attribute to `doc.user_data` keys and values.

    Negation-like and other ConText-like attributes become the keys that
    spaCy's Span extensions read, `("._.", "is_negated", start, end)`, so
    `span._.is_negated` works once the extension exists. A BRAT POLARITY
    attribute sets is_negated (True for NEG) and also keeps its value, since
    values like UNCERTAIN have no ConText flag. Anything else is kept under
    `("brat_attr", name, start, end)` with its value (True for binary ones).

    name (str): Attribute name.
    value (Optional[str]): Attribute value, None for binary attributes.
    start (int): Start character offset of the span.
    end (int): End character offset of the span.
    RETURNS (List[Tuple[tuple, object]]): The user_data keys and values.
    """
    lname = name.lower()
    raw = [(("brat_attr", name, start, end), True if value is None else value)]
    if lname in CONTEXT_ATTRS:
        flag = True if value is None else value.lower() in NEGATIVE_VALUES | {lname}
        return [(("._.", CONTEXT_ATTRS[lname], start, end), flag)]
    if lname == "polarity" and value is not None:
        return [(("._.", "is_negated", start, end), value.lower() in NEGATIVE_VALUES)] + raw
    return raw
