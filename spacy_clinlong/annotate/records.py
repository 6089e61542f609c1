"""Notes to annotate: a directory of .txt, JSONL, CSV or Parquet, read as numbered records.

Every input is read in a fixed order, and every record gets an index (its
position in that order, bad records included), so a job can be cut into
shards of consecutive records and any shard read again later from its
locator alone: a byte offset for JSONL and CSV, a row for Parquet, file
names for a directory. That is what lets a killed job resume, and lets Ray
workers read their own shards.

A bad record (empty, undecodable, missing or duplicate id, too long ...) is
reported by index, id, reason, source (file and line or row) and length;
its text never leaves this module.
"""
import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

JSONL_SUFFIXES = (".jsonl", ".ndjson")
CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")
TXT_SUFFIX = ".txt"

#: Why a record was not annotated (the `reason` in the errors file).
REASONS = {
    "empty": "the text is empty or only whitespace",
    "undecodable": "the bytes are not UTF-8, or the id or text holds a lone surrogate (e.g. an escaped \\ud83d)",
    "missing_id": "the record has no id (or an empty one)",
    "invalid_id": "the id is not a string or an integer, or an integer outside 64 bits",
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


def has_surrogates(text: str) -> bool:
    """RETURNS (bool): Whether the text holds a lone surrogate: undecodable bytes let through
        (surrogateescape), or an escaped one from JSON. Neither can be written as UTF-8."""
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def csv_row_start(line: str, columns: int) -> bool:
    """Whether a line, met while skipping a malformed CSV row, can start the next row.

    After a row that strict parsing refused, reading on from the next line could
    take the continuation of a quoted multi-line note for a row of its own (a
    note fragment under a wrong id). So the lines after a bad row whose quotes
    are left open are skipped with it until its quotes close, or until a line
    that is a whole row by itself: balanced quotes, and as many cells as the header.

    line (str): The line, its end kept.
    columns (int): The header's number of columns.
    RETURNS (bool): Whether parsing may go on from this line.
    """
    if line.count('"') % 2:
        return False
    try:
        rows = list(csv.reader([line], strict=True))
    except csv.Error:
        return False
    return len(rows) == 1 and len(rows[0]) == columns


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


def judge(record: RawRecord, max_chars: int) -> Optional[str]:
    """The reason a record cannot be annotated, or None (duplicates are judged by the caller).

    RETURNS (Optional[str]): A key of `REASONS`, or None for a good record.
    """
    if record.reason is not None:
        return record.reason
    if record.id is None or (isinstance(record.id, str) and not record.id.strip()):
        return "missing_id"
    problem = id_problem(record.id)
    if problem is not None:
        return problem
    if not isinstance(record.text, str):
        return "missing_text"
    if has_surrogates(record.text):
        return "undecodable"
    if not record.text.strip():
        return "empty"
    if len(record.text) > max_chars:
        return "too_long"
    return None


def error_entry(record: RawRecord, reason: str, detail: Optional[str] = None) -> Dict[str, Any]:
    """RETURNS (Dict[str, Any]): The errors-file line for a record: never its text."""
    length = len(record.text) if isinstance(record.text, str) else record.length
    # Only ids that can be written back as they were read.
    note_id = record.id if id_problem(record.id) is None else None
    entry = {"index": record.index, "id": note_id,
             "reason": reason, "source": record.source, "length": length}
    if detail:
        entry["detail"] = detail
    return entry


class NoteInput:
    """A directory of .txt, a JSONL, CSV or Parquet file, as numbered records.

    path (Path): The input.
    id_field (str): The JSONL key / CSV or Parquet column with the note id
        (a .txt note's id is its path under the directory, without ".txt").
    text_field (str): The key / column with the note text.
    follow_symlinks (bool): Read .txt symlinks that lead outside the directory
        (by default they are reported as `outside_input`).
    """

    def __init__(self, path: Path, *, id_field: str = "id", text_field: str = "text",
                 follow_symlinks: bool = False) -> None:
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
        return {"files": len(files), "bytes": sum(s.st_size for s in stats),
                "mtime_ns": max((s.st_mtime_ns for s in stats), default=0)}

    def txt_files(self) -> List[str]:
        """RETURNS (List[str]): Every path under the directory whose name ends in .txt,
            relative, in sorted order: regular files, and the links, FIFOs and folders
            that the reader reports (listed once: the fingerprint and the plan of a new
            job both need them). Symlinked folders are not entered."""
        if self._txt_files is None:
            self._txt_files = sorted(p.relative_to(self.path).as_posix() for p in self.path.rglob("*")
                                     if p.suffix.lower() == TXT_SUFFIX)
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
        reader = {"txt": self._txt, "jsonl": self._jsonl, "csv": self._csv, "parquet": self._parquet}[self.kind]
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
        import json

        index, line, offset = locator["index"], locator.get("line", 1), locator.get("offset", 0)
        name = self.path.name
        with self.path.open("rb") as handle:
            handle.seek(offset)
            for raw in handle:
                here, offset, line = line, offset + len(raw), line + 1
                if here == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                if not raw.strip():
                    continue
                source = f"{name}:{here}"
                # Bad bytes become lone surrogates, so a record with an undecodable text
                # still gives its id, and judge() reports it as undecodable.
                decoded = raw.decode("utf-8", errors="surrogateescape")
                try:
                    obj = json.loads(decoded)
                except (ValueError, RecursionError):  # RecursionError: nested thousands deep
                    obj = None
                if isinstance(obj, dict):
                    record = RawRecord(index, obj.get(self.id_field), obj.get(self.text_field), source)
                else:
                    reason = "undecodable" if has_surrogates(decoded) else "invalid_json"
                    record = RawRecord(index, None, None, source, reason=reason, length=len(raw))
                index += 1
                yield record, {"index": index, "offset": offset, "line": line}

    # CSV ----------------------------------------------------------------------

    def _csv_columns(self) -> Tuple[int, int, int, int, int]:
        csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))  # whole notes pass 128 KiB
        with self.path.open("rb") as handle:
            first = handle.readline()
            header = next(csv.reader([first.decode("utf-8-sig", errors="replace")]), [])
        for field in (self.id_field, self.text_field):
            if field not in header:
                raise InputError(f"Input {str(self.path)!r} has no column {field!r} (columns: {len(header)}).")
        return header.index(self.id_field), header.index(self.text_field), len(first), 2, len(header)

    def _csv(self, locator):
        id_col, text_col, header_bytes, first_line, columns = self._csv_columns()
        index = locator["index"]
        offset, line = locator.get("offset", header_bytes), locator.get("line", first_line)
        name = self.path.name
        starts: List[Tuple[int, int, int]] = []  # (byte offset, line, quotes) of each line parsed

        def lines(handle):
            nonlocal offset, line
            for raw in handle:
                starts.append((offset, line, raw.count(b'"')))
                offset, line = offset + len(raw), line + 1
                yield raw.decode("utf-8", errors="surrogateescape")

        with self.path.open("rb") as handle:
            while True:  # one parser per run of good rows: a bad row restarts it
                handle.seek(offset)
                del starts[:]
                # strict: a quote left open is an error, not a field that swallows the
                # rows after it (up to the next quote, or the end of the file).
                reader = csv.reader(lines(handle), strict=True)
                while True:
                    try:
                        row = next(reader)
                    except StopIteration:
                        return
                    except csv.Error:
                        break
                    row_offset, row_line, _ = starts[0] if starts else (offset, line, 0)
                    del starts[:]
                    if not row:
                        continue
                    source = f"{name}:{row_line}"
                    note_id = row[id_col] if id_col < len(row) else None
                    if len(row) != columns:  # an unquoted comma would cut the text short
                        record = RawRecord(index, note_id, None, source, reason="malformed_csv",
                                           length=offset - row_offset)
                    else:
                        record = RawRecord(index, note_id, row[text_col], source)
                    index += 1
                    yield record, {"index": index, "offset": offset, "line": line}
                row_offset, row_line, _ = starts[0]
                quotes_open = sum(quotes for _, _, quotes in starts) % 2 == 1
                handle.seek(offset)
                while quotes_open:
                    raw = handle.readline()
                    if not raw or csv_row_start(raw.decode("utf-8", errors="surrogateescape"), columns):
                        break
                    offset, line = offset + len(raw), line + 1
                    quotes_open = bool(raw.count(b'"') % 2) != quotes_open
                source = f"{name}:{row_line}" if line - 1 <= row_line else f"{name}:{row_line}-{line - 1}"
                record = RawRecord(index, None, None, source, reason="malformed_csv", length=offset - row_offset)
                index += 1
                yield record, {"index": index, "offset": offset, "line": line}

    # Parquet ------------------------------------------------------------------

    def _parquet_file(self):
        try:
            import pyarrow.parquet as pq
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise InputError("Reading Parquet needs pyarrow: pip install 'spacy-clinlong[parquet]'.") from err
        try:
            handle = pq.ParquetFile(self.path)
        except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
            raise InputError(f"Input {str(self.path)!r} is not a readable Parquet file ({type(err).__name__}).") from None
        names = handle.schema_arrow.names
        for field in (self.id_field, self.text_field):
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
            table = handle.read_row_group(group, columns=[self.id_field, self.text_field])
            ids = table.column(self.id_field).to_pylist()
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


def id_key(note_id: Any) -> str:
    """RETURNS (str): The key two ids share when they are duplicates (1 and "1" differ)."""
    return f"{type(note_id).__name__}:{note_id}"


def _digest(digest, record: RawRecord) -> None:
    """Add a record to its shard's digest: index, id, reason and text (or raw length), so a
    record edited in place, even to the same length, no longer matches the plan."""
    note_id = record.id if isinstance(record.id, (str, int)) else type(record.id).__name__
    text = record.text if isinstance(record.text, str) else f"{type(record.text).__name__}:{record.length}"
    digest.update(f"{record.index}\0{note_id!r}\0{record.reason}\0".encode("utf-8", "surrogatepass"))
    digest.update(text.encode("utf-8", "surrogatepass") + b"\0\n")


def shard_plan(source: NoteInput, *, shard_size: int, max_chars: int) -> Iterator[Dict[str, Any]]:
    """Scan the whole input once and cut it into shards of `shard_size` records.

    Duplicates are found here (the first record with an id is kept), so the
    plan names every bad record; a shard's reader only re-reads its range.

    source (NoteInput): The input.
    shard_size (int): Records per shard (bad ones included).
    max_chars (int): Longest text annotated.
    YIELDS (Dict[str, Any]): {"shard", "start" (locator), "records", "notes",
        "bad" (error entries), "digest" (of its records' content)} for each shard, in order.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    seen = set()
    shard: Optional[Dict[str, Any]] = None
    start: Dict[str, Any] = {"index": 0}
    number = 0
    for record, after in source.records():
        if shard is None:
            shard = {"shard": number, "start": start, "records": 0, "notes": 0, "bad": []}
            digest = hashlib.sha256()
            if source.kind == "txt":
                shard["start"] = dict(start, files=[])
        if source.kind == "txt":
            shard["start"]["files"].append(after.pop("file"))
        reason = judge(record, max_chars)
        if reason is None:
            key = id_key(record.id)
            if key in seen:
                reason = "duplicate_id"
            else:
                seen.add(key)
        if reason is None:
            shard["notes"] += 1
        else:
            shard["bad"].append(error_entry(record, reason))
        shard["records"] += 1
        _digest(digest, record)
        start = after
        if shard["records"] == shard_size:
            yield dict(shard, digest=digest.hexdigest())
            shard, number = None, number + 1
    if shard is not None:
        yield dict(shard, digest=digest.hexdigest())


def read_shard(source: NoteInput, shard: Dict[str, Any], *, max_chars: int
               ) -> Tuple[List[Tuple[Any, str, int, str]], List[Dict[str, Any]]]:
    """Read one shard of a plan back: its good notes and its bad records.

    source (NoteInput): The input the plan was made from.
    shard (Dict[str, Any]): A shard from `shard_plan`.
    max_chars (int): Longest text annotated (as in the plan).
    RETURNS (Tuple[List[Tuple[Any, str, int, str]], List[Dict[str, Any]]]):
        (id, text, index, source) of each good note, and the shard's error entries.
    RAISES (InputError): When the input no longer matches the plan (before
        any of the shard is annotated).
    """
    bad = {entry["index"]: entry for entry in shard["bad"]}
    notes: List[Tuple[Any, str, int, str]] = []
    count = 0
    digest = hashlib.sha256()
    for record, _ in source.records(shard["start"]):
        if count == shard["records"]:
            break
        count += 1
        _digest(digest, record)
        reason = judge(record, max_chars)
        if record.index in bad:
            if reason is not None and reason != bad[record.index]["reason"]:
                raise InputError(f"Record {record.index} changed since the job was planned.")
            continue
        if reason is not None:
            raise InputError(f"Record {record.index} ({record.source}) changed since the job was planned.")
        notes.append((record.id, record.text, record.index, record.source))
    if count != shard["records"] or len(notes) != shard["notes"]:
        raise InputError(f"Shard {shard['shard']} changed since the job was planned "
                         f"({count} records read, {shard['records']} planned).")
    if "digest" in shard and digest.hexdigest() != shard["digest"]:  # plans written before digests have none
        raise InputError(f"Shard {shard['shard']} (records {shard['start']['index']} to "
                         f"{shard['start']['index'] + count - 1}) changed since the job was planned: "
                         "its content differs. Annotate the input afresh with --restart or a new OUTPUT.")
    return notes, list(shard["bad"])
