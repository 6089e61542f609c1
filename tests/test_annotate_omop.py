"""annotate into a database: NOTE -> pipeline -> OMOP NOTE_NLP rows, each note's rows once, on SQLite and
a real PostgreSQL server, through reruns, other settings, bad rows, concurrent writers and kill -9."""

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest
import spacy
from pg_server import pg_database, pg_url  # noqa: F401 - the PostgreSQL server fixtures
from typer.testing import CliRunner

from spacy_clinlong.about import __version__
from spacy_clinlong.annotate import JobError, JobSpec, annotate
from spacy_clinlong.cli import app

sa = pytest.importorskip("sqlalchemy")

PROBLEMS = ("fever", "chest pain", "diabetes", "hypertension", "cough")
SECRET = "SECRET-NOTE-TEXT"


def note_text(i: int) -> str:
    """A synthetic note with sections, a negation, family history and a past problem."""
    return (
        f"Seen for visit {i}.\n"
        f"HISTORY OF PRESENT ILLNESS: Reports {PROBLEMS[i % 5]}. Denies {PROBLEMS[(i + 1) % 5]}.\n"
        f"FAMILY HISTORY: Mother with {PROBLEMS[(i + 2) % 5]}.\n"
        + ("PAST MEDICAL HISTORY: Hypertension.\n" if i % 3 == 0 else "")
    )


def entities_of(pipeline: Path, n: int) -> int:
    """RETURNS (int): How many entities the pipeline finds in the first n notes."""
    nlp = spacy.load(pipeline)
    return sum(len(doc.ents) for doc in nlp.pipe(note_text(i) for i in range(n)))


@pytest.fixture(scope="module")
def medspacy_pipeline(tmp_path_factory) -> Path:
    """A rule pipeline with medspaCy's sections and ConText, saved (no model weights)."""
    from spacy_clinlong.integrations.medspacy import add_medspacy

    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler", config={"phrase_matcher_attr": "LOWER"})
    ruler.add_patterns([{"label": "PROBLEM", "pattern": p} for p in PROBLEMS])
    add_medspacy(nlp)
    nlp.meta["name"] = "omop_test"
    nlp.meta["version"] = "1.2.3"
    path = tmp_path_factory.mktemp("medspacy") / "pipeline"
    nlp.to_disk(path)
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path):
    """RETURNS (Tuple[str, Optional[str]]): A database URL and the schema to write into (PostgreSQL: cdm)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cdm.sqlite'}", None
    return request.getfixturevalue("pg_database"), "cdm"


def make_notes(url: str, n: int, *, text=note_text, ids=None, id_type=None) -> None:
    """A NOTE table (the columns annotate reads) with n notes, ids 1000 + i unless given."""
    md = sa.MetaData()
    table = sa.Table(
        "note",
        md,
        sa.Column("note_id", id_type or sa.BigInteger),
        sa.Column("note_text", sa.Text),
    )
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        md.create_all(conn)
        rows = [{"note_id": (ids or {}).get(i, 1000 + i), "note_text": text(i)} for i in range(n)]
        conn.execute(table.insert(), rows)
    engine.dispose()


def query(url: str, sql: str, schema=None):
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    if schema:
        sql = sql.replace("FROM ", f"FROM {schema}.")
    with engine.connect() as conn:
        rows = [tuple(row) for row in conn.execute(sa.text(sql))]
    engine.dispose()
    return rows


def note_nlp(url, schema=None):
    """RETURNS (List[tuple]): NOTE_NLP without its ids and times, sorted."""
    columns = (
        'note_id, section_concept_id, snippet, "offset", lexical_variant, note_nlp_concept_id, '
        "nlp_system, term_exists, term_temporal, term_modifiers"
    )
    return sorted(query(url, f"SELECT {columns} FROM note_nlp", schema))


def run(**spec):
    lines = []
    options = spec.pop("_run", {})
    summary = annotate(JobSpec(**spec), progress=False, echo=lines.append, **options)
    return summary, lines


def test_note_to_note_nlp_round_trip_with_sections_context_and_concepts(medspacy_pipeline, db, tmp_path):
    url, schema = db
    make_notes(url, 300)
    sections = tmp_path / "sections.csv"
    sections.write_text("section,concept_id\nhistory_of_present_illness,4000001\nfamily_history,4000002\n")
    concepts = tmp_path / "concepts.json"
    concepts.write_text(json.dumps({"fever": 437663, "PROBLEM": 4000100}))
    spec = dict(
        model=str(medspacy_pipeline),
        input=url,
        output=url,
        output_schema=schema,
        shard_size=40,
        section_concepts=str(sections),
        concepts=str(concepts),
    )
    summary, lines = run(**spec)
    assert summary["notes"] == 300 and summary["errors"] == 0 and summary["shards"] == 8
    rows = note_nlp(url, schema)
    assert summary["note_nlp_rows"] == len(rows) == entities_of(medspacy_pipeline, 300)
    # Each note's rows once, as the JSONL output of the same pipeline has its entities.
    jsonl, _ = run(model=str(medspacy_pipeline), input=url, output=str(tmp_path / "notes.jsonl"))
    views = [json.loads(line) for line in (tmp_path / "notes.jsonl").read_text().splitlines()]
    expected = sorted((v["id"], str(e["start"]), e["text"]) for v in views for e in v["entities"])
    assert sorted((r[0], r[3], r[4]) for r in rows) == expected
    by_note = {}
    for row in rows:
        by_note.setdefault(row[0], []).append(row)
    first = sorted(by_note[1000], key=lambda r: int(r[3]))  # fever, chest pain (denied), diabetes (mother)
    assert [r[4] for r in first] == ["fever", "chest pain", "diabetes", "Hypertension"]
    assert [r[1] for r in first] == [4000001, 4000001, 4000002, 0]  # past medical history: unmapped
    assert [r[5] for r in first] == [437663, 4000100, 4000100, 4000100]  # term first, then label
    assert [r[7] for r in first] == ["y", "n", "n", "y"]
    assert first[0][8] is None and first[3][8] == "past"  # medspaCy: past medical history is historical
    assert all((r[8] == "past") == ("historical=true" in r[9]) for r in rows)
    assert (
        "negated=true" in first[1][9]
        and "family=true" in first[2][9]
        and first[0][9].endswith("label=PROBLEM")
    )
    assert (
        "Reports fever" in first[0][2] and first[0][6] == f"spacy-clinlong {__version__}: en_omop_test 1.2.3"
    )
    ids = query(url, "SELECT count(*), count(DISTINCT note_nlp_id), min(note_nlp_id) FROM note_nlp", schema)
    assert ids == [(len(rows), len(rows), 1)]
    # Run again: nothing to do, nothing written twice.
    again, lines = run(**spec)
    assert again == summary and lines[-1].startswith("Already complete")
    assert len(note_nlp(url, schema)) == len(rows)


def test_other_settings_are_refused_restart_replaces_and_a_job_name_adds(medspacy_pipeline, db, tmp_path):
    url, schema = db
    make_notes(url, 30)
    spec = dict(model=str(medspacy_pipeline), input=url, output=url, output_schema=schema, shard_size=10)
    first, _ = run(**spec)
    with pytest.raises(JobError, match=r"other settings \(max_chars\).*--restart.*--job-name"):
        run(**dict(spec, max_chars=5000))
    rows = note_nlp(url, schema)
    assert len(rows) == first["note_nlp_rows"]
    restarted, _ = run(**dict(spec, max_chars=5000, _run={"restart": True}))
    assert note_nlp(url, schema) == rows  # the old job's rows gone, the new job's in their place
    assert query(url, "SELECT count(*) FROM clinlong_job", schema) == [(1,)]
    run(**dict(spec, job_name="second run"))
    assert len(note_nlp(url, schema)) == 2 * len(rows)
    keys = query(url, "SELECT job_key, shard FROM clinlong_manifest ORDER BY job_key, shard", schema)
    assert [k for k, _ in keys].count("second run") == 3
    assert restarted["job"] != "second run" and restarted["job"].startswith("note-")


def test_bad_rows_go_to_the_errors_table_and_the_job_carries_on(medspacy_pipeline, db, tmp_path):
    url, schema = db

    def text(i):
        return None if i == 4 else ("x" * 3000 if i == 5 else note_text(i))

    ids = {2: "n-2", 3: "0042", 6: "77", 7: "77"}  # not integers (2, 3), a duplicate of 6 (7)
    make_notes(url, 20, text=text, ids=ids, id_type=sa.Text)
    summary, _ = run(
        model=str(medspacy_pipeline),
        input=url,
        output=url,
        output_schema=schema,
        shard_size=6,
        max_chars=2000,
    )
    assert summary["errors_by_reason"] == {
        "duplicate_id": 1,
        "missing_text": 1,
        "non_integer_id": 2,
        "too_long": 1,
    }
    errors = query(url, "SELECT note_id, reason, length FROM clinlong_errors ORDER BY record_index", schema)
    assert ("n-2", "non_integer_id") in [e[:2] for e in errors] and ("0042", "non_integer_id") in [
        e[:2] for e in errors
    ]
    assert ("77", "duplicate_id", len(note_text(7))) in errors
    notes = {row[0] for row in note_nlp(url, schema)}
    assert 77 in notes and len(notes) == summary["notes"] == 15
    assert all(SECRET not in str(e) for e in errors)


def test_local_worker_processes_write_every_note_once(medspacy_pipeline, db, tmp_path):
    url, schema = db
    make_notes(url, 120)
    spec = dict(model=str(medspacy_pipeline), input=url, output=url, output_schema=schema, shard_size=10)
    summary, _ = run(**dict(spec, _run={"workers": 2}))
    rows = note_nlp(url, schema)
    assert summary["notes"] == 120 and len(rows) == entities_of(medspacy_pipeline, 120)
    assert len(set(rows)) == len(rows)


def test_two_annotate_commands_on_one_job_split_it_and_write_each_shard_once(medspacy_pipeline, tmp_path):
    url = f"sqlite:///{tmp_path / 'cdm.sqlite'}"
    make_notes(url, 400)
    command = [
        sys.executable, "-m", "spacy_clinlong", "annotate", str(medspacy_pipeline), url, url,
        "--shard-size", "10", "--no-progress",
    ]  # fmt: skip
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [o[1].decode()[-1000:] for o in outputs]
    rows = note_nlp(url)
    assert len(rows) == len(set(rows)) == entities_of(medspacy_pipeline, 400)
    assert query(url, "SELECT count(*), count(DISTINCT shard) FROM clinlong_manifest") == [(40, 40)]


def test_the_command_line_checks_database_output_arguments_before_writing(medspacy_pipeline, tmp_path):
    notes = tmp_path / "notes.jsonl"
    notes.write_text(json.dumps({"id": 1, "text": "fever"}) + "\n")
    model = str(medspacy_pipeline)

    def invoke(*args):
        return CliRunner().invoke(app, ["annotate", model, str(notes), *args, "--no-progress"])

    result = invoke(str(tmp_path / "out"), "--output-schema", "cdm")
    assert result.exit_code == 1 and "--output-schema apply to a database OUTPUT" in result.output
    db = tmp_path / "cdm.sqlite"
    bad = tmp_path / "concepts.csv"
    for content in ("term,concept_id\nfever,not-a-number\n", "term,concept_id\n"):
        bad.write_text(content)
        result = invoke(f"sqlite:///{db}", "--concepts", str(bad))
        assert result.exit_code == 1 and "--concepts" in result.output and not db.exists()
    result = invoke(f"sqlite:///{db}", "--section-concepts", str(tmp_path / "missing.json"))
    assert result.exit_code == 1 and "is not a file" in result.output and not db.exists()
    result = invoke(f"sqlite:///{db}", "--format", "docbin")
    assert result.exit_code == 1 and "database OUTPUT gets NOTE_NLP rows" in result.output
    result = invoke("mysql://omop:Secret-Pw-42@db/cdm")
    assert result.exit_code == 1 and "Secret-Pw-42" not in result.output
    url = "postgresql://clinlong:Secret-Pw-42@127.0.0.1:1/cdm"  # nothing listens on port 1
    result = invoke(url)
    assert result.exit_code == 1 and "Secret-Pw-42" not in result.output and "***" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = invoke(f"sqlite:///{db}")
    assert result.exit_code == 0, result.output
    assert "1 notes annotated into sqlite:///" in result.output and "clinlong_errors" in result.output


def test_a_job_reads_its_concept_maps_once_and_its_row_once_on_resume(
    medspacy_pipeline, tmp_path, monkeypatch
):
    from spacy_clinlong.annotate.database_job import DatabaseJob, NoteNlpOutput
    from spacy_clinlong.io import omop_mapping

    url = f"sqlite:///{tmp_path / 'cdm.sqlite'}"
    make_notes(url, 3)
    sections, concepts = tmp_path / "sections.json", tmp_path / "concepts.csv"
    sections.write_text(json.dumps({"family_history": 4000002}))
    concepts.write_text("term,concept_id\nfever,437663\n")
    reads = []
    read = omop_mapping.read_concepts
    monkeypatch.setattr(omop_mapping, "read_concepts", lambda path: reads.append(path) or read(path))
    spec = JobSpec(
        model=str(medspacy_pipeline),
        input=url,
        output=url,
        section_concepts=str(sections),
        concepts=str(concepts),
    )

    def row_queries_of_prepare() -> int:
        with DatabaseJob(spec) as job:
            query_row, queries = job.writer.job, []
            monkeypatch.setattr(job.writer, "job", lambda key: queries.append(key) or query_row(key))
            job.prepare()
            assert job.row is not None and not job.complete and len(job.pending()) == 1
        return len(queries)

    # Starting reads back the row it wrote; resuming checks the row it read, and keeps it.
    assert [row_queries_of_prepare(), row_queries_of_prepare()] == [2, 1]
    output = NoteNlpOutput(spec, {})
    assert (output.section_concepts, output.concepts) == ({"family_history": 4000002}, {"fever": 437663})
    output.close()
    # Read at validation only: the job's identity and the rows reuse them.
    assert reads == [str(sections), str(concepts)]


def _lines(url: str) -> int:
    try:
        return query(url, "SELECT count(*) FROM clinlong_manifest")[0][0]
    except Exception:  # not created yet
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_kill_9_at_random_moments_then_resume_writes_every_note_once(
    medspacy_pipeline, engine, tmp_path, request
):
    url = (
        f"sqlite:///{tmp_path / 'cdm.sqlite'}"
        if engine == "sqlite"
        else request.getfixturevalue("pg_database")
    )
    make_notes(url, 600, text=lambda i: note_text(i) if i % 97 else "")  # and a few empty notes
    whole = f"sqlite:///{tmp_path / 'whole.sqlite'}"
    run(model=str(medspacy_pipeline), input=url, output=whole, shard_size=20)
    command = [
        sys.executable, "-m", "spacy_clinlong", "annotate", str(medspacy_pipeline), url, url,
        "--shard-size", "20", "--workers", "2", "--no-progress",
    ]  # fmt: skip
    rng = random.Random(11)
    done_at_kills = []
    for run_number in range(5):
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ)
        )
        if run_number == 4:
            stdout, stderr = process.communicate(timeout=600)
            assert process.returncode == 0, stderr.decode()[-2000:]
            break
        if run_number == 0:
            time.sleep(rng.uniform(0.5, 4.0))
        else:
            before = _lines(url)
            while _lines(url) == before and process.poll() is None:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 1.0))
        process.kill()
        process.communicate()
        done_at_kills.append(_lines(url))
    assert any(0 < n < 30 for n in done_at_kills), done_at_kills
    assert note_nlp(url) == note_nlp(whole)
    errors = "SELECT note_id, reason FROM clinlong_errors ORDER BY record_index"
    assert query(url, errors) == query(whole, errors) and len(query(url, errors)) == 7
    assert query(url, "SELECT count(*), count(DISTINCT shard) FROM clinlong_manifest") == [(30, 30)]


@pytest.mark.slow
def test_ray_engine_writes_the_rows_of_the_local_engine(medspacy_pipeline, tmp_path):
    pytest.importorskip("ray.data")
    source = f"sqlite:///{tmp_path / 'notes.sqlite'}"
    make_notes(source, 200)
    local, ray = f"sqlite:///{tmp_path / 'local.sqlite'}", f"sqlite:///{tmp_path / 'ray.sqlite'}"
    run(model=str(medspacy_pipeline), input=source, output=local, shard_size=25)
    summary, _ = run(
        model=str(medspacy_pipeline),
        input=source,
        output=ray,
        shard_size=25,
        _run={"engine": "ray", "workers": 2},
    )
    assert summary["notes"] == 200 and note_nlp(ray) == note_nlp(local)


def test_benchmark_omop_times_inserts_and_a_job_and_leaves_no_rows(medspacy_pipeline, db, tmp_path):
    url, schema = db
    make_notes(url, 40)
    figures = tmp_path / "omop.json"
    args = ["benchmark-omop", url, "--rows", "2000", "--model", str(medspacy_pipeline), "--input", url]
    args += ["--shard-size", "10", "--repeats", "2", "--json", str(figures)]
    if schema:
        args += ["--output-schema", schema]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(figures.read_text())
    insert, job = report["insert"], report["job"]
    assert insert["rows"] == 2000 and insert["rows_per_s"] > 0
    assert insert["backend"] == url.split(":")[0].split("+")[0]
    assert len(job["jsonl_s"]) == len(job["database_s"]) == 2
    assert job["notes"] == 40 and job["note_nlp_rows"] > 40
    assert job["ratio"] == pytest.approx(job["database_median_s"] / job["jsonl_median_s"], rel=0.01)
    assert "rows/s" in result.output and "database / JSONL" in result.output
    # Every row it wrote is gone: NOTE_NLP, the package's tables and their jobs.
    assert note_nlp(url, schema) == []
    for table in (
        "clinlong_job",
        "clinlong_plan",
        "clinlong_manifest",
        "clinlong_errors",
        "clinlong_note_results",
    ):
        assert query(url, f"SELECT * FROM {table}", schema) == []
