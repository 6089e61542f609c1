"""The benchmark command and the memory of a corpus run (tiny models: the
mechanics, never the speed; speed is measured by the command, not by tests)."""

import json

import pytest
import spacy
from spacy.util import load_config_from_str, load_model_from_config
from typer.testing import CliRunner

from spacy_clinlong.cli import app
from spacy_clinlong.configs import render
from spacy_clinlong.corpus.synth.generator import generate_notes
from spacy_clinlong.evaluation import bench


@pytest.fixture(scope="module")
def tiny_dirs(tiny_models):
    return {arch: tiny_models(arch) for arch in ("longformer", "bigbird", "modernbert", "bert")}


@pytest.fixture(scope="module")
def texts():
    return [n["text"] for n in generate_notes(3, seed=5)]


def test_every_system_on_the_same_notes(tiny_dirs, texts, tmp_path):
    report = bench.run_benchmark(
        texts, size="tiny", models_dir=tmp_path / "unused", model_dirs=tiny_dirs, repeats=2, warmup=1
    )
    keys = [s["key"] for s in report["systems"]]
    assert keys == list(bench.SYSTEM_KEYS)
    assert report["notes"]["count"] == len(texts) and report["notes"]["skipped_over_longformer_budget"] == 0
    assert not (tmp_path / "unused").exists(), "given models must not be rebuilt"
    for s in report["systems"]:
        assert len(s["words_per_s_repeats"]) == 2
        assert s["words_per_s_min"] <= s["words_per_s"] <= s["words_per_s_max"]
        assert s["wordpieces_per_s"] > 0 and 0 < s["latency_p50_s"] <= s["latency_p95_s"]
        assert s["peak_rss_mb"] > 0 and s["cuda_max_allocated_mb"] is None
        assert s["ratio_to_strided"] > 0
    baseline = next(s for s in report["systems"] if s["key"] == bench.BASELINE)
    assert baseline["ratio_to_strided"] == pytest.approx(1.0)
    assert set(report["targets"]) == {
        "longformer_vs_strided",
        "longformer_at_least_1.3x_strided",
        "longformer_vs_hf_longformer",
        "longformer_at_least_2.5x_hf_longformer",
    }
    assert report["machine"]["device"] == "cpu" and report["machine"]["cpu_count"] >= 1
    # Words are spaCy tokens, counted once per note whatever the system.
    nlp = spacy.blank("en")
    assert report["notes"]["words"] == sum(len(nlp.make_doc(t)) for t in texts)
    table = bench.format_table(report)
    assert all(s["label"] in table for s in report["systems"])
    png = bench.plot(report, tmp_path / "plot.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_notes_too_long_for_stock_longformer_are_reported_not_run(tiny_dirs, texts, tmp_path):
    long_note = "\n\n".join(n["text"] for n in generate_notes(12, seed=1))
    assert bench.fits_whole(tiny_dirs["longformer"], [long_note]) == [False]
    report = bench.run_benchmark(
        texts + [long_note],
        size="tiny",
        systems=["longformer", "hf-longformer"],
        models_dir=tmp_path,
        model_dirs=tiny_dirs,
        repeats=1,
        warmup=0,
    )
    assert report["notes"]["count"] == len(texts)
    assert report["notes"]["skipped_over_longformer_budget"] == 1
    assert "ratio_to_strided" not in report["systems"][0]
    assert report["targets"]["longformer_vs_strided"] is None


def test_bad_settings_are_refused(tiny_dirs, texts, tmp_path):
    with pytest.raises(ValueError, match="Unknown systems"):
        bench.run_benchmark(texts, systems=["gpt"], models_dir=tmp_path, model_dirs=tiny_dirs)
    with pytest.raises(ValueError, match="No notes"):
        bench.run_benchmark([], models_dir=tmp_path, model_dirs=tiny_dirs)


def test_cli_writes_json_and_plot(tiny_dirs, texts, tmp_path):
    notes = tmp_path / "notes.jsonl"
    notes.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts[:2]))
    out = tmp_path / "report.json"
    args = [
        "benchmark",
        "--size",
        "tiny",
        "--notes",
        str(notes),
        "--json",
        str(out),
        "--plot",
        str(tmp_path / "b.png"),
        "--systems",
        "longformer,strided-bert",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--model",
        f"longformer={tiny_dirs['longformer']}",
        "--model",
        f"bert={tiny_dirs['bert']}",
        "--corpus",
        "12",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert [s["key"] for s in report["systems"]] == ["longformer", "strided-bert"]
    assert report["corpus_memory"]["notes"] == 12
    assert report["corpus_memory"]["trf_data_left_on_docs"] is False
    assert (tmp_path / "b.png").exists()
    assert "longformer_vs_strided" in result.output


def test_cli_missing_model_directory_is_named(tmp_path):
    result = CliRunner().invoke(
        app, ["benchmark", "--model", f"bert={tmp_path / 'missing'}", "--json", str(tmp_path / "r.json")]
    )
    text = " ".join(result.output.replace("│", " ").split())  # unwrap rich's error box
    assert result.exit_code != 0 and "does not exist" in text


def test_cli_bad_notes_file_names_the_line_not_the_text(tmp_path):
    notes = tmp_path / "notes.jsonl"
    secret = "Patient Jane Doe has HIV"
    notes.write_text(json.dumps({"body": secret}) + "\n")
    result = CliRunner().invoke(app, ["benchmark", "--notes", str(notes), "--json", str(tmp_path / "r.json")])
    assert result.exit_code != 0
    assert "line 1" in result.output and secret not in result.output


def test_corpus_run_holds_no_hidden_states(tiny_models):
    """Docs kept in shards carry no trf_data once the drop component ran;
    without it every kept doc holds its hidden states."""
    system = next(s for s in bench.SYSTEMS if s.key == "longformer")
    nlp = bench.build_pipeline(system, tiny_models("longformer"), gpu=False)
    assert nlp.pipe_names == ["transformer", "clinlong_drop_trf_data"]
    report = bench.corpus_memory(nlp, bench.synthetic_stream(30, seed=2), n=30, shard_size=10, samples=5)
    assert report["notes"] == 30 and report["trf_data_left_on_docs"] is False
    assert [notes for notes, _ in report["segment_peak_rss_mb"]] == [6, 12, 18, 24, 30]
    assert all(mb > 0 for _, mb in report["segment_peak_rss_mb"])
    assert report["peak_rss_mb"] >= report["peak_rss_last_segment_mb"]
    with nlp.select_pipes(disable=["clinlong_drop_trf_data"]):
        kept = bench.corpus_memory(nlp, bench.synthetic_stream(4, seed=2), n=4, shard_size=10)
    assert kept["trf_data_left_on_docs"] is True


def test_synthetic_stream_is_deterministic_and_lazy():
    first = list(bench.synthetic_stream(5, seed=3, chunk=2))
    assert len(first) == 5 and first == list(bench.synthetic_stream(5, seed=3, chunk=2))
    stream = bench.synthetic_stream(10**9)
    assert isinstance(next(stream), str)


def test_heads_read_the_hidden_states_before_they_are_dropped(tiny_models, tmp_path):
    config = load_config_from_str(render("ner", "longformer"), interpolate=True)
    config["components"]["transformer"]["model"]["name"] = str(tiny_models("longformer"))
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    assert nlp.pipe_names == ["transformer", "ner", "clinlong_drop_trf_data"]
    for label in ("PROBLEM", "TREATMENT", "TEST"):
        nlp.get_pipe("ner").add_label(label)
    nlp.initialize()
    text = generate_notes(1, seed=4)[0]["text"]
    with nlp.select_pipes(disable=["clinlong_drop_trf_data"]):
        kept = nlp(text)
    dropped = nlp(text)
    assert kept._.trf_data is not None and dropped._.trf_data is None
    assert [(e.start, e.end, e.label_) for e in kept.ents] == [
        (e.start, e.end, e.label_) for e in dropped.ents
    ]
    nlp.to_disk(tmp_path / "p")
    loaded = spacy.load(tmp_path / "p")
    assert loaded.pipe_names[-1] == "clinlong_drop_trf_data"
    assert loaded(text)._.trf_data is None
    keep = spacy.load(tmp_path / "p", exclude=["clinlong_drop_trf_data"])
    assert keep(text)._.trf_data is not None


def test_drop_component_releases_memory_every_n_docs(monkeypatch):
    from spacy_clinlong.pipes import release

    calls = []
    monkeypatch.setattr(release, "release_memory", lambda: calls.append(1) or True)
    nlp = spacy.blank("en")
    nlp.add_pipe("clinlong_drop_trf_data", config={"release_every": 3})
    assert len(list(nlp.pipe(["a b"] * 7))) == 7
    assert len(calls) == 2
    with pytest.raises(ValueError, match="release_every"):
        nlp.add_pipe("clinlong_drop_trf_data", name="other", config={"release_every": -1})


def test_release_memory_gives_fragmented_heap_pages_back():
    import platform

    import psutil

    from spacy_clinlong.pipes.memory import release_memory

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("malloc_trim is glibc's")
    process = psutil.Process()
    # 64 KiB blocks come from the heap (under glibc's mmap threshold); freeing
    # every other one leaves holes glibc keeps, as long annotation runs do.
    blocks = [bytearray(64 * 1024) for _ in range(3000)]
    del blocks[::2]
    before = process.memory_info().rss
    assert release_memory() is True
    after = process.memory_info().rss
    assert before - after > 30 * 2**20, (before, after)
    del blocks
