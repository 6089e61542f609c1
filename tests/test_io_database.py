"""DatabaseInput: an OMOP NOTE table in SQLite and PostgreSQL read as numbered records, like NoteInput."""

import datetime
import itertools
import json
import random
import sqlite3
import tracemalloc

import pytest
from pg_server import pg_database, pg_url  # noqa: F401 - fixtures shared with the NOTE_NLP writer's tests

from spacy_clinlong.annotate.records import read_shard, shard_plan
from spacy_clinlong.io import DatabaseInput, InputError, is_database_url, judge, redact_url

sa = pytest.importorskip("sqlalchemy")

N_NOTES = 300
# Synthetic concept ids: two note types, so `where` has something to pick.
DISCHARGE, PROGRESS = 44814637, 44814640


def note_text(i: int) -> str:
    """A short synthetic note (no real clinical data)."""
    return f"Synthetic note {i}. Seen for follow-up visit {i % 9 + 1}; plan unchanged, return in {i % 5 + 1} weeks."


def note_id(i: int) -> int:
    return 1000 + 7 * i  # gaps: ids are not row numbers


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    """An empty database on each engine (PostgreSQL's server starts once per session)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cdm.sqlite'}"
    return request.getfixturevalue("pg_database")


def make_note_table(url, n=N_NOTES, *, name="note", schema=None, text=note_text):
    """An OMOP CDM 5.4 NOTE table (most of its columns) with `n` synthetic notes, inserted out of order."""
    metadata = sa.MetaData(schema=schema)
    table = sa.Table(
        name,
        metadata,
        sa.Column("note_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("person_id", sa.BigInteger, nullable=False),
        sa.Column("note_date", sa.Date, nullable=False),
        sa.Column("note_datetime", sa.DateTime),
        sa.Column("note_type_concept_id", sa.Integer, nullable=False),
        sa.Column("note_class_concept_id", sa.Integer, nullable=False),
        sa.Column("note_title", sa.String(250)),
        sa.Column("note_text", sa.Text, nullable=False),
        sa.Column("encoding_concept_id", sa.Integer, nullable=False),
        sa.Column("language_concept_id", sa.Integer, nullable=False),
        sa.Column("visit_occurrence_id", sa.BigInteger),
    )
    order = list(range(n))
    random.Random(0).shuffle(order)
    rows = [
        {
            "note_id": note_id(i),
            "person_id": 1 + i % 40,
            "note_date": datetime.date(2024, 1, 1) + datetime.timedelta(days=i % 365),
            "note_datetime": None,
            "note_type_concept_id": DISCHARGE if i % 3 == 0 else PROGRESS,
            "note_class_concept_id": 0,
            "note_title": f"Progress note: day {i}" if i % 10 == 0 else "Discharge summary",
            "note_text": text(i),
            "encoding_concept_id": 32678,
            "language_concept_id": 4180186,
            "visit_occurrence_id": None,
        }
        for i in order
    ]
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        if schema is not None:
            conn.execute(sa.schema.CreateSchema(schema))
        metadata.create_all(conn)
        conn.execute(table.insert(), rows)
    engine.dispose()


def make_custom_table(url, rows, *, text_type=None):
    """A table that is not OMOP's: `visit_notes(doc_key TEXT, body)`, both nullable, no key."""
    metadata = sa.MetaData()
    table = sa.Table(
        "visit_notes", metadata, sa.Column("doc_key", sa.Text), sa.Column("body", text_type or sa.Text)
    )
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        metadata.create_all(conn)
        conn.execute(table.insert(), [{"doc_key": key, "body": body} for key, body in rows])
    engine.dispose()


def read_all(source, locator=None):
    return list(source.records(locator))


def password_of(url):
    return sa.engine.make_url(url).password


def assert_one_safe_line(message, url, *forbidden):
    assert "\n" not in message
    assert redact_url(url) in message
    for secret in (password_of(url), *forbidden):
        if secret:
            assert secret not in message


@pytest.mark.parametrize(
    "text,expected",
    [
        ("sqlite:///notes.db", True),
        ("sqlite://", True),
        ("postgresql://user:pw@db.example/cdm", True),
        ("postgresql+psycopg://user:pw@/cdm?host=/run/postgresql", True),
        ("mysql://user@host/db", False),
        ("notes.jsonl", False),
        ("/data/sqlite/notes", False),
        ("C:\\notes\\postgresql", False),
    ],
)
def test_is_database_url(text, expected):
    assert is_database_url(text) is expected


def test_redact_url_hides_every_password():
    assert redact_url("postgresql://omop:s3cr3t@db:5432/cdm") == "postgresql://omop:***@db:5432/cdm"
    hidden = redact_url("postgresql+psycopg://omop@/cdm?host=/tmp&password=s3cr3t&sslpassword=k3y")
    assert "s3cr3t" not in hidden and "k3y" not in hidden and "password=***" in hidden
    assert redact_url("sqlite:////data/notes.db") == "sqlite:////data/notes.db"
    assert "s3cr3t" not in redact_url("postgresql://omop:s3cr3t@[bad")


@pytest.mark.parametrize("page_size", [7, 1000])
def test_reads_every_note_in_id_order(db_url, page_size):
    make_note_table(db_url)
    source = DatabaseInput(db_url, page_size=page_size)
    assert (source.kind, source.fields, source.ordered_ids) == ("database", ["note_id", "note_text"], True)
    records = read_all(source)
    assert [r.index for r, _ in records] == list(range(N_NOTES))
    assert [r.id for r, _ in records] == [note_id(i) for i in range(N_NOTES)]
    assert [r.text for r, _ in records] == [note_text(i) for i in range(N_NOTES)]
    assert all(judge(r) is None for r, _ in records)
    assert records[3][0].source == f"note:note_id={note_id(3)}"
    assert records[3][1] == {"index": 4, "after": note_id(3), "same": 1}


def test_resumes_from_any_locator(db_url):
    make_note_table(db_url)
    source = DatabaseInput(db_url, page_size=16)
    records = read_all(source)
    for k in (0, 15, 16, 17, 150, N_NOTES - 2, N_NOTES - 1):
        locator = json.loads(json.dumps(records[k][1]))  # as a plan stores it
        assert read_all(source, locator) == records[k + 1 :]


def test_where_filters_rows(db_url):
    make_note_table(db_url)
    source = DatabaseInput(db_url, where=f"note_type_concept_id = {DISCHARGE}", page_size=10)
    assert [r.id for r, _ in read_all(source)] == [note_id(i) for i in range(0, N_NOTES, 3)]
    assert [r.index for r, _ in read_all(source)] == list(range(N_NOTES // 3))
    # A colon and a percent sign in the condition are the database's, not bind parameters.
    titled = DatabaseInput(db_url, where="note_title LIKE '%: day%'")
    assert [r.id for r, _ in read_all(titled)] == [note_id(i) for i in range(0, N_NOTES, 10)]
    assert titled.fingerprint()["rows"] == N_NOTES // 10


def test_schema_qualified_table(db_url):
    schema = "main" if db_url.startswith("sqlite") else "cdm"
    make_note_table(db_url, 20, schema=None if schema == "main" else schema)
    source = DatabaseInput(db_url, table=f"{schema}.note", page_size=6)
    assert [r.id for r, _ in read_all(source)] == [note_id(i) for i in range(20)]
    assert read_all(source)[0][0].source == f"{schema}.note:note_id={note_id(0)}"


def test_bad_rows_become_reasons_and_annotate_plans_them(db_url):
    rows = [
        ("n-001", "A synthetic note."),
        ("n-002", None),
        (None, "No id here."),
        (None, "No id either."),
        ("", "An empty id."),
        ("n-003", "   "),
        ("n-004", "First of two."),
        ("n-004", "Second of two."),
        ("n-005", "Another synthetic note."),
    ]
    make_custom_table(db_url, rows)
    expected = {
        "visit_notes:doc_key=NULL #1": "missing_id",
        "visit_notes:doc_key=NULL #2": "missing_id",
        "visit_notes:doc_key=''": "missing_id",
        "visit_notes:doc_key='n-002'": "missing_text",
        "visit_notes:doc_key='n-003'": "empty",
    }
    if db_url.startswith("sqlite"):
        # SQLite's typing lets values that are not text into a TEXT column.
        with sqlite3.connect(sa.engine.make_url(db_url).database) as conn:
            conn.execute("INSERT INTO visit_notes VALUES (x'00ff', 'A BLOB id.')")
            conn.execute("INSERT INTO visit_notes VALUES ('n-006', CAST(x'4e6f74ff' AS TEXT))")
            conn.execute(
                "INSERT INTO visit_notes VALUES (CAST(x'6e2dff' AS TEXT), 'An id that is not UTF-8.')"
            )
        expected.update(
            {
                "visit_notes:doc_key=b'\\x00\\xff'": "invalid_id",
                "visit_notes:doc_key='n-006'": "undecodable",
                "visit_notes:doc_key='n-\\udcff'": "undecodable",
            }
        )
    source = DatabaseInput(db_url, table="visit_notes", id_field="doc_key", text_field="body", page_size=2)
    records = read_all(source)
    assert [r.index for r, _ in records] == list(range(len(records)))
    assert [r.id for r, _ in records[:2]] == [None, None]  # NULL ids first
    assert {r.source: judge(r) for r, _ in records if judge(r)} == expected
    ids = [r.id for r, _ in records[2:]]
    assert ids.index("n-004") + 1 == ids.index("n-004", ids.index("n-004") + 1)  # duplicates adjacent
    for k in range(-1, len(records) - 1):  # from the start, inside the NULL ids, inside a run of duplicates
        locator = {"index": 0} if k < 0 else json.loads(json.dumps(records[k][1]))
        assert read_all(source, locator) == records[k + 1 :]
    plan = list(shard_plan(source, shard_size=3, max_chars=1000))
    bad = {e["source"]: e["reason"] for shard in plan for e in shard["bad"]}
    assert bad == {**expected, "visit_notes:doc_key='n-004'": "duplicate_id"}
    notes = [note for shard in plan for note in read_shard(source, shard, max_chars=1000)[0]]
    assert [n[0] for n in notes] == ["n-001", "n-004", "n-005"]
    assert [n[1] for n in notes] == ["A synthetic note.", "First of two.", "Another synthetic note."]


def test_text_that_is_not_a_string(db_url):
    make_note_table(db_url, 5)
    source = DatabaseInput(db_url, text_field="person_id")
    assert [judge(r) for r, _ in read_all(source)] == ["missing_text"] * 5
    assert source.fingerprint()["rows"] == 5


def test_binary_text_is_read_as_utf8(db_url):
    make_custom_table(
        db_url, [("a", "Nöte".encode()), ("b", b"\xffnot utf-8"), ("c", None)], text_type=sa.LargeBinary
    )
    source = DatabaseInput(db_url, table="visit_notes", id_field="doc_key", text_field="body")
    records = [r for r, _ in read_all(source)]
    assert (records[0].text, records[0].length, judge(records[0])) == ("Nöte", 5, None)
    assert (records[1].text, records[1].length, judge(records[1])) == (None, 10, "undecodable")
    assert judge(records[2]) == "missing_text"


def test_duplicates_across_pages_are_each_read_once(db_url):
    rows = [(f"k{i // 3:02d}", f"copy {i % 3} of note {i // 3}") for i in range(30)]
    make_custom_table(db_url, rows[::-1])
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:  # unique only where no row is: the ids may still repeat
        conn.execute(sa.text("CREATE UNIQUE INDEX some_keys ON visit_notes (doc_key) WHERE doc_key > 'z'"))
    engine.dispose()
    source = DatabaseInput(db_url, table="visit_notes", id_field="doc_key", text_field="body", page_size=2)
    records = read_all(source)
    assert sorted((r.id, r.text) for r, _ in records) == sorted(rows)
    assert [(r.id, r.text) for r, _ in records] == sorted(rows)  # ids in order, a run's rows by text
    assert read_all(source, records[3][1]) == records[4:]  # a locator inside a run of three


@pytest.mark.parametrize(
    "kwargs,named",
    [
        ({"table": "notes"}, "'notes'"),
        ({"table": "nowhere.note"}, "'nowhere.note'"),
        ({"id_field": "id"}, "'id'"),
        ({"text_field": "text"}, "'text'"),
    ],
)
def test_missing_table_or_column_is_one_line(db_url, kwargs, named):
    make_note_table(db_url, 3)
    with pytest.raises(InputError) as err:
        DatabaseInput(db_url, **kwargs)
    assert named in str(err.value)
    assert_one_safe_line(str(err.value), db_url)


def test_id_column_must_hold_integers_or_strings(db_url):
    make_note_table(db_url, 3)
    with pytest.raises(InputError, match="integers or strings") as err:
        DatabaseInput(db_url, id_field="note_date")
    assert_one_safe_line(str(err.value), db_url)


def test_a_failing_condition_never_shows_a_note(db_url):
    make_note_table(db_url, 3, text=lambda i: f"Secret synthetic words {i}")
    with pytest.raises(InputError, match="condition") as err:
        DatabaseInput(db_url, where="no_such_column = 1")
    assert_one_safe_line(str(err.value), db_url)
    if not db_url.startswith("sqlite"):  # PostgreSQL quotes the value it cannot cast
        source = DatabaseInput(db_url, where="CAST(note_text AS INTEGER) = 1")
        with pytest.raises(InputError) as err:
            read_all(source)
        assert_one_safe_line(str(err.value), db_url, "Secret", "synthetic")
        assert "22P02" in str(err.value)  # invalid_text_representation: enough to look it up


def test_connection_failures_are_one_line_without_the_password(pg_url, tmp_path):  # noqa: F811
    url = sa.engine.make_url(pg_url)
    wrong = url.set(password="Wr0ng-pa55").render_as_string(hide_password=False)
    with pytest.raises(InputError, match="Cannot connect.*OperationalError") as err:
        DatabaseInput(wrong)
    assert_one_safe_line(str(err.value), wrong)
    refused = "postgresql://omop:Wr0ng-pa55@127.0.0.1:1/cdm"
    with pytest.raises(InputError, match="Cannot connect") as err:
        DatabaseInput(refused)
    assert_one_safe_line(str(err.value), refused)
    with pytest.raises(InputError, match="not supported") as err:
        DatabaseInput("postgresql+psycopg2://omop:Wr0ng-pa55@db/cdm")
    assert "Wr0ng-pa55" not in str(err.value)
    missing = tmp_path / "missing.sqlite"
    with pytest.raises(InputError, match="no SQLite file"):
        DatabaseInput(f"sqlite:///{missing}")
    assert not missing.exists()  # not created by the attempt


def test_fingerprint_notices_changed_notes(db_url):
    make_note_table(db_url, 50)
    source = DatabaseInput(db_url)
    first = source.fingerprint()
    assert json.loads(json.dumps(first)) == first == source.fingerprint()
    assert (first["rows"], first["null_ids"], first["min_id"], first["max_id"]) == (50, 0, 1000, note_id(49))
    engine = sa.create_engine(db_url)
    note = sa.table("note", sa.column("note_id"), sa.column("note_text"))
    with engine.begin() as conn:
        conn.execute(note.update().where(note.c.note_id == 1007).values(note_text="A longer synthetic text."))
    second = source.fingerprint()
    assert second != first
    with engine.begin() as conn:
        conn.execute(note.delete().where(note.c.note_id == 1014))
    assert source.fingerprint() not in (first, second)
    engine.dispose()


def peak_bytes(source):
    tracemalloc.start()
    try:
        count = sum(1 for _ in source.records())
        return count, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_number_of_notes(db_url):
    # Notes of ~600 characters, so that a page, not CPython's free lists (which tracemalloc counts
    # and which fill up a little with every query), sets the peak.
    make_note_table(db_url, 2_000, name="note_small", text=lambda i: note_text(i) * 6)
    make_note_table(db_url, 20_000, name="note_big", text=lambda i: note_text(i) * 6)
    small = DatabaseInput(db_url, table="note_small", page_size=200)
    big = DatabaseInput(db_url, table="note_big", page_size=200)
    for source in (small, big):  # warm up: SQLAlchemy compiles and caches each table's statements once
        list(itertools.islice(source.records(), 500))
    small_count, small_peak = peak_bytes(small)
    big_count, big_peak = peak_bytes(big)
    assert (small_count, big_count) == (2_000, 20_000)
    # Keeping every note of the big table would take over 50 times the small one's peak.
    assert big_peak < 1.5 * small_peak, (small_peak, big_peak)
