"""One bad record never stops a job: hostile records, inputs edited in place, workers whose
parent dies, signals, slow notes, and any bytes at all read as records or reasons."""

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import spacy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spacy.language import Language
from spacy.tokens import DocBin

from spacy_clinlong.annotate import InputError, JobSpec, NoteInput, annotate
from spacy_clinlong.annotate.job import Job
from spacy_clinlong.annotate.records import read_shard, shard_plan
from spacy_clinlong.io import REASONS

SECRET = "Zyxwvut"  # in every bad record's text: it must never come out

#: Records that once stopped a whole job, on every rerun; each must become one reason.
HOSTILE = [
    ("[" * 100_000, "invalid_json"),  # RecursionError in json.loads
    ('{"id": "sur\\ud83d", "text": "' + SECRET + '"}', "undecodable"),  # escaped lone surrogate id
    ('{"id": "s1", "text": "' + SECRET + ' \\udc00 x"}', "undecodable"),  # and in the text
    ('{"id": ' + str(2**64 + 5) + ', "text": "' + SECRET + '"}', "invalid_id"),  # beyond 64 bits
    ('{"id": true, "text": "' + SECRET + '"}', "invalid_id"),
]


@pytest.fixture(scope="module")
def rule_pipeline(tmp_path_factory) -> Path:
    """A fast saved pipeline (tokenizer and an entity ruler) that any process can load."""
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "PROBLEM", "pattern": "pain"}])
    path = tmp_path_factory.mktemp("rules") / "pipeline"
    nlp.to_disk(path)
    return path


def good_notes(n: int, start: int = 0):
    return [{"id": f"n{i:06d}", "text": f"Note {i}: chest pain resolved."} for i in range(start, start + n)]


def write_lines(path: Path, lines) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(spec_kwargs, **kwargs):
    lines = []
    summary = annotate(JobSpec(**spec_kwargs), progress=False, echo=lines.append, **kwargs)
    return summary, lines


def errors_of(folder: Path):
    path = folder / "errors.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def ids_of(folder: Path):
    return [
        json.loads(line)["id"]
        for path in sorted(folder.glob("notes-*.jsonl"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]


@pytest.mark.parametrize("fmt", ["jsonl", "docbin"])
def test_hostile_jsonl_records_are_reasons_and_the_rest_is_annotated(rule_pipeline, tmp_path, fmt):
    notes = good_notes(30)
    lines = [json.dumps(n) for n in notes]
    for position, (line, _) in zip((2, 7, 12, 20, 25), HOSTILE):
        lines.insert(position, line)
    source = write_lines(tmp_path / "notes.jsonl", lines)
    out = tmp_path / "out"
    summary, _ = run(
        dict(model=str(rule_pipeline), input=str(source), output=str(out), shard_size=8, fmt=fmt)
    )
    assert summary["notes"] == 30
    errors = errors_of(out)
    assert [(e["index"], e["reason"]) for e in errors] == [
        (i, reason) for i, (_, reason) in zip((2, 7, 12, 20, 25), HOSTILE)
    ]
    # Only ids that can be written back as they were read are given.
    assert [e["id"] for e in errors] == [None, None, "s1", None, None]
    assert SECRET not in (out / "errors.jsonl").read_text()
    if fmt == "jsonl":
        assert ids_of(out) == [n["id"] for n in notes]
    else:
        from spacy_clinlong.pipes.extensions import install_extensions

        install_extensions()
        nlp = spacy.blank("en")
        docs = [
            d for p in sorted(out.glob("notes-*.spacy")) for d in DocBin().from_disk(p).get_docs(nlp.vocab)
        ]
        assert [d._.note_id for d in docs] == [n["id"] for n in notes]
    again, lines = run(
        dict(model=str(rule_pipeline), input=str(source), output=str(out), shard_size=8, fmt=fmt)
    )
    assert again == summary and lines == [f"Already complete: {out}"]


def test_an_input_edited_in_place_to_the_same_length_is_refused_before_writing(rule_pipeline, tmp_path):
    notes = good_notes(20)
    source = write_lines(tmp_path / "notes.jsonl", [json.dumps(n) for n in notes])
    spec = JobSpec(model=str(rule_pipeline), input=str(source), output=str(tmp_path / "out"), shard_size=5)
    with Job(spec) as job:
        job.prepare()  # planned; nothing annotated yet
        shards = job.shards
    stat = source.stat()
    edited = source.read_text().replace('"n000007"', '"n000003"')  # one id replaced by another
    assert len(edited) == len(source.read_text())
    source.write_text(edited)
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same time: only content differs
    with pytest.raises(InputError, match=r"Shard 1 \(records 5 to 9\) changed since the job was planned"):
        read_shard(NoteInput(source), shards[1], max_chars=10**6)
    assert read_shard(NoteInput(source), shards[0], max_chars=10**6)[0]  # the other shards still read
    with pytest.raises(InputError, match="Shard 1"):
        run(dict(model=str(rule_pipeline), input=str(source), output=str(tmp_path / "out"), shard_size=5))
    assert not (tmp_path / "out" / "notes-000001.jsonl").exists()
    assert ids_of(tmp_path / "out") == [n["id"] for n in notes[:5]]  # shard 0 only, once


def _descendants(pid: int):
    import psutil

    return psutil.Process(pid).children(recursive=True)


def _start_pool_job(rule_pipeline, tmp_path, n=40_000):
    source = write_lines(tmp_path / "notes.jsonl", [json.dumps(n) for n in good_notes(n)])
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "spacy_clinlong",
        "annotate",
        str(rule_pipeline),
        str(source),
        str(out),
        "--workers",
        "2",
        "--shard-size",
        "500",
        "--no-progress",
    ]
    # Its own process group, as a shell gives a command: Ctrl-C reaches the workers too. SIGINT
    # as a terminal leaves it: a test run started in the background (`cmd &` in a script) has
    # SIGINT ignored, and Python then never turns it into KeyboardInterrupt.
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    manifest = out / "manifest.jsonl"
    deadline = time.monotonic() + 300
    while not (manifest.exists() and manifest.stat().st_size) and process.poll() is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert process.poll() is None, process.communicate()[1].decode()[-2000:]
    return process, command, out


def _gone(processes, seconds=15.0) -> bool:
    import psutil

    _, alive = psutil.wait_procs(processes, timeout=seconds)
    return not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]


@pytest.mark.slow
@pytest.mark.parametrize("how", ["kill", "term"])
def test_workers_never_outlive_the_job_and_a_rerun_finishes_it(rule_pipeline, tmp_path, how):
    pytest.importorskip("psutil")
    process, command, out = _start_pool_job(rule_pipeline, tmp_path)
    workers = _descendants(process.pid)
    assert len([p for p in workers if "python" in p.name().lower()]) >= 2
    process.send_signal(signal.SIGKILL if how == "kill" else signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert _gone(workers), [p.pid for p in workers]
    if how == "term":
        assert process.returncode == 143
        assert "stopped by SIGTERM" in stderr.decode() and "the same command resumes" in stderr.decode()
        assert "Traceback" not in stderr.decode()
    finished = subprocess.run(command, capture_output=True, timeout=900)
    assert finished.returncode == 0, finished.stderr.decode()[-2000:]
    ids = ids_of(out)
    assert len(ids) == len(set(ids)) == 40_000


@pytest.mark.slow
def test_ctrl_c_stops_the_job_with_one_line_and_exit_130(rule_pipeline, tmp_path):
    pytest.importorskip("psutil")
    process, command, out = _start_pool_job(rule_pipeline, tmp_path)
    workers = _descendants(process.pid)
    os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C in a terminal: the whole group
    _, stderr = process.communicate(timeout=60)
    text = stderr.decode()
    assert process.returncode == 130, text[-2000:]
    assert "stopped by Ctrl-C" in text and "Traceback" not in text
    assert _gone(workers)


@pytest.mark.slow
def test_a_worker_killed_by_the_system_is_one_line_and_a_rerun_finishes(rule_pipeline, tmp_path):
    pytest.importorskip("psutil")
    process, command, out = _start_pool_job(rule_pipeline, tmp_path)
    workers = [p for p in _descendants(process.pid) if "python" in p.name().lower()]
    workers[-1].kill()  # as the kernel's out-of-memory killer would
    _, stderr = process.communicate(timeout=120)
    text = stderr.decode()
    assert process.returncode == 1 and "A worker process died" in text and "Traceback" not in text, text[
        -2000:
    ]
    assert _gone(workers)
    finished = subprocess.run(command, capture_output=True, timeout=900)
    assert finished.returncode == 0, finished.stderr.decode()[-2000:]
    ids = ids_of(out)
    assert len(ids) == len(set(ids)) == 40_000


def test_the_time_limit_leaves_other_alarms_and_handlers_alone():
    from spacy_clinlong.annotate.shard import NoteTimeout, time_limit

    def outer(signum, frame):
        raise AssertionError("the caller's alarm")

    previous = signal.signal(signal.SIGALRM, outer)
    try:
        with pytest.raises(NoteTimeout):
            with time_limit(0.05):
                time.sleep(5)
        assert signal.getsignal(signal.SIGALRM) is outer and signal.getitimer(signal.ITIMER_REAL)[0] == 0
        with time_limit(5):
            pass  # finished in time: no alarm left behind
        assert signal.getsignal(signal.SIGALRM) is outer and signal.getitimer(signal.ITIMER_REAL)[0] == 0
        signal.setitimer(signal.ITIMER_REAL, 30)  # someone else's alarm is pending: not replaced
        with time_limit(0.05):
            time.sleep(0.2)
        assert 0 < signal.getitimer(signal.ITIMER_REAL)[0] <= 30
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@Language.component("test_sleep_on_marker")
def _sleep_on_marker(doc):
    if "SLOW" in doc.text:
        time.sleep(60)  # a rule component that never ends on this note, in Python
    return doc


def test_a_note_past_the_time_limit_is_a_timeout_and_the_job_moves_on(tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("test_sleep_on_marker")
    nlp.to_disk(tmp_path / "pipeline")
    notes = good_notes(10)
    notes[4]["text"] = f"SLOW {SECRET}"
    source = write_lines(tmp_path / "notes.jsonl", [json.dumps(n) for n in notes])
    start = time.monotonic()
    summary, _ = run(
        dict(model=str(tmp_path / "pipeline"), input=str(source), output=str(tmp_path / "out"), batch_size=4),
        note_timeout=0.5,
    )
    # The slow note sleeps 60 s: the job ending sooner means it was cut off.
    assert time.monotonic() - start < 60
    assert summary["notes"] == 9 and summary["errors_by_reason"] == {"timeout": 1}
    assert errors_of(tmp_path / "out") == [
        {
            "index": 4,
            "id": "n000004",
            "reason": "timeout",
            "source": "notes.jsonl:5",
            "length": len(notes[4]["text"]),
            "detail": "0.5 s",
        }
    ]
    assert ids_of(tmp_path / "out") == [n["id"] for i, n in enumerate(notes) if i != 4]


def test_a_csv_quote_left_open_names_every_line_it_swallowed(tmp_path):
    table = tmp_path / "notes.csv"
    table.write_text('id,text\na,Good note.\nb,"open quote ' + SECRET + '\nc,"next row"\nd,Last good note.\n')
    source = NoteInput(table)
    shards = list(shard_plan(source, shard_size=10, max_chars=1000))
    assert [(e["reason"], e["source"]) for e in shards[0]["bad"]] == [("malformed_csv", "notes.csv:3-4")]
    assert [n[0] for n in read_shard(source, shards[0], max_chars=1000)[0]] == ["a", "d"]
    # Open to the end of the file: the lines to the end are named, nothing is a note.
    table.write_text('id,text\na,Good note.\nb,"open ' + SECRET + "\nc,more\n")
    bad = list(shard_plan(NoteInput(table), shard_size=10, max_chars=1000))[0]["bad"]
    assert [(e["reason"], e["source"]) for e in bad] == [("malformed_csv", "notes.csv:3-4")]


def test_an_undecodable_csv_id_is_undecodable_not_missing(tmp_path):
    table = tmp_path / "notes.csv"
    table.write_bytes(b"id,text\nok,Good note.\nx\xff,Text " + SECRET.encode() + b"\n")
    bad = list(shard_plan(NoteInput(table), shard_size=10, max_chars=1000))[0]["bad"]
    assert [(e["id"], e["reason"]) for e in bad] == [(None, "undecodable")]


def test_txt_paths_that_are_not_notes_are_reported(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text(SECRET + " lives outside the input folder.")
    folder = tmp_path / "notes"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("Good note.")
    (folder / "sub" / "b.txt").write_text("Another good note.")
    (folder / "inside.txt").symlink_to(folder / "a.txt")  # inside: read
    (folder / "escape.txt").symlink_to(outside)
    (folder / "dangling.txt").symlink_to(tmp_path / "missing.txt")
    (folder / "loop.txt").symlink_to(folder / "loop.txt")
    (folder / "folder.txt").mkdir()
    os.mkfifo(folder / "fifo.txt")  # reading it would block forever
    source = NoteInput(folder)
    shards = list(shard_plan(source, shard_size=100, max_chars=1000))
    assert sorted((e["id"], e["reason"]) for e in shards[0]["bad"]) == [
        ("dangling", "not_a_file"),
        ("escape", "outside_input"),
        ("fifo", "not_a_file"),
        ("folder", "not_a_file"),
        ("loop", "not_a_file"),
    ]
    assert [n[0] for n in read_shard(source, shards[0], max_chars=1000)[0]] == ["a", "inside", "sub/b"]
    followed = NoteInput(folder, follow_symlinks=True)
    shards = list(shard_plan(followed, shard_size=100, max_chars=1000))
    assert "escape" in [n[0] for n in read_shard(followed, shards[0], max_chars=1000)[0]]
    assert SECRET not in json.dumps(shards[0]["bad"])


def test_a_finished_job_is_reported_without_loading_the_pipeline(rule_pipeline, tmp_path, monkeypatch):
    from spacy_clinlong.annotate import engines

    source = write_lines(tmp_path / "notes.jsonl", [json.dumps(n) for n in good_notes(12)])
    spec = dict(model=str(rule_pipeline), input=str(source), output=str(tmp_path / "out"), shard_size=5)
    first, _ = run(spec)

    def refuse(*args, **kwargs):
        raise AssertionError("the pipeline was loaded")

    monkeypatch.setattr(engines, "load_pipeline", refuse)
    monkeypatch.setattr(spacy, "load", refuse)
    again, lines = run(spec)
    assert again == first and lines == [f"Already complete: {tmp_path / 'out'}"]


def test_torch_that_loads_weights_only_by_default_is_required():
    import configparser

    config = configparser.ConfigParser()
    config.read(Path(__file__).parents[1] / "setup.cfg")
    requires = config["options"]["install_requires"].split()
    assert "torch>=2.6" in requires  # torch.load's weights_only default: no pickled code from a model file


# Any bytes at all --------------------------------------------------------------------------


def _plan_and_read(source: NoteInput):
    shards = list(shard_plan(source, shard_size=3, max_chars=200))
    seen = 0
    for shard in json.loads(json.dumps(shards)):
        good, bad = read_shard(source, shard, max_chars=200)
        assert all(e["reason"] in REASONS for e in bad)
        assert len(good) + len(bad) == shard["records"]
        for note_id, text, _, _ in good:
            assert isinstance(note_id, (str, int)) and text.strip() and len(text) <= 200
            json.dumps({"id": note_id, "text": text}, ensure_ascii=False).encode("utf-8")  # writable
        seen += shard["records"]
    return seen


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@FUZZ
@given(
    lines=st.lists(
        st.one_of(
            st.binary(max_size=60),
            st.dictionaries(st.sampled_from(["id", "text", "x"]), JSON_VALUES, max_size=3).map(
                lambda d: json.dumps(d).encode()
            ),
            st.builds(
                lambda i, t: json.dumps({"id": i, "text": t}).encode(),
                st.one_of(st.text(), st.integers()),
                st.text(),
            ),
        ),
        max_size=12,
    )
)
def test_any_jsonl_bytes_give_records_or_reasons(tmp_path, lines):
    path = tmp_path / "fuzz.jsonl"
    lines = [line.replace(b"\n", b" ") for line in lines]
    path.write_bytes(b"\n".join(lines) + b"\n")
    # A UTF-8 BOM that starts the file is dropped (as by utf-8-sig): no record of its own.
    if lines and lines[0].startswith(b"\xef\xbb\xbf"):
        lines[0] = lines[0][3:]
    assert _plan_and_read(NoteInput(path)) == sum(1 for line in lines if line.strip())


@FUZZ
@given(
    body=st.binary(max_size=300),
    rows=st.lists(st.lists(st.text(max_size=20), min_size=0, max_size=3), max_size=6),
)
def test_any_csv_bytes_give_records_or_reasons(tmp_path, body, rows):
    text = io.StringIO()
    csv.writer(text).writerows(rows)
    path = tmp_path / "fuzz.csv"
    path.write_bytes(b"id,text\n" + text.getvalue().encode("utf-8", "surrogatepass") + body)
    _plan_and_read(NoteInput(path))


@FUZZ
@given(
    files=st.dictionaries(
        st.from_regex(r"[a-z]{1,6}", fullmatch=True), st.binary(max_size=80), min_size=1, max_size=5
    )
)
def test_any_txt_bytes_give_records_or_reasons(tmp_path, files):
    folder = tmp_path / "fuzz"
    if folder.exists():
        for path in folder.iterdir():
            path.unlink()
    folder.mkdir(exist_ok=True)
    for name, data in files.items():
        (folder / f"{name}.txt").write_bytes(data)
    assert _plan_and_read(NoteInput(folder)) == len(files)


@FUZZ
@given(data=st.binary(max_size=200))
def test_any_parquet_bytes_are_read_or_refused_in_one_line(tmp_path, data):
    pytest.importorskip("pyarrow")
    path = tmp_path / "fuzz.parquet"
    path.write_bytes(b"PAR1" + data + b"PAR1")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        NoteInput(path)


def test_parquet_values_of_any_type_are_records_or_reasons(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "notes.parquet"
    pq.write_table(
        pa.table(
            {
                "id": pa.array([1, 2**63 - 1, 3, 4], pa.uint64()),
                "text": ["Good note.", "Big id, still 64 bits.", None, " "],
            }
        ),
        path,
    )
    shards = list(shard_plan(NoteInput(path), shard_size=10, max_chars=100))
    assert [(e["index"], e["reason"]) for e in shards[0]["bad"]] == [(2, "missing_text"), (3, "empty")]
    pq.write_table(pa.table({"id": pa.array([2**64 - 1], pa.uint64()), "text": ["x"]}), path)
    assert (
        list(shard_plan(NoteInput(path), shard_size=10, max_chars=100))[0]["bad"][0]["reason"] == "invalid_id"
    )


@pytest.mark.parametrize("reader", ["annotate", "convert"])
def test_after_a_bad_csv_row_no_fragment_of_a_note_becomes_a_row(tmp_path, reader):
    table = tmp_path / "notes.csv"
    # Row 3's quoted note runs on to line 4, but strict parsing refuses the row at its
    # stray quote; line 4 ("9,...") must not be read as note 9.
    table.write_text(
        'id,text\n1,Good note.\n3,"Three" oops "more\n9,rest of note three ' + SECRET + '"\n'
        '9,Real note nine.\n10,"Ten, with a comma"\n11,cut, at a comma\n'
    )
    if reader == "annotate":
        source = NoteInput(table)
        shards = list(shard_plan(source, shard_size=10, max_chars=1000))
        assert [(e["reason"], e["source"]) for e in shards[0]["bad"]] == [
            ("malformed_csv", "notes.csv:3-4"),
            ("malformed_csv", "notes.csv:7"),
        ]
        good = read_shard(source, shards[0], max_chars=1000)[0]
        assert [(n[0], n[1]) for n in good] == [
            ("1", "Good note."),
            ("9", "Real note nine."),
            ("10", "Ten, with a comma"),
        ]
    else:
        from spacy_clinlong.corpus.report import ConversionReport
        from spacy_clinlong.corpus.tabular import read_csv

        report = ConversionReport()
        records = read_csv(table, report)
        assert [(r["id"], r["text"]) for r in records] == [
            ("1", "Good note."),
            ("9", "Real note nine."),
            ("10", "Ten, with a comma"),
        ]
        assert [(p.reason, p.line) for p in report.problems] == [("malformed_csv", 3), ("malformed_csv", 7)]
        assert "lines 3-4 lost" in str(report.problems[0])
        assert SECRET not in json.dumps([str(problem) for problem in report.problems])
