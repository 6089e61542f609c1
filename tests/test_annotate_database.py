"""annotate reads notes from a database (the OMOP NOTE table, or a table the user names) as it reads files."""

import json
from pathlib import Path

import pytest
import spacy
from pg_server import pg_database, pg_url  # noqa: F401 - the PostgreSQL server fixtures
from test_io_database import make_note_table, note_id, note_text
from typer.testing import CliRunner

from spacy_clinlong.annotate import JobSpec, annotate
from spacy_clinlong.cli import app

sa = pytest.importorskip("sqlalchemy")


@pytest.fixture(scope="module")
def rule_pipeline(tmp_path_factory) -> Path:
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "PROBLEM", "pattern": "follow-up"}])
    path = tmp_path_factory.mktemp("rules") / "pipeline"
    nlp.to_disk(path)
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cdm.sqlite'}"
    return request.getfixturevalue("pg_database")


def run(**spec):
    lines = []
    summary = annotate(JobSpec(**spec), progress=False, echo=lines.append)
    return summary, lines


def shard_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.glob("notes-*.jsonl")))


def test_note_table_gives_the_output_of_the_same_notes_in_a_file(rule_pipeline, db_url, tmp_path):
    make_note_table(db_url, 120)
    source = tmp_path / "notes.jsonl"
    source.write_text(
        "".join(json.dumps({"id": note_id(i), "text": note_text(i)}) + "\n" for i in range(120))
    )
    from_db, _ = run(model=str(rule_pipeline), input=db_url, output=str(tmp_path / "db"), shard_size=25)
    from_file, _ = run(
        model=str(rule_pipeline), input=str(source), output=str(tmp_path / "file"), shard_size=25
    )
    assert from_db["notes"] == from_file["notes"] == 120
    assert shard_bytes(tmp_path / "db") == shard_bytes(tmp_path / "file")
    job = (tmp_path / "db" / "job.json").read_text()
    if "@" in db_url:  # the PostgreSQL URL has a password: never written down
        password = sa.engine.make_url(db_url).password
        assert password and password not in job
    again, lines = run(model=str(rule_pipeline), input=db_url, output=str(tmp_path / "db"), shard_size=25)
    assert again == from_db and lines == [f"Already complete: {tmp_path / 'db'}"]


def test_a_named_table_with_a_condition_and_bad_rows(rule_pipeline, db_url, tmp_path):
    engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE visit_notes (doc_key VARCHAR(20), body TEXT, kind INTEGER)"))
        rows = [{"k": f"d{i:03d}", "b": note_text(i), "kind": i % 2} for i in range(30)]
        rows[4]["b"] = None  # no text
        rows[7]["k"] = rows[6]["k"]  # the same id twice
        conn.execute(sa.text("INSERT INTO visit_notes VALUES (:k, :b, :kind)"), rows)
    engine.dispose()
    summary, _ = run(
        model=str(rule_pipeline),
        input=db_url,
        output=str(tmp_path / "out"),
        table="visit_notes",
        id_field="doc_key",
        text_field="body",
        where="kind = 0",
        shard_size=4,
    )
    # kind = 0: the 15 even rows; row 4 has no text; rows 6 and 7 (odd) ... 7 is filtered out.
    assert summary["records"] == 15
    assert summary["errors_by_reason"] == {"missing_text": 1}
    errors = [json.loads(line) for line in (tmp_path / "out" / "errors.jsonl").read_text().splitlines()]
    assert [(e["id"], e["reason"]) for e in errors] == [("d004", "missing_text")]
    ids = [
        json.loads(line)["id"]
        for p in sorted((tmp_path / "out").glob("notes-*.jsonl"))
        for line in p.read_text().splitlines()
    ]
    assert ids == [f"d{i:03d}" for i in range(0, 30, 2) if i != 4]


def test_duplicate_ids_in_a_table_are_reported_once_each(rule_pipeline, tmp_path):
    url = f"sqlite:///{tmp_path / 'dup.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE note (note_id INTEGER, note_text TEXT)"))
        conn.execute(
            sa.text("INSERT INTO note VALUES (:i, :t)"),
            [{"i": i // 2 if i < 6 else i, "t": note_text(i)} for i in range(12)],
        )
    engine.dispose()
    summary, _ = run(model=str(rule_pipeline), input=url, output=str(tmp_path / "out"), shard_size=5)
    assert summary["notes"] == 9 and summary["errors_by_reason"] == {"duplicate_id": 3}


def test_table_and_where_need_a_database_and_the_url_is_never_printed_whole(rule_pipeline, tmp_path):
    notes = tmp_path / "notes.jsonl"
    notes.write_text(json.dumps({"id": 1, "text": "x"}) + "\n")
    result = CliRunner().invoke(
        app, ["annotate", str(rule_pipeline), str(notes), str(tmp_path / "o"), "--table", "note"]
    )
    assert result.exit_code == 1 and "--table and --where apply to a database INPUT" in result.output
    url = "postgresql://clinlong:Secret-Pw-42@127.0.0.1:1/cdm"  # nothing listens on port 1
    result = CliRunner().invoke(
        app, ["annotate", str(rule_pipeline), url, str(tmp_path / "p"), "--no-progress"]
    )
    assert result.exit_code == 1 and "Secret-Pw-42" not in result.output
    assert "***" in result.output and not (tmp_path / "p").exists()
