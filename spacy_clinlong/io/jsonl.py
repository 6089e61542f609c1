"""JSON Lines read line by line from a byte offset: each line an object, or the reason it is not one."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple

from .reasons import has_surrogates

# json.loads raises RecursionError for deep nesting and plain ValueError for an integer
# over Python's digit limit, besides JSONDecodeError.
JSON_ERRORS = (ValueError, RecursionError)


def json_error(err: Exception) -> Tuple[Optional[int], str]:
    """Where json.loads failed, for a report.

    err (Exception): One of JSON_ERRORS.
    RETURNS (Tuple[Optional[int], str]): The line, when known, and a detail (never text).
    """
    if isinstance(err, json.JSONDecodeError):
        return err.lineno, f"column {err.colno}"
    if isinstance(err, RecursionError):
        return None, "nested too deep"
    return None, "integer too long"


@dataclass
class JsonLine:
    """One non-blank line of a JSONL file.

    obj (Optional[Dict[str, Any]]): The object; None for a line that is not one.
    line (int): Its 1-based line number.
    end (int): The byte offset after it, where the next line starts.
    length (int): Its length in bytes.
    reason (Optional[str]): "invalid_json" or "undecodable" where `obj` is None.
    detail (Optional[str]): Where an invalid line failed (never text).
    bad_bytes (bool): Whether the line held bytes that are not UTF-8 (its object, if
        any, has lone surrogates where they were).
    """

    obj: Optional[Dict[str, Any]]
    line: int
    end: int
    length: int
    reason: Optional[str] = None
    detail: Optional[str] = None
    bad_bytes: bool = False


def jsonl_lines(path: Path, *, offset: int = 0, line: int = 1) -> Iterator[JsonLine]:
    """Read the objects of a JSONL file from a byte offset on, blank lines left out.

    Bytes that are not UTF-8 become lone surrogates, so an object with an
    undecodable value still gives its other values (its id above all), and the
    caller finds the bad one by `has_surrogates`. Lines end at "\\n" only.

    path (Path): The file.
    offset (int): Where to start: 0, or a line's `end`.
    line (int): The 1-based number of the line at `offset`.
    YIELDS (JsonLine): Each line, in order.
    """
    with Path(path).open("rb") as handle:
        handle.seek(offset)
        for raw in handle:
            here, offset, line = line, offset + len(raw), line + 1
            if here == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            if not raw.strip():
                continue
            # Without its line end, so that an error's column is where the line stops short.
            decoded = raw.rstrip(b"\r\n").decode("utf-8", errors="surrogateescape")
            try:
                obj = json.loads(decoded)
            except JSON_ERRORS as err:
                obj, detail = None, json_error(err)[1]
            else:
                detail = None if isinstance(obj, dict) else "not an object"
            if isinstance(obj, dict):
                yield JsonLine(obj, here, offset, len(raw), bad_bytes=has_surrogates(decoded))
            elif has_surrogates(decoded):
                yield JsonLine(None, here, offset, len(raw), "undecodable")
            else:
                yield JsonLine(None, here, offset, len(raw), "invalid_json", detail)
