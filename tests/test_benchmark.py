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
        "longformer_int8_vs_longformer",
        "longformer_int8_at_least_1.6x_fp32",
    }
    assert report["machine"]["device"] == "cpu" and report["machine"]["cpu_count"] >= 1
    assert report["machine"]["cpu_capability"] in ("DEFAULT", "AVX2", "AVX512")
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


def test_the_shipped_real_notes_need_one_two_and_three_windows():
    from spacy_clinlong.evaluation.bench.real_notes import GROUPS, PER_GROUP

    by_group = bench.read_bench_notes()
    assert list(by_group) == ["1 window", "2 windows", "3 windows"]
    seen = set()
    for group, texts in by_group.items():
        low, high = GROUPS[group]
        assert len(texts) == PER_GROUP
        assert all(low <= len(t.split()) <= high for t in texts), group
        seen.update(texts)
    assert len(seen) == 3 * PER_GROUP, "every note is different"
    assert list(bench.read_bench_notes(["3 windows"])) == ["3 windows"]
    with pytest.raises(ValueError, match="Unknown note groups"):
        bench.read_bench_notes(["4 windows"])


def test_bench_notes_are_rebuilt_byte_for_byte_and_need_enough_text(tmp_path):
    from spacy_clinlong.evaluation.bench.real_notes import build_bench_notes, write_bench_notes

    pool = [" ".join(f"w{i}x{j}" for j in range(500 + 37 * i)) for i in range(160)]
    notes = build_bench_notes(pool, per_group=2)
    assert [n["group"] for n in notes] == ["1 window"] * 2 + ["2 windows"] * 2 + ["3 windows"] * 2
    first = write_bench_notes(notes, tmp_path / "a.jsonl.gz").read_bytes()
    assert (
        first == write_bench_notes(build_bench_notes(pool, per_group=2), tmp_path / "b.jsonl.gz").read_bytes()
    )
    assert bench.read_bench_notes(path=tmp_path / "a.jsonl.gz")["2 windows"] == [
        notes[2]["text"],
        notes[3]["text"],
    ]
    with pytest.raises(ValueError, match="too few"):
        build_bench_notes(pool[:10], per_group=2)


def test_groups_and_batch_sizes_each_run_and_stock_longformer_skips_groups_too_long(
    tiny_dirs, texts, tmp_path
):
    long_note = "\n\n".join(n["text"] for n in generate_notes(12, seed=1))
    report = bench.run_groups(
        {"short": texts[:2], "long": [long_note]},
        batch_sizes=[1, 2],
        systems=["longformer", "longformer-int8", "strided-bert", "hf-longformer"],
        size="tiny",
        models_dir=tmp_path / "unused",
        model_dirs=tiny_dirs,
        repeats=1,
        warmup=0,
    )
    runs = report["runs"]
    assert [(r["group"], r["settings"]["batch_size"]) for r in runs] == [
        ("short", 1),
        ("long", 1),
        ("short", 2),
        ("long", 2),
    ]
    for run in runs:
        keys = [s["key"] for s in run["systems"]]
        if run["group"] == "long":
            assert keys == ["longformer", "longformer-int8", "strided-bert"]
            assert run["dropped_systems"] == ["hf-longformer"]
        else:
            assert keys == ["longformer", "longformer-int8", "strided-bert", "hf-longformer"]
            assert run["dropped_systems"] == []
        assert run["targets"]["longformer_int8_vs_longformer"] > 0
    table = bench.format_groups_table(report)
    assert table.count("longformer-int8") == 4 and "| long (1 x" in table
    png = bench.plot_groups(report, tmp_path / "groups.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("clinical", ["fast", "before"])
def test_the_clinical_pipeline_puts_ner_and_medspacy_after_every_system(tiny_dirs, texts, clinical):
    for key in ("longformer-int8", "strided-bert"):
        system = next(s for s in bench.SYSTEMS if s.key == key)
        nlp = bench.build_pipeline(system, tiny_dirs[system.arch], gpu=False, clinical=clinical)
        splitter = "clinlong_sentences" if clinical == "fast" else "clinlong_pyrush"
        consumer = "clinlong_doc_consumer" if clinical == "fast" else "medspacy_doc_consumer"
        assert nlp.pipe_names[:3] == ["transformer", "ner", splitter]
        assert "medspacy_target_matcher" in nlp.pipe_names
        assert nlp.get_pipe_meta("medspacy_doc_consumer").factory == consumer
        assert set(nlp.get_pipe("ner").labels) == set(bench.CLINICAL_LABELS)
        doc = nlp(texts[0] + "\nDenies chest pain. Started on aspirin. CT negative.")
        assert doc.has_annotation("SENT_START") and len(doc._.data["ents"]["text"]) >= 3
        assert any(ent._.is_negated for ent in doc.ents)
    with pytest.raises(ValueError, match="clinical must be one of"):
        bench.build_pipeline(system, tiny_dirs["bert"], gpu=False, clinical="slow")


def test_cli_groups_belong_to_the_real_notes(tmp_path):
    out = str(tmp_path / "r.json")
    result = CliRunner().invoke(app, ["benchmark", "--synth", "2", "--groups", "1 window", "--json", out])
    assert result.exit_code != 0 and "--groups chooses among the shipped real notes" in result.output
    result = CliRunner().invoke(app, ["benchmark", "--groups", "4 windows", "--json", out])
    assert result.exit_code != 0 and "Unknown note groups" in result.output


@pytest.mark.slow
def test_cli_runs_the_real_notes_by_default(tiny_dirs, tmp_path):
    out = tmp_path / "report.json"
    args = ["benchmark", "--size", "tiny", "--groups", "1 window", "--batch-size", "1", "--batch-size", "8"]
    args += ["--repeats", "1", "--warmup", "0", "--json", str(out), "--pipeline", "fast"]
    args += ["--model", f"longformer={tiny_dirs['longformer']}", "--model", f"bert={tiny_dirs['bert']}"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert [(r["group"], r["settings"]["batch_size"]) for r in report["runs"]] == [
        ("1 window", 1),
        ("1 window", 8),
    ]
    assert [s["key"] for s in report["runs"][0]["systems"]] == [
        "longformer",
        "longformer-int8",
        "strided-bert",
    ]
    assert report["runs"][0]["settings"]["clinical"] == "fast"
    assert "| 1 window (8 x" in result.output and "cores" in result.output


def test_the_report_names_limits_set_on_the_kernels_instructions(monkeypatch):
    # AVX2 code measured on an AVX-512 machine must not read as that machine's own figure.
    for name in bench.measure.ISA_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    plain = bench.machine_facts(None)
    assert plain["isa_limits"] == {}
    assert "limited" not in bench.machine_line(plain)
    assert plain["cpu"] in bench.machine_line(plain) and plain["cpu_capability"] in bench.machine_line(plain)
    monkeypatch.setenv("MKL_ENABLE_INSTRUCTIONS", "AVX2")
    monkeypatch.setenv("FBGEMM_ENABLE_INSTRUCTIONS", "AVX2")
    limited = bench.machine_facts(None)
    assert limited["isa_limits"] == {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "FBGEMM_ENABLE_INSTRUCTIONS": "AVX2"}
    assert "limited by MKL_ENABLE_INSTRUCTIONS=AVX2, FBGEMM_ENABLE_INSTRUCTIONS=AVX2" in bench.machine_line(
        limited
    )


def test_int8_on_a_gpu_and_an_empty_choice_are_refused(tiny_dirs, texts, tmp_path):
    with pytest.raises(ValueError, match="No systems to run"):
        bench.run_benchmark(texts, systems=[], size="tiny", models_dir=tmp_path, model_dirs=tiny_dirs)
    with pytest.raises(ValueError, match="longformer-int8 run on CPU only"):
        bench.run_benchmark(
            texts,
            systems=["longformer-int8"],
            size="tiny",
            models_dir=tmp_path,
            model_dirs=tiny_dirs,
            gpu_id=0,
        )
    with pytest.raises(ValueError, match="No note groups chosen"):
        bench.read_bench_notes([])
    result = CliRunner().invoke(app, ["benchmark", "--min-words", "500", "--json", str(tmp_path / "r.json")])
    assert result.exit_code != 0 and "--min-words chooses among synthetic notes" in result.output
