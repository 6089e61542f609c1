"""Why a record cannot be used: the reason names every reader, `annotate` and `convert` report."""

import re
from typing import Any, Optional

#: Why a record was not used (the `reason` in annotate's errors file, convert's report and
#: pretrain's log).
REASONS = {
    "empty": "the text is empty or only whitespace",
    "undecodable": "the bytes are not UTF-8, or the id or text holds a lone surrogate (e.g. an escaped \\ud83d)",
    "missing_id": "the record has no id (or an empty one)",
    "invalid_id": "the id is not a string or an integer, or an integer outside 64 bits",
    "non_integer_id": "the id is not an integer or a string of one (NOTE_NLP's note_id is): database OUTPUT only",
    "duplicate_id": "an earlier record has the same id (the first one is annotated)",
    "too_long": "the text is longer than --max-chars",
    "missing_text": "the record has no text field, or it is not a string",
    "invalid_json": "the line is not a JSON object",
    "malformed_csv": "the CSV row cannot be parsed, or has not as many cells as the header (source names its lines)",
    "not_a_file": "a .txt path that is not a readable regular file (dangling or looping link, FIFO, folder)",
    "outside_input": "a .txt symlink that leads outside the input folder (see --follow-symlinks)",
    "pipeline_error": "the pipeline raised an exception on this note (its type is given)",
    "timeout": "the pipeline took longer than --note-timeout on this note",
}
#: Integer ids are kept to OMOP's bigint (signed 64 bits): DocBin and databases hold no more.
INT_ID_RANGE = (-(2**63), 2**63 - 1)


def reason_name(name: str) -> str:
    """Check that a reason name is one of `REASONS`, so that every command names a bad record alike.

    name (str): A key of `REASONS`.
    RETURNS (str): The name.
    """
    if name not in REASONS:
        raise KeyError(f"{name!r} is not one of the shared reasons: {', '.join(REASONS)}")
    return name


def has_surrogates(text: str) -> bool:
    """RETURNS (bool): Whether the text holds a lone surrogate: undecodable bytes let through
    (surrogateescape), or an escaped one from JSON. Neither can be written as UTF-8."""
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def id_problem(note_id: Any) -> Optional[str]:
    """Why an id cannot be kept, or None (no id at all is the caller's to judge).

    note_id (Any): The id as read.
    RETURNS (Optional[str]): "undecodable" (a lone surrogate), "invalid_id" (not a
        string or an integer, a boolean, or beyond 64 bits), or None.
    """
    if note_id is None:
        return None
    if isinstance(note_id, str):
        return "undecodable" if has_surrogates(note_id) else None
    if isinstance(note_id, bool) or not isinstance(note_id, int):
        return "invalid_id"
    return None if INT_ID_RANGE[0] <= note_id <= INT_ID_RANGE[1] else "invalid_id"


_DECIMAL = re.compile(r"-?(0|[1-9][0-9]*)")


def integer_id(note_id: Any) -> Optional[int]:
    """An id as OMOP's integer note_id: an integer, or a string that spells one (no sign but a
    minus, no leading zero, no spaces), within 64 bits.

    note_id (Any): The id as read.
    RETURNS (Optional[int]): The integer, or None when the id is not one.
    """
    if isinstance(note_id, str) and _DECIMAL.fullmatch(note_id):
        note_id = int(note_id)
    if isinstance(note_id, bool) or not isinstance(note_id, int):
        return None
    return note_id if INT_ID_RANGE[0] <= note_id <= INT_ID_RANGE[1] else None
