"""The one note reader: a directory of .txt, JSONL, CSV or Parquet, read as numbered records.

Every input is read in a fixed order, and every record gets an index (its
position in that order, bad records included), so a job can be cut into
shards of consecutive records and any shard read again later from its
locator alone: a byte offset for JSONL and CSV, a row for Parquet, file
names for a directory. That is what lets a killed annotation job resume,
and lets Ray workers read their own shards.

A record the reader cannot read (undecodable, invalid JSON, malformed CSV, a
.txt path that is no file ...) comes with its reason, and `judge` gives the
reason for the others (empty, missing or invalid id, too long ...); either
is reported by index, id, reason, source (file and line or row) and length.
Its text never leaves the caller.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from .csv_rows import csv_header, csv_rows
from .jsonl import jsonl_lines
from .reasons import has_surrogates, id_problem, integer_id

JSONL_SUFFIXES = (".jsonl", ".ndjson")
CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")
TXT_SUFFIX = ".txt"


class InputError(ValueError):
    """An input that cannot be read at all (wrong kind, missing column ...)."""


@dataclass
class RawRecord:
    """One record as read, before it is judged."""

    index: int
    id: Any
    text: Optional[str]
    source: str
    reason: Optional[str] = None  # set by the reader when it could not read the record
    length: Optional[int] = None  # of the raw text when `text` is None


def input_kind(path: Path) -> str:
    """RETURNS (str): "txt", "jsonl", "csv" or "parquet" for an input path."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"Input {str(path)!r} does not exist.")
    if path.is_dir():
        return "txt"
    suffix = path.suffix.lower()
    for kind, suffixes in (("jsonl", JSONL_SUFFIXES), ("csv", CSV_SUFFIXES), ("parquet", PARQUET_SUFFIXES)):
        if suffix in suffixes:
            return kind
    raise InputError(
        f"Input {str(path)!r}: expected a directory of .txt files, a .jsonl, .csv or .parquet file, "
        f"not {suffix or 'a file without a suffix'!r}."
    )


def judge(
    record: RawRecord, max_chars: Optional[int] = None, *, need_id: bool = True, integer_ids: bool = False
) -> Optional[str]:
    """The reason a record cannot be used, or None (duplicates are judged by the caller).

    record (RawRecord): The record as read.
    max_chars (Optional[int]): The longest text allowed; None for no limit.
    need_id (bool): Whether the record needs an id that can be written back
        (annotate's output does; pretraining reads texts only).
    integer_ids (bool): Whether the id must be an integer (NOTE_NLP's note_id), or a string of one.
    RETURNS (Optional[str]): A key of `REASONS`, or None for a good record.
    """
    if record.reason is not None:
        return record.reason
    if need_id:
        if record.id is None or (isinstance(record.id, str) and not record.id.strip()):
            return "missing_id"
        problem = id_problem(record.id)
        if problem is not None:
            return problem
        if integer_ids and integer_id(record.id) is None:
            return "non_integer_id"
    if not isinstance(record.text, str):
        return "missing_text"
    if has_surrogates(record.text):
        return "undecodable"
    if not record.text.strip():
        return "empty"
    if max_chars is not None and len(record.text) > max_chars:
        return "too_long"
    return None


class NoteInput:
    """A directory of .txt, a JSONL, CSV or Parquet file, as numbered records.

    path (Path): The input.
    id_field (Optional[str]): The JSONL key / CSV or Parquet column with the note
        id; None to read texts only (a .txt note's id is its path under the
        directory, without ".txt").
    text_field (str): The key / column with the note text.
    follow_symlinks (bool): Read .txt symlinks that lead outside the directory
        (by default they are reported as `outside_input`).
    """

    def __init__(
        self,
        path: Path,
        *,
        id_field: Optional[str] = "id",
        text_field: str = "text",
        follow_symlinks: bool = False,
    ) -> None:
        self.path = Path(path)
        self.kind = input_kind(self.path)
        self.id_field = id_field
        self.text_field = text_field
        self.follow_symlinks = follow_symlinks
        self._txt_files: Optional[List[str]] = None
        if self.kind == "csv":
            self._csv_columns()
        elif self.kind == "parquet":
            self._parquet_file()

    @property
    def fields(self) -> List[str]:
        """RETURNS (List[str]): The keys / columns read: the id's (if any) and the text's."""
        return [field for field in (self.id_field, self.text_field) if field is not None]

    def fingerprint(self) -> Dict[str, Any]:
        """RETURNS (Dict[str, Any]): Sizes and modification times, to notice a changed input."""
        if self.kind != "txt":
            stat = self.path.stat()
            return {"bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        files = self.txt_files()
        stats = []
        for name in files:
            try:
                stats.append(os.stat(self.path / name))
            except OSError:  # a dangling or looping link: reported as not_a_file
                stats.append(os.lstat(self.path / name))
        return {
            "files": len(files),
            "bytes": sum(s.st_size for s in stats),
            "mtime_ns": max((s.st_mtime_ns for s in stats), default=0),
        }

    def txt_files(self) -> List[str]:
        """RETURNS (List[str]): Every path under the directory whose name ends in .txt,
        relative, in sorted order: regular files, and the links, FIFOs and folders
        that the reader reports (listed once: the fingerprint and the plan of a new
        job both need them). Symlinked folders are not entered."""
        if self._txt_files is None:
            self._txt_files = sorted(
                p.relative_to(self.path).as_posix()
                for p in self.path.rglob("*")
                if p.suffix.lower() == TXT_SUFFIX
            )
        return self._txt_files

    def _txt_problem(self, path: Path) -> Optional[str]:
        """RETURNS (Optional[str]): Why a listed .txt path cannot be read as a note, or None."""
        if path.is_symlink() and not self.follow_symlinks:
            try:
                target = path.resolve(strict=True)
            except (OSError, RuntimeError):
                return "not_a_file"
            if not target.is_relative_to(self.path.resolve()):
                return "outside_input"
        return None if path.is_file() else "not_a_file"  # is_file() is False for FIFOs and folders

    def records(self, locator: Optional[Dict[str, Any]] = None) -> Iterator[Tuple[RawRecord, Dict[str, Any]]]:
        """Read records from the start of the input, or from a shard's locator on.

        locator (Optional[Dict[str, Any]]): Where to start (as yielded with an
            earlier record): {"index", and "offset"/"line" (JSONL, CSV),
            "row" (Parquet) or "files" (the .txt names of this shard)}.
        YIELDS (Tuple[RawRecord, Dict[str, Any]]): Each record with the locator
            of the record that follows it.
        """
        locator = dict(locator or {"index": 0})
        reader = {"txt": self._txt, "jsonl": self._jsonl, "csv": self._csv, "parquet": self._parquet}[
            self.kind
        ]
        yield from reader(locator)

    # .txt directory ---------------------------------------------------------

    def _txt(self, locator):
        index = locator["index"]
        files = locator.get("files")
        if files is None:
            files = self.txt_files()
            if not files:
                raise InputError(f"Input directory {str(self.path)!r} has no .txt files.")
        for name in files:
            note_id = name[: -len(TXT_SUFFIX)]
            problem = self._txt_problem(self.path / name)
            raw = b""
            if problem is None:
                try:
                    raw = (self.path / name).read_bytes()
                except OSError:  # unreadable (permissions), or gone since it was listed
                    problem = "not_a_file"
            if problem is not None:
                record = RawRecord(index, note_id, None, name, reason=problem)
            else:
                try:
                    record = RawRecord(index, note_id, raw.decode("utf-8-sig"), name)
                except UnicodeDecodeError:
                    record = RawRecord(index, note_id, None, name, reason="undecodable", length=len(raw))
            index += 1
            yield record, {"index": index, "file": name}

    # JSONL --------------------------------------------------------------------

    def _jsonl(self, locator):
        index = locator["index"]
        name = self.path.name
        for item in jsonl_lines(self.path, offset=locator.get("offset", 0), line=locator.get("line", 1)):
            source = f"{name}:{item.line}"
            if item.obj is not None:
                note_id = item.obj.get(self.id_field) if self.id_field is not None else None
                record = RawRecord(index, note_id, item.obj.get(self.text_field), source)
            else:
                record = RawRecord(index, None, None, source, reason=item.reason, length=item.length)
            index += 1
            yield record, {"index": index, "offset": item.end, "line": item.line + 1}

    # CSV ----------------------------------------------------------------------

    def _csv_columns(self) -> Tuple[Optional[int], int, int, int, int]:
        header, header_bytes = csv_header(self.path)
        for field in self.fields:
            if field not in header:
                raise InputError(
                    f"Input {str(self.path)!r} has no column {field!r} (columns: {len(header)})."
                )
        id_col = header.index(self.id_field) if self.id_field is not None else None
        return id_col, header.index(self.text_field), header_bytes, 2, len(header)

    def _csv(self, locator):
        id_col, text_col, header_bytes, first_line, columns = self._csv_columns()
        index = locator["index"]
        name = self.path.name
        rows = csv_rows(
            self.path,
            columns=columns,
            offset=locator.get("offset", header_bytes),
            line=locator.get("line", first_line),
        )
        for row in rows:
            if row.cells is None:
                lines = f"{row.line}" if row.last_line <= row.line else f"{row.line}-{row.last_line}"
                record = RawRecord(
                    index, None, None, f"{name}:{lines}", reason="malformed_csv", length=row.end - row.start
                )
            else:
                source = f"{name}:{row.line}"
                note_id = row.cells[id_col] if id_col is not None and id_col < len(row.cells) else None
                if len(row.cells) != columns:  # an unquoted comma would cut the text short
                    record = RawRecord(
                        index, note_id, None, source, reason="malformed_csv", length=row.end - row.start
                    )
                else:
                    record = RawRecord(index, note_id, row.cells[text_col], source)
            index += 1
            yield record, {"index": index, "offset": row.end, "line": row.last_line + 1}

    # Parquet ------------------------------------------------------------------

    def _parquet_file(self):
        try:
            import pyarrow.parquet as pq
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise InputError("Reading Parquet needs pyarrow: pip install 'spacy-clinlong[parquet]'.") from err
        try:
            handle = pq.ParquetFile(self.path)
        except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
            raise InputError(
                f"Input {str(self.path)!r} is not a readable Parquet file ({type(err).__name__})."
            ) from None
        names = handle.schema_arrow.names
        for field in self.fields:
            if field not in names:
                raise InputError(f"Input {str(self.path)!r} has no column {field!r} (columns: {len(names)}).")
        return handle

    def _parquet(self, locator):
        handle = self._parquet_file()
        index, row = locator["index"], locator.get("row", 0)
        name = self.path.name
        meta = handle.metadata
        first_row = 0
        for group in range(meta.num_row_groups):
            rows = meta.row_group(group).num_rows
            if first_row + rows <= row:
                first_row += rows
                continue
            table = handle.read_row_group(group, columns=self.fields)
            ids = table.column(self.id_field).to_pylist() if self.id_field is not None else [None] * rows
            texts = table.column(self.text_field).to_pylist()
            for i in range(row - first_row, rows):
                text, length, reason = texts[i], None, None
                if isinstance(text, bytes):
                    length = len(text)
                    try:
                        text = text.decode("utf-8")
                    except UnicodeDecodeError:
                        text, reason = None, "undecodable"
                record = RawRecord(index, ids[i], text, f"{name}:row {row}", reason=reason, length=length)
                index, row = index + 1, row + 1
                yield record, {"index": index, "row": row}
            first_row += rows
