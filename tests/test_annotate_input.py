"""Annotate's input: .txt directories, JSONL, CSV and Parquet read as the same records,
shards read back from their locators, and every kind of bad record reported (never its text)."""

import csv
import json

import pytest

from spacy_clinlong.annotate import InputError, NoteInput
from spacy_clinlong.annotate.records import read_shard, shard_plan
from spacy_clinlong.io import judge

SECRET = "Zyxwvut"  # in every bad record's text: it must never come out


def write_inputs(tmp_path, notes):
    """The same notes as a .txt directory, JSONL, CSV and Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "txt"
    for note in notes:
        path = folder / f"{note['id']}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(note["text"], encoding="utf-8")
    jsonl = tmp_path / "notes.jsonl"
    jsonl.write_text("".join(json.dumps(n) + "\n" for n in notes), encoding="utf-8")
    table = tmp_path / "notes.csv"
    with table.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "id", "other"])
        writer.writeheader()
        for note in notes:
            writer.writerow({"text": note["text"], "id": note["id"], "other": "x"})
    parquet = tmp_path / "notes.parquet"
    pq.write_table(
        pa.table({"id": [n["id"] for n in notes], "text": [n["text"] for n in notes]}),
        parquet,
        row_group_size=7,
    )
    return {"txt": folder, "jsonl": jsonl, "csv": table, "parquet": parquet}


@pytest.fixture
def notes(short_notes):
    notes = short_notes(23)
    # Multi-line text with quotes and commas (CSV quoting), and a sub-directory id.
    notes[3]["text"] = 'Line one, "quoted".\nLine two\r\nthree'
    notes[5]["id"] = "ward-b/note-00005"
    return notes


@pytest.mark.parametrize("kind", ["txt", "jsonl", "csv", "parquet"])
def test_every_input_kind_reads_the_same_records(tmp_path, notes, kind):
    source = NoteInput(write_inputs(tmp_path, notes)[kind])
    assert source.kind == kind
    read = [(r.id, r.text) for r, _ in source.records()]
    expected = [(n["id"], n["text"]) for n in notes]
    if kind == "txt":  # sorted by path
        expected = sorted(expected, key=lambda item: item[0] + ".txt")
    if kind in ("txt", "csv"):  # a text file's and csv's newlines are read as written
        assert [i for i, _ in read] == [i for i, _ in expected]
        assert [t.replace("\r\n", "\n") for _, t in read] == [t.replace("\r\n", "\n") for _, t in expected]
    else:
        assert read == expected


@pytest.mark.parametrize("kind", ["txt", "jsonl", "csv", "parquet"])
@pytest.mark.parametrize("shard_size", [1, 5, 7, 100])
def test_shards_read_back_from_their_locators(tmp_path, notes, kind, shard_size):
    source = NoteInput(write_inputs(tmp_path, notes)[kind])
    whole = [(r.id, r.text, r.index) for r, _ in source.records()]
    shards = list(shard_plan(source, shard_size=shard_size, max_chars=10**6))
    assert [s["records"] for s in shards[:-1]] == [shard_size] * (len(shards) - 1)
    assert sum(s["records"] for s in shards) == len(notes)
    again = []
    for shard in json.loads(json.dumps(shards)):  # as stored in plan.jsonl
        good, bad = read_shard(source, shard, max_chars=10**6)
        assert bad == []
        again += [(note_id, text, index) for note_id, text, index, _ in good]
    assert again == whole


def test_bad_jsonl_records_are_reported_by_reason_without_text(tmp_path):
    lines = [
        json.dumps({"id": "a", "text": "Good note one."}),
        json.dumps({"id": "b", "text": "   \n "}),
        b'{"id": "c", "text": "bad \xff\xfe ' + SECRET.encode() + b'"}',
        "{not json " + SECRET,
        json.dumps({"text": SECRET + " without id"}),
        json.dumps({"id": "", "text": SECRET}),
        json.dumps({"id": 1.5, "text": SECRET}),
        json.dumps({"id": "a", "text": SECRET + " again"}),
        json.dumps({"id": "d", "text": SECRET * 50}),
        json.dumps({"id": "e"}),
        json.dumps([SECRET]),
        "",
        json.dumps({"id": 7, "text": "Good note two."}),
        json.dumps({"id": "7", "text": "Good note three: the id '7' is not the id 7."}),
    ]
    path = tmp_path / "notes.jsonl"
    path.write_bytes(b"\n".join(line if isinstance(line, bytes) else line.encode() for line in lines) + b"\n")
    source = NoteInput(path)
    shards = list(shard_plan(source, shard_size=4, max_chars=100))
    bad = [entry for shard in shards for entry in shard["bad"]]
    assert [(e["index"], e["id"], e["reason"]) for e in bad] == [
        (1, "b", "empty"),
        (2, "c", "undecodable"),
        (3, None, "invalid_json"),
        (4, None, "missing_id"),
        (5, "", "missing_id"),
        (6, None, "invalid_id"),
        (7, "a", "duplicate_id"),
        (8, "d", "too_long"),
        (9, "e", "missing_text"),
        (10, None, "invalid_json"),
    ]
    assert [e["source"] for e in bad][:3] == ["notes.jsonl:2", "notes.jsonl:3", "notes.jsonl:4"]
    assert bad[7]["length"] == 50 * len(SECRET)
    assert SECRET not in json.dumps(bad)
    good = [note for shard in shards for note in read_shard(source, shard, max_chars=100)[0]]
    assert [(note_id, index) for note_id, _, index, _ in good] == [("a", 0), (7, 11), ("7", 12)]


def test_bad_txt_and_csv_records(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.txt").write_text("Good note.")
    (folder / "b.txt").write_bytes(b"\xff\xfe" + SECRET.encode())
    (folder / "c.txt").write_text("  \n")
    (folder / "readme.md").write_text("not a note")
    (folder / "d.TXT").write_text("Another good note.")
    source = NoteInput(folder)
    shards = list(shard_plan(source, shard_size=10, max_chars=1000))
    assert [(e["id"], e["reason"], e["source"]) for e in shards[0]["bad"]] == [
        ("b", "undecodable", "b.txt"),
        ("c", "empty", "c.txt"),
    ]
    assert [n[0] for n in read_shard(source, shards[0], max_chars=1000)[0]] == ["a", "d"]

    table = tmp_path / "notes.csv"
    table.write_bytes(
        b"id,text\nx1,Good note.\n,orphan "
        + SECRET.encode()
        + b'\nx3,"bad \xff '
        + SECRET.encode()
        + b'"\nx1,dup\nx5\nx6,"Multi\nline, good"\n'
    )
    source = NoteInput(table)
    shards = list(shard_plan(source, shard_size=10, max_chars=1000))
    assert [(e["id"], e["reason"], e["source"]) for e in shards[0]["bad"]] == [
        ("", "missing_id", "notes.csv:3"),
        ("x3", "undecodable", "notes.csv:4"),
        ("x1", "duplicate_id", "notes.csv:5"),
        ("x5", "malformed_csv", "notes.csv:6"),
    ]
    good = read_shard(source, shards[0], max_chars=1000)[0]
    assert [(n[0], n[1]) for n in good] == [("x1", "Good note."), ("x6", "Multi\nline, good")]
    assert SECRET not in json.dumps(shards)


def test_inputs_that_cannot_be_read_say_why(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        NoteInput(tmp_path / "missing.jsonl")
    (tmp_path / "notes.xml").write_text("<notes/>")
    with pytest.raises(InputError, match="expected a directory of .txt files"):
        NoteInput(tmp_path / "notes.xml")
    (tmp_path / "notes.csv").write_text("note_id,body\n1,text\n")
    with pytest.raises(InputError, match="no column 'id'"):
        NoteInput(tmp_path / "notes.csv")
    assert NoteInput(tmp_path / "notes.csv", id_field="note_id", text_field="body").kind == "csv"
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="has no .txt files"):
        list(NoteInput(tmp_path / "empty").records())


def test_a_changed_input_is_noticed_when_a_shard_is_read_again(tmp_path, notes):
    path = write_inputs(tmp_path, notes)["jsonl"]
    source = NoteInput(path)
    shards = list(shard_plan(source, shard_size=10, max_chars=10**6))
    lines = path.read_text().splitlines()
    lines[12] = json.dumps({"id": "note-00012", "text": ""})
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="changed since the job was planned"):
        read_shard(NoteInput(path), shards[1], max_chars=10**6)


def test_judge_accepts_string_and_integer_ids_only():
    from spacy_clinlong.io import RawRecord

    assert judge(RawRecord(0, "x", "text", "s"), 100) is None
    assert judge(RawRecord(0, 3, "text", "s"), 100) is None
    assert judge(RawRecord(0, True, "text", "s"), 100) == "invalid_id"
    assert judge(RawRecord(0, "x", "t" * 101, "s"), 100) == "too_long"


def test_a_csv_note_past_csvs_field_limit_is_read_and_the_limit_left_as_it_was(tmp_path):
    # csv refuses fields over 128 KiB by default; a whole discharge summary can be longer. The limit
    # is process-wide, so the reader raises it only while it parses a row.
    long_note = "Plan: continue. " * 20_000
    table = tmp_path / "notes.csv"
    with table.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([["id", "text"], ["a", long_note], ["b", "Short note."]])
    before = csv.field_size_limit()
    source = NoteInput(table)
    records = source.records()
    first, _ = next(records)
    assert first.text == long_note and csv.field_size_limit() == before  # also while the reader waits
    assert [r.id for r, _ in records] == ["b"]
    shards = list(shard_plan(source, shard_size=1, max_chars=10**6))
    assert read_shard(source, shards[0], max_chars=10**6)[0][0][1] == long_note
    assert csv.field_size_limit() == before


def test_texts_only_need_no_id_column(tmp_path):
    (tmp_path / "notes.csv").write_text('body\nFirst note.\n"Second, note."\n')
    source = NoteInput(tmp_path / "notes.csv", id_field=None, text_field="body")
    records = [r for r, _ in source.records()]
    assert [(r.id, r.text) for r in records] == [(None, "First note."), (None, "Second, note.")]
    assert [judge(r, need_id=False) for r in records] == [None, None]
    assert judge(records[0]) == "missing_id"  # annotate still needs one
