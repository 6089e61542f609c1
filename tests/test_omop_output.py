"""NOTE_NLP out: rows mapped from a medspaCy doc, the v5.4 table, and each shard written exactly once,
through a rollback, a kill -9 and four racing processes, on SQLite and (where available) PostgreSQL."""

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

sa = pytest.importorskip("sqlalchemy")

from pg_server import pg_database, pg_url  # noqa: E402, F401 - the PostgreSQL server fixtures

from spacy_clinlong.io.omop_mapping import (  # noqa: E402
    note_nlp_rows,
    note_result_rows,
    read_concepts,
    snippet_for,
)
from spacy_clinlong.io.omop_output import (  # noqa: E402
    NOTE_NLP_COLUMNS,
    NoteNlpWriter,
    OutputError,
    database_url,
)

NOTE = (
    "Seen in clinic for fever.\n"
    "HISTORY OF PRESENT ILLNESS: Denies chest pain. Reports cough   for two\n\n days.\n"
    "FAMILY HISTORY: Mother with diabetes.\n"
    "PAST MEDICAL HISTORY: Hypertension.\n"
)
DAY = date(2026, 12, 1)
WHEN = datetime(2026, 12, 1, 8, 30)
SYSTEM = "spacy-clinlong 0.1.0: en_test 1.0.0"
# CREATE TABLE of OMOP CDM v5.4 (OHDSI/CommonDataModel inst/ddl/5.4/postgresql), as a site would have it.
USER_DDL = (
    "CREATE TABLE {table} (note_nlp_id integer NOT NULL, note_id integer NOT NULL, section_concept_id integer, "
    'snippet varchar(250), "offset" varchar(50), lexical_variant varchar(250) NOT NULL, '
    "note_nlp_concept_id integer, note_nlp_source_concept_id integer, nlp_system varchar(250), "
    "nlp_date date NOT NULL, nlp_datetime TIMESTAMP, term_exists varchar(1), term_temporal varchar(50)"
    "{last})"
)


@pytest.fixture(scope="module")
def note_json():
    """RETURNS (dict): The JSON view of NOTE through a ruler, medspaCy's sections and ConText."""
    import spacy

    from spacy_clinlong.integrations.medspacy import add_medspacy, doc_to_json

    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    problems = ("fever", "chest pain", "diabetes", "Hypertension")
    ruler.add_patterns([{"label": "PROBLEM", "pattern": p} for p in problems])
    ruler.add_patterns([{"label": "SYMPTOM", "pattern": "cough"}])
    add_medspacy(nlp)
    return doc_to_json(nlp(NOTE), 42)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    """RETURNS (Tuple[str, Optional[str]]): A URL and schema with no tables of ours yet: a SQLite
    file, or a new PostgreSQL database (password in the URL) with the tables in OMOP's `cdm` schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'omop.db'}", None
    return request.getfixturevalue("pg_database"), "cdm"


def fake_rows(shard: int, n: int):
    """RETURNS (List[dict]): n NOTE_NLP rows whose note_id says their shard (shard * 10**7 + i)."""
    return [
        {
            "note_id": shard * 10**7 + i,
            "section_concept_id": 0,
            "snippet": "patient denies chest pain on exertion",
            "offset": str(i),
            "lexical_variant": "chest pain",
            "note_nlp_concept_id": 0,
            "note_nlp_source_concept_id": 0,
            "nlp_system": SYSTEM,
            "nlp_date": DAY,
            "nlp_datetime": WHEN,
            "term_exists": "n",
            "term_temporal": None,
            "term_modifiers": "negated=true,label=PROBLEM",
        }
        for i in range(n)
    ]


def count(writer, table, where=None) -> int:
    query = sa.select(sa.func.count()).select_from(getattr(writer.tables, table))
    with writer.engine.connect() as conn:
        return conn.scalar(query if where is None else query.where(where))


def shard_rows(writer, shard: int) -> int:
    note_id = writer.tables.note_nlp.c.note_id
    return count(writer, "note_nlp", note_id.between(shard * 10**7, shard * 10**7 + 10**7 - 1))


# The mapping -------------------------------------------------------------------------------------------


def test_every_note_nlp_column_from_a_medspacy_doc(note_json, tmp_path):
    sections_file = tmp_path / "sections.json"
    sections_file.write_text(json.dumps({"history_of_present_illness": 4086, "family_history": 4167}))
    rows = note_nlp_rows(
        note_json,
        42,
        nlp_system=SYSTEM,
        nlp_date=DAY,
        nlp_datetime=WHEN,
        section_concepts=read_concepts(sections_file),
        concepts={"chest pain": 77670, "SYMPTOM": 254761},
        snippet_window=20,
        text=NOTE,
    )
    assert [row.keys() for row in rows] == [set(NOTE_NLP_COLUMNS) - {"note_nlp_id"}] * 5
    by_term = {row["lexical_variant"]: row for row in rows}
    assert list(by_term) == ["fever", "chest pain", "cough", "diabetes", "Hypertension"]
    for row in rows:
        assert row["note_id"] == 42 and row["note_nlp_source_concept_id"] == 0
        assert row["nlp_system"] == SYSTEM and row["nlp_date"] == DAY and row["nlp_datetime"] == WHEN
        start = int(row["offset"])
        assert NOTE[start : start + len(row["lexical_variant"])] == row["lexical_variant"]
        assert row["lexical_variant"] in row["snippet"] and len(row["snippet"]) <= 250
        assert "\n" not in row["snippet"] and "  " not in row["snippet"]
    negated, plain, family, historical = (
        by_term[t] for t in ("chest pain", "cough", "diabetes", "Hypertension")
    )
    assert (negated["term_exists"], negated["term_temporal"]) == ("n", None)
    assert (plain["term_exists"], plain["term_temporal"]) == ("y", None)
    assert family["term_exists"] == "n"  # the mother's diabetes is no finding of the patient
    assert (historical["term_exists"], historical["term_temporal"]) == ("y", "past")
    assert negated["term_modifiers"] == (
        "negated=true,historical=false,family=false,hypothetical=false,uncertain=false,label=PROBLEM"
    )
    assert plain["term_modifiers"].endswith("label=SYMPTOM") and "family=true" in family["term_modifiers"]
    # Sections: mapped by name; an unmapped one and the text before the first header get 0.
    assert negated["section_concept_id"] == plain["section_concept_id"] == 4086
    assert family["section_concept_id"] == 4167
    assert historical["section_concept_id"] == 0 and by_term["fever"]["section_concept_id"] == 0
    # Concepts: by lowercase term first, then by label; 0 otherwise.
    assert (negated["note_nlp_concept_id"], plain["note_nlp_concept_id"]) == (77670, 254761)
    assert historical["note_nlp_concept_id"] == 0
    assert plain["snippet"] == "chest pain. Reports cough for two days. F"  # 20 characters each side


def test_mapping_without_medspacy_flags_text_or_sections_in_entities():
    doc_json = {
        "entities": [
            {"start": 4, "end": 9, "text": "x" * 300, "label": "A", "hypothetical": True},
            {"start": 30, "end": 36, "text": "co\x00ugh", "label": "B", "uncertain": None},
        ],
        "sections": [{"category": None, "start": 0, "end": 20}, {"category": "plan", "start": 20, "end": 50}],
    }
    aware = datetime(2026, 12, 1, 10, 0, tzinfo=timezone(timedelta(hours=2)))
    first, second = note_nlp_rows(
        doc_json, 1, nlp_system="s", nlp_date=DAY, nlp_datetime=aware, section_concepts={"plan": 5}
    )
    assert first["lexical_variant"] == "x" * 250 and first["snippet"] == "x" * 250  # no text: the entity
    assert (first["term_exists"], first["term_modifiers"]) == ("n", "hypothetical=true,label=A")
    assert (second["term_exists"], second["term_modifiers"]) == ("y", "label=B")
    assert second["lexical_variant"] == second["snippet"] == "cough"  # no NUL: PostgreSQL refuses it
    assert (first["section_concept_id"], second["section_concept_id"]) == (0, 5)  # found by offsets
    assert first["nlp_datetime"] == datetime(2026, 12, 1, 8, 0)  # stored as UTC


def test_snippet_keeps_the_entity_and_at_most_250_characters():
    text = "a " * 400 + "ENTITY" + " b" * 400
    start = text.index("ENTITY")
    snippet = snippet_for(text, start, start + 6, 500)
    assert len(snippet) <= 250 and "ENTITY" in snippet
    assert abs(snippet.index("ENTITY") - (len(snippet) - snippet.index("ENTITY") - 6)) <= 2  # centred
    assert snippet_for("x" * 1000, 10, 900, 50) == "x" * 250


def test_cats_and_answers_become_note_results():
    doc_json = {
        "cats": {"SMOKER": 0.75},
        "answers": [
            {"question": "Which drug?", "answer": {"start": 3, "end": 503, "text": "d" * 500, "score": 0.5}},
            {"question": "Which dose?", "answer": None},
        ],
    }
    cat, answered, unanswered = note_result_rows(doc_json, 9)
    assert cat == {
        "note_id": 9,
        "kind": "cat",
        "name": "SMOKER",
        "value": 0.75,
        "answer_start": None,
        "answer_end": None,
        "answer_text": None,
    }
    assert (answered["name"], answered["value"], answered["answer_start"], answered["answer_end"]) == (
        "Which drug?",
        0.5,
        3,
        503,
    )
    assert answered["answer_text"] == "d" * 250
    assert (
        unanswered["kind"] == "answer" and unanswered["value"] is None and unanswered["answer_text"] is None
    )


def test_concept_files_json_csv_tsv(tmp_path):
    (tmp_path / "a.csv").write_text("section,concept_id\nplan,5\nfamily_history,-7\n")
    (tmp_path / "a.tsv").write_text("plan\t5\n")
    (tmp_path / "bad.json").write_text(json.dumps({"plan": "five"}))
    assert read_concepts(tmp_path / "a.csv") == {"plan": 5, "family_history": -7}
    assert read_concepts(tmp_path / "a.tsv") == {"plan": 5}
    with pytest.raises(ValueError, match="entry 1"):
        read_concepts(tmp_path / "bad.json")


def test_urls_use_psycopg_3_and_never_show_the_password():
    assert database_url("postgresql://u:s3cret@h/db").drivername == "postgresql+psycopg"
    with pytest.raises(ValueError) as err:
        database_url("mysql://u:s3cret@h/db")
    assert "s3cret" not in str(err.value) and "***" in str(err.value)


# DDL ---------------------------------------------------------------------------------------------------


def test_note_nlp_is_created_with_the_v5_4_columns(db):
    url, schema = db
    writer = NoteNlpWriter(url, schema=schema)
    columns = {c["name"]: c for c in sa.inspect(writer.engine).get_columns("note_nlp", schema=schema)}
    assert list(columns) == list(NOTE_NLP_COLUMNS)
    not_null = {name for name, column in columns.items() if not column["nullable"]}
    assert not_null == {"note_nlp_id", "note_id", "lexical_variant", "nlp_date"}
    lengths = {name: getattr(column["type"], "length", None) for name, column in columns.items()}
    assert lengths["snippet"] == lengths["lexical_variant"] == lengths["nlp_system"] == 250
    assert (lengths["offset"], lengths["term_exists"], lengths["term_temporal"]) == (50, 1, 50)
    assert lengths["term_modifiers"] == 2000
    assert isinstance(columns["note_nlp_id"]["type"], sa.BigInteger)
    assert isinstance(columns["nlp_date"]["type"], sa.Date)
    assert isinstance(columns["nlp_datetime"]["type"], sa.DateTime)
    tables = set(sa.inspect(writer.engine).get_table_names(schema=schema))
    assert {"clinlong_job", "clinlong_manifest", "clinlong_errors", "clinlong_note_results"} <= tables
    NoteNlpWriter(url, schema=schema)  # again: the tables are there, and kept


def _user_table(url, schema, last):
    engine = sa.create_engine(database_url(url))
    with engine.begin() as conn:
        if schema:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        conn.exec_driver_sql(USER_DDL.format(table=f"{schema}.note_nlp" if schema else "note_nlp", last=last))
    engine.dispose()


def test_an_existing_note_nlp_table_is_written_into(db):
    url, schema = db
    _user_table(url, schema, ", term_modifiers varchar(2000)")
    writer = NoteNlpWriter(url, schema=schema)
    assert writer.write_shard("job", 0, fake_rows(0, 5), [], [], {"notes": 1})
    assert writer.write_shard("job", 1, fake_rows(1, 3), [], [], {"notes": 1})
    with writer.engine.connect() as conn:
        ids = conn.scalars(sa.select(writer.tables.note_nlp.c.note_nlp_id)).all()
    assert sorted(ids) == list(range(1, 9))


def test_an_existing_table_without_a_column_is_a_one_line_error(db):
    url, schema = db
    _user_table(url, schema, "")
    with pytest.raises(OutputError) as err:
        NoteNlpWriter(url, schema=schema)
    message = str(err.value)
    assert "term_modifiers" in message and "\n" not in message
    password = sa.engine.make_url(url).password
    assert not password or password not in message


# Exactly once -----------------------------------------------------------------------------------------


def test_a_shard_written_twice_is_written_once(db):
    writer = NoteNlpWriter(db[0], schema=db[1])
    results = note_result_rows({"cats": {"SMOKER": 0.5}}, 30_000_001)
    errors = [{"index": 7, "id": "n-7", "reason": "empty", "source": "notes.jsonl:8", "length": 0}]
    assert writer.write_shard("job", 3, fake_rows(3, 50), results, errors, {"notes": 50, "errors": 1})
    assert not writer.write_shard("job", 3, fake_rows(3, 50), results, errors, {"notes": 50, "errors": 1})
    assert shard_rows(writer, 3) == 50 and writer.done_shards("job") == {3}
    assert count(writer, "results") == 1 and count(writer, "errors") == 1 and count(writer, "manifest") == 1
    assert writer.write_shard("other-job", 3, fake_rows(4, 2), [], [], {})  # the key is (job, shard)
    with writer.engine.connect() as conn:
        manifest = conn.execute(sa.select(writer.tables.manifest).order_by("job_key")).mappings().all()
    assert [(m["first_note_nlp_id"], m["last_note_nlp_id"], m["note_nlp_rows"]) for m in manifest] == [
        (1, 50, 50),
        (51, 52, 2),
    ]


def test_the_losing_writer_rolls_back_on_the_primary_key(db, monkeypatch):
    # As if the other writer's manifest row landed after this one looked.
    writer = NoteNlpWriter(db[0], schema=db[1])
    assert writer.write_shard("job", 3, fake_rows(3, 20), [], [], {})
    monkeypatch.setattr(NoteNlpWriter, "_has_shard", lambda *args: False)
    assert not writer.write_shard("job", 3, fake_rows(3, 20), [], [], {})
    assert shard_rows(writer, 3) == 20 and count(writer, "manifest") == 1


def test_a_transaction_interrupted_after_the_rows_leaves_nothing(db, monkeypatch):
    writer = NoteNlpWriter(db[0], schema=db[1])

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # after the rows, results and errors; before the manifest and commit

    monkeypatch.setattr(writer.tables.manifest, "insert", crash)
    errors = [{"index": 1, "id": 5, "reason": "too_long", "source": "x.csv:2", "length": 10**7}]
    with pytest.raises(KeyboardInterrupt):
        writer.write_shard(
            "job", 3, fake_rows(3, 1000), note_result_rows({"cats": {"A": 1.0}}, 1), errors, {}
        )
    assert count(writer, "note_nlp") == count(writer, "results") == count(writer, "errors") == 0
    assert writer.done_shards("job") == set()
    monkeypatch.undo()
    assert writer.write_shard("job", 3, fake_rows(3, 1000), [], errors, {})
    assert shard_rows(writer, 3) == 1000


@pytest.mark.parametrize("table", ["note_nlp", "errors"])
def test_a_refused_row_rolls_back_and_its_values_stay_out_of_the_message(db, table):
    # PostgreSQL's own message repeats the failing row ("Failing row contains ...") or COPY line.
    writer = NoteNlpWriter(db[0], schema=db[1])
    rows = fake_rows(3, 10)
    errors = [{"index": 1, "id": 5, "reason": "empty", "source": "SECRET-NOTE-TEXT", "length": 3}]
    if table == "note_nlp":
        rows[5].update(lexical_variant=None, snippet="SECRET-NOTE-TEXT")  # lexical_variant is NOT NULL
    else:
        errors[0]["reason"] = None  # so is reason
    with pytest.raises(OutputError) as err:
        writer.write_shard("job", 3, rows, [], errors, {})
    assert "SECRET" not in str(err.value) and err.value.__cause__ is None
    assert count(writer, "note_nlp") == count(writer, "errors") == 0 and writer.done_shards("job") == set()


KILLED_WRITER = """
import sys, time
from test_omop_output import fake_rows
from spacy_clinlong.io.omop_output import NoteNlpWriter
writer = NoteNlpWriter(sys.argv[1], schema=sys.argv[2] or None)
def stop(*args, **kwargs):
    print("rows sent", flush=True)  # every row is in the transaction; the manifest and commit are not
    while True:
        time.sleep(1)
writer.tables.manifest.insert = stop
writer.write_shard("job", 7, fake_rows(7, int(sys.argv[3])), [], [], {})
"""


def test_a_writer_killed_mid_shard_leaves_none_of_its_rows(db):
    url, schema = db
    writer = NoteNlpWriter(url, schema=schema)
    assert writer.write_shard("job", 1, fake_rows(1, 10), [], [], {})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path])}
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, url, schema or "", "200000"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout.readline().strip() == "rows sent"
        assert count(writer, "note_nlp") == 10  # not committed: invisible to others
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(60)
    assert child.returncode == -signal.SIGKILL
    assert shard_rows(writer, 7) == 0 and writer.done_shards("job") == {1}
    assert writer.write_shard("job", 7, fake_rows(7, 200_000), [], [], {})
    assert shard_rows(writer, 7) == 200_000 and count(writer, "note_nlp") == 200_010
    assert not writer.write_shard("job", 7, fake_rows(7, 200_000), [], [], {})


def _race(url, schema, worker, barrier, queue):
    writer = NoteNlpWriter(url, schema=schema)
    own = [worker * 2, worker * 2 + 1]
    shared = [100 + (worker + k) % 4 for k in range(4)]  # each worker starts on a different shared shard
    barrier.wait()
    for shard in [own[0], *shared, own[1]]:
        queue.put((shard, writer.write_shard("race", shard, fake_rows(shard, 2000), [], [], {"notes": 1})))
    writer.engine.dispose()


def test_four_processes_write_every_shard_exactly_once(db):
    url, schema = db
    NoteNlpWriter(url, schema=schema)  # tables first: the race is on the shards
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(4), ctx.Queue()
    workers = [ctx.Process(target=_race, args=(url, schema, i, barrier, queue)) for i in range(4)]
    for process in workers:
        process.start()
    outcomes = [queue.get(timeout=300) for _ in range(4 * 6)]
    for process in workers:
        process.join(60)
        assert process.exitcode == 0
    written = {}
    for shard, ok in outcomes:
        written[shard] = written.get(shard, 0) + ok
    shards = [*range(8), 100, 101, 102, 103]
    assert written == {shard: 1 for shard in shards}
    writer = NoteNlpWriter(url, schema=schema)
    assert all(shard_rows(writer, shard) == 2000 for shard in shards)
    ids = writer.tables.note_nlp.c.note_nlp_id
    with writer.engine.connect() as conn:
        total, distinct, top = conn.execute(
            sa.select(sa.func.count(), sa.func.count(ids.distinct()), sa.func.max(ids))
        ).one()
    assert total == distinct == top == 2000 * len(shards)
    assert writer.done_shards("race") == set(shards)


# Throughput (a figure to read, not an assert on time) -------------------------------------------------


def test_throughput_of_100_000_rows(db, capsys):
    writer = NoteNlpWriter(db[0], schema=db[1])
    rows = fake_rows(5, 100_000)
    start = time.perf_counter()
    assert writer.write_shard("bench", 5, rows, [], [], {"notes": 1000})
    seconds = time.perf_counter() - start
    assert shard_rows(writer, 5) == 100_000
    with capsys.disabled():
        print(
            f"\nNOTE_NLP {writer.url.get_backend_name()}: {len(rows) / seconds:,.0f} rows/s ({seconds:.2f} s)"
        )
