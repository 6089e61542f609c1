"""The annotate command: the JSON view and DocBin output, bad records reported and good ones kept,
resuming after kill -9 at random moments, and the Ray engine giving the local engine's output."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import spacy
from spacy.language import Language
from spacy.tokens import DocBin

from spacy_clinlong.annotate import JobError, JobSpec, annotate
from spacy_clinlong.annotate.job import Job
from spacy_clinlong.annotate.shard import ShardFiles, annotate_shard, load_pipeline

SECRET = "Zyxwvut"


def write_jsonl(path: Path, notes, bad=()):
    """Notes as JSONL, with bad lines inserted at their positions."""
    lines = [json.dumps(n) for n in notes]
    for position, line in bad:
        lines.insert(position, line)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


BAD_LINES = [
    (3, json.dumps({"id": "empty-1", "text": "  "})),
    (10, json.dumps({"text": SECRET + " has no id"})),
    (25, json.dumps({"id": "note-00001", "text": SECRET + " duplicate"})),
    (40, "{broken " + SECRET),
    (55, json.dumps({"id": "long-1", "text": SECRET * 400})),
]


def run(spec_kwargs, **kwargs):
    lines = []
    summary = annotate(JobSpec(**spec_kwargs), progress=False, echo=lines.append, **kwargs)
    return summary, lines


def lines_in(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0


def shard_bytes(folder: Path, suffix=".jsonl") -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.glob(f"notes-*{suffix}")))


def test_json_view_of_every_good_note_and_errors_by_reason(annotate_pipeline, short_notes, tmp_path, capfd):
    notes = short_notes(120)
    source = write_jsonl(tmp_path / "notes.jsonl", notes, BAD_LINES)
    out = tmp_path / "out.jsonl"
    summary, lines = run(
        dict(model=str(annotate_pipeline), input=str(source), output=str(out), shard_size=32, max_chars=2000)
    )
    views = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [v["id"] for v in views] == [n["id"] for n in notes]
    by_id = {n["id"]: n["text"] for n in notes}
    labels = spacy.load(annotate_pipeline).get_pipe("ner").labels
    assert sum(len(v["entities"]) for v in views) > 0
    for view in views:
        text = by_id[view["id"]]
        assert view["length"] == len(text)
        assert set(view["cats"]) and all(0.0 <= s <= 1.0 for s in view["cats"].values())
        assert isinstance(view["sections"], list)
        for ent in view["entities"]:
            assert text[ent["start"] : ent["end"]] == ent["text"] and ent["label"] in labels
            assert {"negated", "historical", "family", "hypothetical", "uncertain", "section"} <= set(ent)
            assert isinstance(ent["negated"], bool)
    errors = [json.loads(line) for line in (tmp_path / "out.errors.jsonl").read_text().splitlines()]
    assert [(e["id"], e["reason"]) for e in errors] == [
        ("empty-1", "empty"),
        (None, "missing_id"),
        ("note-00001", "duplicate_id"),
        (None, "invalid_json"),
        ("long-1", "too_long"),
    ]
    assert [e["source"] for e in errors] == [
        "notes.jsonl:4",
        "notes.jsonl:11",
        "notes.jsonl:26",
        "notes.jsonl:41",
        "notes.jsonl:56",
    ]
    assert summary["notes"] == 120 and summary["errors"] == 5
    assert summary["errors_by_reason"] == {
        "duplicate_id": 1,
        "empty": 1,
        "invalid_json": 1,
        "missing_id": 1,
        "too_long": 1,
    }
    captured = capfd.readouterr()
    for where in (captured.out, captured.err, "\n".join(lines), (tmp_path / "out.errors.jsonl").read_text()):
        assert SECRET not in where
    # The work directory keeps only the record of the job once the file is whole.
    assert sorted(p.name for p in (tmp_path / "out.jsonl.parts").iterdir()) == [
        "job.json",
        "job.lock",
        "manifest.jsonl",
        "plan.jsonl",
        "summary.json",
    ]


def test_a_finished_job_run_again_changes_nothing(annotate_pipeline, short_notes, tmp_path):
    source = write_jsonl(tmp_path / "notes.jsonl", short_notes(20))
    spec = dict(model=str(annotate_pipeline), input=str(source), output=str(tmp_path / "out"), shard_size=8)
    first, _ = run(spec)
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    again, lines = run(spec)
    assert again == first and lines == [f"Already complete: {tmp_path / 'out'}"]
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before


def test_docbin_shards_keep_ids_entities_cats_and_context(annotate_pipeline, short_notes, tmp_path):
    notes = short_notes(30)
    source = write_jsonl(tmp_path / "notes.jsonl", notes)
    run(dict(model=str(annotate_pipeline), input=str(source), output=str(tmp_path / "json"), shard_size=16))
    run(
        dict(
            model=str(annotate_pipeline),
            input=str(source),
            output=str(tmp_path / "bin"),
            shard_size=16,
            fmt="docbin",
        )
    )
    nlp = spacy.load(annotate_pipeline)
    docs = [
        doc
        for path in sorted((tmp_path / "bin").glob("notes-*.spacy"))
        for doc in DocBin().from_disk(path).get_docs(nlp.vocab)
    ]
    views = [json.loads(line) for line in shard_bytes(tmp_path / "json").decode().splitlines()]
    assert [doc._.note_id for doc in docs] == [n["id"] for n in notes]
    for doc, view in zip(docs, views):
        assert doc.text == notes[int(view["id"][-5:])]["text"]
        assert [(e.start_char, e.end_char, e.label_) for e in doc.ents] == [
            (e["start"], e["end"], e["label"]) for e in view["entities"]
        ]
        assert [bool(e._.is_negated) for e in doc.ents] == [e["negated"] for e in view["entities"]]
        assert doc.cats == pytest.approx(view["cats"])
        assert doc._.trf_data is None


def test_progress_bar_shows_notes_per_second_and_time_left(annotate_pipeline, short_notes, tmp_path, capsys):
    source = write_jsonl(tmp_path / "notes.jsonl", short_notes(40))
    annotate(
        JobSpec(model=str(annotate_pipeline), input=str(source), output=str(tmp_path / "out"), shard_size=10),
        progress=True,
        echo=print,
    )
    err = capsys.readouterr().err
    assert "40/40 notes" in err and "notes/s" in err and "<00:00" in err


@Language.component("test_raise_on_marker")
def _raise_on_marker(doc):
    if "RAISE" in doc.text:
        raise ValueError(f"cannot handle {doc.text!r}")  # quotes the text: annotate must not
    return doc


def test_a_note_the_pipeline_raises_on_is_reported_and_the_batch_kept(short_notes, tmp_path, capfd):
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "PROBLEM", "pattern": "pain"}])
    nlp.add_pipe("test_raise_on_marker")
    nlp.to_disk(tmp_path / "pipeline")
    notes = short_notes(12)
    notes[5]["text"] = f"RAISE {SECRET} here."
    source = write_jsonl(tmp_path / "notes.jsonl", notes)
    summary, _ = run(
        dict(model=str(tmp_path / "pipeline"), input=str(source), output=str(tmp_path / "out"), batch_size=4)
    )
    views = [json.loads(line) for line in shard_bytes(tmp_path / "out").decode().splitlines()]
    assert [v["id"] for v in views] == [n["id"] for i, n in enumerate(notes) if i != 5]
    errors = [json.loads(line) for line in (tmp_path / "out" / "errors.jsonl").read_text().splitlines()]
    assert errors == [
        {
            "index": 5,
            "id": "note-00005",
            "reason": "pipeline_error",
            "source": "notes.jsonl:6",
            "length": len(notes[5]["text"]),
            "detail": "ValueError",
        }
    ]
    assert summary["notes"] == 11 and summary["errors_by_reason"] == {"pipeline_error": 1}
    captured = capfd.readouterr()
    assert SECRET not in captured.out + captured.err


def test_questions_are_asked_of_every_note(tiny_models, short_notes, tmp_path):
    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "clinlong_qa",
        config={"null_threshold": -1e9, "model": {"name": str(tiny_models("longformer")), "max_length": 256}},
    )
    nlp.initialize()
    nlp.to_disk(tmp_path / "qa")
    notes = short_notes(6)
    source = write_jsonl(tmp_path / "notes.jsonl", notes)
    questions = ["What medication was started?", "What is the diagnosis?"]
    run(
        dict(
            model=str(tmp_path / "qa"),
            input=str(source),
            output=str(tmp_path / "out.jsonl"),
            questions=questions,
        )
    )
    for line, note in zip((tmp_path / "out.jsonl").read_text().splitlines(), notes):
        view = json.loads(line)
        assert [a["question"] for a in view["answers"]] == questions
        for item in view["answers"]:
            answer = item["answer"]
            assert note["text"][answer["start"] : answer["end"]] == answer["text"]
    spacy.blank("en").to_disk(tmp_path / "blank")
    with pytest.raises(ValueError, match="needs a pipeline with a clinlong_qa component"):
        run(
            dict(
                model=str(tmp_path / "blank"),
                input=str(source),
                output=str(tmp_path / "out2.jsonl"),
                questions=questions,
            )
        )


def test_a_job_resumes_only_with_the_same_settings_and_input(annotate_pipeline, short_notes, tmp_path):
    source = write_jsonl(tmp_path / "notes.jsonl", short_notes(20))
    spec = dict(model=str(annotate_pipeline), input=str(source), output=str(tmp_path / "out"), shard_size=8)
    job = Job(JobSpec(**spec))
    job.prepare()  # planned, nothing annotated yet; this process holds the job
    with pytest.raises(JobError, match="Another annotate process is running the job"):
        run(spec)
    job.close()
    with pytest.raises(JobError, match=r"other settings \(batch_size\)"):
        run(dict(spec, batch_size=3))
    source.write_text(source.read_text() + json.dumps({"id": "late", "text": "Added later."}) + "\n")
    with pytest.raises(JobError, match="changed since the job"):
        run(spec)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("x")
    with pytest.raises(JobError, match="is not an annotate job"):
        run(dict(spec, output=str(tmp_path / "taken")))
    (tmp_path / "exists.jsonl").write_text("x")
    with pytest.raises(JobError, match="exists and no job"):
        run(dict(spec, output=str(tmp_path / "exists.jsonl")))
    with pytest.raises(JobError, match="DocBin shards need a directory"):
        JobSpec(**dict(spec, output=str(tmp_path / "x.jsonl"), fmt="docbin"))
    with pytest.raises(JobError, match="is not an annotate job"):
        run(dict(spec, output=str(tmp_path / "taken")), restart=True)
    assert (tmp_path / "taken" / "mine.txt").exists()


def test_a_retrained_model_is_another_job_and_restart_starts_afresh(annotate_pipeline, short_notes, tmp_path):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(annotate_pipeline, model)
    source = write_jsonl(tmp_path / "notes.jsonl", short_notes(20))
    spec = dict(model=str(model), input=str(source), output=str(tmp_path / "out.jsonl"), shard_size=8)
    run(spec)
    first = (tmp_path / "out.jsonl").read_bytes()
    (model / "meta.json").write_text((model / "meta.json").read_text() + " ")  # as a new training run would
    with pytest.raises(JobError, match=r"other settings \(model_files\)"):
        run(spec)
    summary, lines = run(spec, restart=True)
    assert lines[0].startswith("Reading") and lines[1].startswith("Planned")
    assert (tmp_path / "out.jsonl").read_bytes() == first and summary["notes"] == 20


def test_the_command_line_reports_bad_arguments_in_one_line(annotate_pipeline, tmp_path):
    from typer.testing import CliRunner

    from spacy_clinlong.cli import app

    result = CliRunner().invoke(
        app, ["annotate", str(annotate_pipeline), str(tmp_path / "none.jsonl"), str(tmp_path / "out")]
    )
    assert result.exit_code == 1 and "does not exist" in result.output
    (tmp_path / "n.jsonl").write_text(json.dumps({"id": "a", "text": "x"}) + "\n")
    result = CliRunner().invoke(
        app,
        [
            "annotate",
            str(annotate_pipeline),
            str(tmp_path / "n.jsonl"),
            str(tmp_path / "out"),
            "--engine",
            "spark",
        ],
    )
    assert result.exit_code == 1 and "--engine must be one of local, ray" in result.output


def test_ray_engine_without_ray_says_how_to_install_it(annotate_pipeline, short_notes, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    source = write_jsonl(tmp_path / "notes.jsonl", short_notes(3))
    with pytest.raises(ValueError, match=r"pip install 'spacy-clinlong\[ray\]'"):
        run(dict(model=str(annotate_pipeline), input=str(source), output=str(tmp_path / "out")), engine="ray")


def test_resume_after_every_kind_of_interruption_gives_the_same_output(
    annotate_pipeline, short_notes, tmp_path
):
    """The states a kill can leave: a shard written but not in the manifest, a torn manifest
    line, a half-written temporary file, a shard file cut short."""
    source = write_jsonl(tmp_path / "notes.jsonl", short_notes(60), BAD_LINES[:2])
    spec = dict(model=str(annotate_pipeline), input=str(source), shard_size=10, max_chars=2000)
    run(dict(spec, output=str(tmp_path / "whole")))
    whole = tmp_path / "whole"

    out = tmp_path / "out"
    job = Job(JobSpec(output=str(out), **spec))
    job.prepare()
    nlp = load_pipeline(str(annotate_pipeline))
    for shard in job.shards[:3]:
        entry = annotate_shard(
            nlp,
            job.source,
            shard,
            output=ShardFiles(out, "jsonl"),
            batch_size=job.spec.batch_size,
            max_chars=job.spec.max_chars,
        )
        if shard["shard"] < 2:
            job.record(entry)
        else:  # shard 2 written, its manifest line torn
            with (out / "manifest.jsonl").open("a") as handle:
                handle.write(json.dumps(entry)[:17])
    (out / "notes-000001.jsonl").write_bytes((out / "notes-000001.jsonl").read_bytes()[:100])  # cut short
    (out / "notes-000003.jsonl.tmp-99999").write_bytes(b'{"id": "half')
    job.close()
    _, lines = run(dict(spec, output=str(out)))
    assert lines[0].startswith("Resuming") and "1 shards (9 notes) already done" in lines[0]
    assert shard_bytes(out) == shard_bytes(whole)
    assert (out / "errors.jsonl").read_bytes() == (whole / "errors.jsonl").read_bytes()
    assert not list(out.glob("*.tmp-*"))
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 7 + 1  # shard 1 redone: listed twice


@pytest.mark.slow
def test_kill_9_at_random_moments_then_resume_gives_the_uninterrupted_output(
    annotate_pipeline, short_notes, tmp_path
):
    # Bad and hostile records at random places among the good ones.
    hostile = [line for _, line in BAD_LINES] + [
        "[" * 100_000,
        '{"id": "sur\\ud83d", "text": "x"}',
        '{"id": ' + str(2**70) + ', "text": "x"}',
        '{"id": true, "text": "x"}',
        '{"id": "csv", "text": "x\\udc80"}',
        "\x00" * 50,
    ]
    places = random.Random(3)
    bad = sorted(((places.randrange(600), line) for line in hostile * 2), key=lambda item: item[0])
    source = write_jsonl(tmp_path / "notes.jsonl", short_notes(600), bad)
    spec = dict(model=str(annotate_pipeline), input=str(source), shard_size=20, max_chars=2000)
    run(dict(spec, output=str(tmp_path / "whole.jsonl")))

    out = tmp_path / "killed.jsonl"
    command = [
        sys.executable,
        "-m",
        "spacy_clinlong",
        "annotate",
        str(annotate_pipeline),
        str(source),
        str(out),
        "--shard-size",
        "20",
        "--max-chars",
        "2000",
        "--no-progress",
    ]
    manifest = tmp_path / "killed.jsonl.parts" / "manifest.jsonl"
    rng = random.Random(7)
    done_at_kills = []
    for run_number in range(5):
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if run_number == 4:  # the last run goes to the end
            stdout, stderr = process.communicate(timeout=600)
            assert process.returncode == 0, stderr.decode()[-2000:]
            break
        if run_number == 0:  # somewhere in start-up or planning
            time.sleep(rng.uniform(0.5, 4.0))
        else:  # somewhere in the annotation: once this run has finished a shard
            before = lines_in(manifest)
            while lines_in(manifest) == before and process.poll() is None:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 1.5))
        process.kill()  # SIGKILL: no cleanup of any kind
        process.communicate()
        done_at_kills.append(lines_in(manifest))
    assert any(0 < n < 32 for n in done_at_kills), done_at_kills
    assert out.read_bytes() == (tmp_path / "whole.jsonl").read_bytes()
    assert (tmp_path / "killed.errors.jsonl").read_bytes() == (tmp_path / "whole.errors.jsonl").read_bytes()
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 600
    errors = (tmp_path / "killed.errors.jsonl").read_text().splitlines()
    assert len(errors) == len(bad)  # every bad record reported once, by its own reason
    assert SECRET not in stdout.decode() + stderr.decode()


@pytest.mark.slow
def test_ray_engine_gives_the_local_engine_output_on_2000_notes(annotate_pipeline, short_notes, tmp_path):
    pytest.importorskip("ray.data")
    source = write_jsonl(tmp_path / "notes.jsonl", short_notes(2000), BAD_LINES)
    spec = dict(model=str(annotate_pipeline), input=str(source), shard_size=250, max_chars=2000)
    # One torch thread per pipeline in both: another thread count can change a score's last bit.
    local, _ = run(dict(spec, output=str(tmp_path / "local")), threads=1)
    sigterm = signal.getsignal(signal.SIGTERM)
    distributed, lines = run(dict(spec, output=str(tmp_path / "ray")), engine="ray", workers=2, threads=1)
    # Ray's own SIGTERM handler (exit 15) does not replace the caller's; no usage reports.
    assert signal.getsignal(signal.SIGTERM) == sigterm and os.environ["RAY_USAGE_STATS_ENABLED"] == "0"
    assert local["notes"] == distributed["notes"] == 2000 and distributed["errors"] == 5
    assert shard_bytes(tmp_path / "ray") == shard_bytes(tmp_path / "local")
    assert (tmp_path / "ray" / "errors.jsonl").read_bytes() == (
        tmp_path / "local" / "errors.jsonl"
    ).read_bytes()
    ids = [json.loads(line)["id"] for line in shard_bytes(tmp_path / "ray").decode().splitlines()]
    assert len(ids) == len(set(ids)) == 2000
    assert lines[-1].startswith("2,000 notes in")


def test_local_worker_processes_give_the_single_process_output(annotate_pipeline, short_notes, tmp_path):
    source = write_jsonl(tmp_path / "notes.jsonl", short_notes(300), BAD_LINES[:3])
    spec = dict(model=str(annotate_pipeline), input=str(source), shard_size=40)
    single, _ = run(dict(spec, output=str(tmp_path / "one")), threads=1)
    pool, _ = run(dict(spec, output=str(tmp_path / "two")), workers=2, threads=1)
    assert single == dict(
        pool, output=str(tmp_path / "one"), errors_file=str(tmp_path / "one" / "errors.jsonl")
    )
    assert shard_bytes(tmp_path / "two") == shard_bytes(tmp_path / "one")
    assert (tmp_path / "two" / "errors.jsonl").read_bytes() == (
        tmp_path / "one" / "errors.jsonl"
    ).read_bytes()


def test_questions_file_is_one_question_per_line_or_a_json_list(tmp_path):
    import typer

    from spacy_clinlong.cli.annotate import _read_questions

    (tmp_path / "q.txt").write_text("What dose?\n\n  Which allergy?  \n")
    assert _read_questions(tmp_path / "q.txt") == ["What dose?", "Which allergy?"]
    (tmp_path / "q.json").write_text(json.dumps(["What dose?"]))
    assert _read_questions(tmp_path / "q.json") == ["What dose?"]
    (tmp_path / "bad.json").write_text(json.dumps({"q": 1}))
    with pytest.raises(typer.BadParameter, match="JSON list of strings"):
        _read_questions(tmp_path / "bad.json")
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(typer.BadParameter, match="holds no questions"):
        _read_questions(tmp_path / "empty.txt")
    assert _read_questions(None) == []
