"""Annotate's records: shards of consecutive records planned once, read back, and the errors-file lines.

The reader (`spacy_clinlong.io.NoteInput`) numbers every record of an input
and gives a locator after each, so a job can be cut into shards of consecutive
records and any shard read again later from its locator alone. A bad record
is reported by index, id, reason, source (file and line or row) and length;
its text never leaves this module.
"""

import hashlib
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ..io import InputError, NoteInput, RawRecord, id_problem, integer_id, judge


def error_entry(record: RawRecord, reason: str, detail: Optional[str] = None) -> Dict[str, Any]:
    """RETURNS (Dict[str, Any]): The errors-file line for a record: never its text."""
    length = len(record.text) if isinstance(record.text, str) else record.length
    # Only ids that can be written back as they were read.
    note_id = record.id if id_problem(record.id) is None else None
    entry = {
        "index": record.index,
        "id": note_id,
        "reason": reason,
        "source": record.source,
        "length": length,
    }
    if detail:
        entry["detail"] = detail
    return entry


def id_key(note_id: Any, *, integer_ids: bool = False) -> str:
    """RETURNS (str): The key two ids share when they are duplicates: 1 and "1" differ, except
    where ids must be integers (NOTE_NLP's note_id), and "1" is 1."""
    if integer_ids:
        note_id = integer_id(note_id)
    return f"{type(note_id).__name__}:{note_id}"


def _digest(digest, record: RawRecord) -> None:
    """Add a record to its shard's digest: index, id, reason and text (or raw length), so a
    record edited in place, even to the same length, no longer matches the plan."""
    note_id = record.id if isinstance(record.id, (str, int)) else type(record.id).__name__
    text = record.text if isinstance(record.text, str) else f"{type(record.text).__name__}:{record.length}"
    digest.update(f"{record.index}\0{note_id!r}\0{record.reason}\0".encode("utf-8", "surrogatepass"))
    digest.update(text.encode("utf-8", "surrogatepass") + b"\0\n")


def shard_plan(
    source: NoteInput, *, shard_size: int, max_chars: int, integer_ids: bool = False
) -> Iterator[Dict[str, Any]]:
    """Scan the whole input once and cut it into shards of `shard_size` records.

    Duplicates are found here (the first record with an id is kept), so the
    plan names every bad record; a shard's reader only re-reads its range. A
    database input reads in id order (`ordered_ids`): a duplicate follows its
    first, so only the last id is kept, and memory stays flat in the notes.

    source (NoteInput): The input.
    shard_size (int): Records per shard (bad ones included).
    max_chars (int): Longest text annotated.
    integer_ids (bool): Ids must be integers, or strings of one (a database OUTPUT's NOTE_NLP).
    YIELDS (Dict[str, Any]): {"shard", "start" (locator), "records", "notes",
        "bad" (error entries), "digest" (of its records' content)} for each shard, in order.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    seen = set()
    ordered = bool(getattr(source, "ordered_ids", False))
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
        reason = judge(record, max_chars, integer_ids=integer_ids)
        if reason is None:
            key = id_key(record.id, integer_ids=integer_ids)
            if key in seen:
                reason = "duplicate_id"
            elif ordered:
                seen = {key}
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


def read_shard(
    source: NoteInput, shard: Dict[str, Any], *, max_chars: int, integer_ids: bool = False
) -> Tuple[List[Tuple[Any, str, int, str]], List[Dict[str, Any]]]:
    """Read one shard of a plan back: its good notes and its bad records.

    source (NoteInput): The input the plan was made from.
    shard (Dict[str, Any]): A shard from `shard_plan`.
    max_chars (int): Longest text annotated (as in the plan).
    integer_ids (bool): As in the plan.
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
        reason = judge(record, max_chars, integer_ids=integer_ids)
        if record.index in bad:
            if reason is not None and reason != bad[record.index]["reason"]:
                raise InputError(f"Record {record.index} changed since the job was planned.")
            continue
        if reason is not None:
            raise InputError(f"Record {record.index} ({record.source}) changed since the job was planned.")
        notes.append((record.id, record.text, record.index, record.source))
    if count != shard["records"] or len(notes) != shard["notes"]:
        raise InputError(
            f"Shard {shard['shard']} changed since the job was planned "
            f"({count} records read, {shard['records']} planned)."
        )
    if "digest" in shard and digest.hexdigest() != shard["digest"]:  # plans written before digests have none
        raise InputError(
            f"Shard {shard['shard']} (records {shard['start']['index']} to "
            f"{shard['start']['index'] + count - 1}) changed since the job was planned: "
            "its content differs. Annotate the input afresh with --restart or a new OUTPUT."
        )
    return notes, list(shard["bad"])
