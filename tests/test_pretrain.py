"""Continued masked-LM pretraining: streaming, packing, masking, the run, resumption, torchrun."""

import json
import logging
import os
import shutil
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from spacy_clinlong.cli import app
from spacy_clinlong.corpus import generate_notes
from spacy_clinlong.pretraining import (
    NoteSource,
    PretrainSettings,
    mask_batch,
    pack_notes,
    run_pretraining,
)
from spacy_clinlong.pretraining.notes import CorpusError, split_held_out
from spacy_clinlong.pretraining.packing import NO_WORD, pad_batch
from spacy_clinlong.pretraining.train import METRICS_FILE, training_arguments

SECRET = "Patient Zyxwvut reports a unique phrase"


@pytest.fixture(scope="module")
def notes():
    return [note["text"] for note in generate_notes(24, seed=3)]


@pytest.fixture(scope="module")
def jsonl_corpus(tmp_path_factory, notes):
    path = tmp_path_factory.mktemp("pt-corpus") / "notes.jsonl"
    with path.open("w", encoding="utf8") as handle:
        for i, text in enumerate(notes):
            handle.write(json.dumps({"id": i, "text": text}) + "\n")
    return path


@pytest.fixture(scope="module")
def tokenizer(tiny_models):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_models("longformer"))


def small_settings(**overrides) -> PretrainSettings:
    values = dict(
        max_steps=6,
        max_length=256,
        batch_size=2,
        learning_rate=1e-3,
        save_steps=3,
        logging_steps=3,
        max_eval_notes=2,
        eval_fraction=0.1,
        use_cpu=True,
    )
    values.update(overrides)
    return PretrainSettings(**values)


def test_sources_stream_txt_jsonl_csv_and_count_bad_records(tmp_path, caplog):
    folder = tmp_path / "txt"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("First note.", encoding="utf8")
    (folder / "sub" / "b.txt").write_text("Second note.", encoding="utf8")
    (folder / "bad.txt").write_bytes(b"\xff\xfe" + SECRET.encode() + b"\xc3")
    (folder / "empty.txt").write_text("  \n", encoding="utf8")
    (folder / "ignored.md").write_text("not a note", encoding="utf8")
    source = NoteSource(folder)
    with caplog.at_level(logging.WARNING):
        assert list(source) == ["First note.", "Second note."]
    assert source.skipped == {"undecodable": 1, "empty": 1}

    jsonl = tmp_path / "notes.jsonl"
    jsonl.write_bytes(
        b'{"text": "One."}\n{"text": ""}\nnot json ' + SECRET.encode() + b"\n"
        b'\n{"text": "caf\xff"}\n{"id": 3}\n{"text": "Two."}\n'
    )
    source = NoteSource(jsonl)
    with caplog.at_level(logging.WARNING):
        assert list(source) == ["One.", "Two."]
    # The reasons annotate gives: an empty text is "empty", a text field that is absent "missing_text".
    assert source.skipped == {"empty": 1, "missing_text": 1, "invalid_json": 1, "undecodable": 1}
    assert "notes.jsonl:3" in caplog.text

    table = tmp_path / "notes.csv"
    table.write_bytes(
        b'id,note\n1,"Line one\nline two"\n2,\n3,"caf\xff"\n4,Last.\n5,"Five" oops "more\n6,rest of five '
        + SECRET.encode()
        + b'"\n7,Seven.\n8,cut, at a comma\n'
    )
    source = NoteSource(table, text_field="note")
    with caplog.at_level(logging.WARNING):
        assert list(source) == ["Line one\nline two", "Last.", "Seven."]
    assert source.skipped == {"empty": 1, "undecodable": 1, "malformed_csv": 2}
    # The row with a stray quote, and the line its open quote took (never a note of its own).
    assert "malformed_csv (notes.csv:7-8)" in caplog.text and "malformed_csv (notes.csv:10)" in caplog.text
    assert SECRET not in caplog.text and "Zyxwvut" not in caplog.text

    with pytest.raises(CorpusError, match="no column 'text'"):
        list(NoteSource(table))
    (tmp_path / "notes.json").write_text("{}", encoding="utf8")
    with pytest.raises(CorpusError, match="expected a directory"):
        NoteSource(tmp_path / "notes.json")
    with pytest.raises(CorpusError, match="does not exist"):
        NoteSource(tmp_path / "missing")


def test_a_parquet_corpus_streams_its_text_column_without_ids(tmp_path, caplog):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "notes.parquet"
    pq.write_table(pa.table({"note": ["First note.", None, " ", "Last note."]}), path, row_group_size=2)
    source = NoteSource(path, text_field="note")
    with caplog.at_level(logging.WARNING):
        assert list(source) == ["First note.", "Last note."]
    assert source.skipped == {"missing_text": 1, "empty": 1}
    assert "notes.parquet:row 1" in caplog.text


def test_held_out_split_is_stable_and_bounded(jsonl_corpus):
    source = NoteSource(jsonl_corpus)
    texts, indices = split_held_out(source, fraction=0.3, max_notes=4, seed=0)
    again, same = split_held_out(source, fraction=0.3, max_notes=4, seed=0)
    assert texts == again and indices == same
    assert 1 <= len(texts) <= 4
    all_texts = list(source)
    assert texts == [all_texts[i] for i in sorted(indices)]


def test_packing_fills_every_sequence_and_keeps_every_wordpiece(notes, tokenizer):
    sequences = list(pack_notes(notes[:6], tokenizer, 128))
    assert all(len(s["input_ids"]) == 128 for s in sequences[:-1])
    assert 0 < len(sequences[-1]["input_ids"]) <= 128
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    assert all(s["input_ids"][0] == cls and s["input_ids"][-1] == sep for s in sequences)
    # Content without the per-sequence specials is the notes' wordpieces joined by separators.
    content = [i for s in sequences for i in s["input_ids"][1:-1]]
    expected = []
    for text in notes[:6]:
        if expected:
            expected.append(sep)
        expected += tokenizer(text, add_special_tokens=False)["input_ids"]
    assert content == expected
    # Word numbers: specials have none; pieces of one word share one, numbers restart per sequence.
    for s in sequences:
        groups = s["word_groups"]
        assert groups[0] == NO_WORD and groups[-1] == NO_WORD
        real = [g for g in groups if g != NO_WORD]
        assert real == sorted(real) and real[0] == 0 and max(real) < len(groups)
    # A held-out note is left out.
    skipped = list(pack_notes(notes[:6], tokenizer, 128, skip={0}))
    assert sum(len(s["input_ids"]) for s in skipped) < sum(len(s["input_ids"]) for s in sequences)


def test_whole_word_masking_masks_all_pieces_of_a_word_and_never_specials(notes, tokenizer):
    sequences = list(pack_notes(notes[:4], tokenizer, 256))
    batch = pad_batch(sequences, tokenizer.pad_token_id)
    out = mask_batch(
        batch["input_ids"],
        batch["word_groups"],
        tokenizer=tokenizer,
        mlm_probability=0.3,
        generator=torch.Generator().manual_seed(0),
    )
    chosen = out["labels"] != -100
    groups = batch["word_groups"]
    multi_piece_words = 0
    for row in range(len(groups)):
        for word in groups[row].unique().tolist():
            if word == NO_WORD:
                continue
            where = groups[row] == word
            picked = chosen[row][where]
            assert bool(picked.all()) or not bool(picked.any()), "a word was masked only in part"
            multi_piece_words += int(where.sum() > 1)
    assert multi_piece_words > 0
    special = torch.zeros_like(chosen)
    for sid in tokenizer.all_special_ids:
        special |= batch["input_ids"] == sid
    assert not bool((chosen & special).any())
    assert bool((out["attention_mask"] == (batch["input_ids"] != tokenizer.pad_token_id).long()).all())
    rate = chosen.sum().item() / (~special).sum().item()
    assert 0.2 < rate < 0.4
    # 80% of the chosen become [MASK]; labels keep the original ids.
    masked = out["input_ids"] == tokenizer.mask_token_id
    assert 0.7 < (masked & chosen).sum().item() / chosen.sum().item() < 0.9
    assert bool((out["labels"][chosen] == batch["input_ids"][chosen]).all())


def test_no_experiment_tracker_unless_asked(tmp_path):
    args = training_arguments(small_settings(), tmp_path, "fp32", False, False)
    assert args.report_to == []
    args = training_arguments(small_settings(report_to=("tensorboard",)), tmp_path, "fp32", False, False)
    assert args.report_to == ["tensorboard"]


def test_settings_out_of_range_are_refused():
    with pytest.raises(ValueError, match="mlm_probability"):
        small_settings(mlm_probability=1.5).check()
    with pytest.raises(ValueError, match="precision"):
        small_settings(precision="int8").check()


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory, tiny_models, jsonl_corpus):
    out = tmp_path_factory.mktemp("pretrained") / "model"
    metrics = run_pretraining(
        str(tiny_models("longformer")),
        jsonl_corpus,
        out,
        small_settings(max_steps=40, save_steps=20, learning_rate=2e-3),
    )
    return out, metrics


def test_pretraining_lowers_held_out_loss_and_writes_a_model(pretrained, capfd):
    out, metrics = pretrained
    written = json.loads((out / METRICS_FILE).read_text(encoding="utf8"))
    assert written["steps"] == 40 and written["max_length"] == 256
    before, after = written["heldout"]["before"], written["heldout"]["after"]
    assert before["masked_wordpieces"] == after["masked_wordpieces"] > 0
    assert after["loss"] < before["loss"] - 0.3
    assert after["perplexity"] == pytest.approx(2.718281828 ** after["loss"], rel=1e-6)
    assert written["settings"]["report_to"] == []
    assert (out / "config.json").exists() and (out / "tokenizer.json").exists()


def test_pretrained_output_is_a_model_a_pipeline_takes_as_name(pretrained, trf_nlp, notes):
    out, _ = pretrained
    nlp = trf_nlp(out)
    doc = nlp(notes[0])
    data = doc._.trf_data
    assert data.model_output.last_hidden_state.shape[-1] == 64
    assert data.align.lengths.min() >= 1 or len(doc) == 0


def test_resumed_run_equals_an_uninterrupted_one(tmp_path, tiny_models, jsonl_corpus):
    from safetensors.torch import load_file

    model = str(tiny_models("longformer"))
    full = tmp_path / "full"
    run_pretraining(model, jsonl_corpus, full, small_settings())
    cut = tmp_path / "cut"
    shutil.copytree(full, cut)
    # As if killed between the checkpoint at step 3 and the end.
    shutil.rmtree(cut / "checkpoints" / "checkpoint-6")
    (cut / "model.safetensors").unlink()
    (cut / METRICS_FILE).unlink()
    metrics = run_pretraining(model, jsonl_corpus, cut, small_settings())
    assert metrics["resumed_from"] == "checkpoint-3" and metrics["steps"] == 6
    a, b = load_file(full / "model.safetensors"), load_file(cut / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    first = json.loads((full / METRICS_FILE).read_text(encoding="utf8"))
    assert metrics["heldout"] == first["heldout"]
    # Checkpoints of another run are not resumed from; --no-resume starts over there.
    with pytest.raises(ValueError, match="different run.*max_length"):
        run_pretraining(model, jsonl_corpus, cut, small_settings(max_length=128))
    again = run_pretraining(model, jsonl_corpus, cut, small_settings(max_length=128, resume=False))
    assert again["resumed_from"] is None and again["steps"] == 6 and again["max_length"] == 128
    assert sorted(p.name for p in (cut / "checkpoints").glob("checkpoint-*")) == [
        "checkpoint-3",
        "checkpoint-6",
    ]


def test_note_text_stays_out_of_logs(tmp_path, tiny_models, capfd, caplog):
    corpus = tmp_path / "notes"
    corpus.mkdir()
    for i in range(4):
        (corpus / f"{i}.txt").write_text(f"{SECRET} number {i}. " * 20, encoding="utf8")
    (corpus / "bad.txt").write_bytes(SECRET.encode() + b"\xff")
    with caplog.at_level(logging.DEBUG):
        metrics = run_pretraining(
            str(tiny_models("longformer")),
            corpus,
            tmp_path / "out",
            small_settings(max_steps=2, save_steps=2, logging_steps=1),
        )
    captured = capfd.readouterr()
    assert metrics["skipped_notes"] == {"undecodable": 1}
    for stream in (captured.out, captured.err, caplog.text):
        assert "Zyxwvut" not in stream


def test_cli_pretrain_and_its_errors(tmp_path, tiny_models, jsonl_corpus):
    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(
        app,
        [
            "pretrain",
            str(tiny_models("longformer")),
            str(jsonl_corpus),
            str(out),
            "--max-steps",
            "2",
            "--max-length",
            "128",
            "--batch-size",
            "2",
            "--whole-word-mask",
            "--gpu-id",
            "-1",
            "--eval-corpus",
            str(jsonl_corpus),
            "--max-eval-notes",
            "1",
            "--metrics",
            str(tmp_path / "m" / "pretrain_mlm.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Held-out masked-LM loss" in result.output
    metrics = json.loads((out / METRICS_FILE).read_text(encoding="utf8"))
    assert metrics["whole_word_mask"] is True and metrics["heldout_notes"] == 1
    assert json.loads((tmp_path / "m" / "pretrain_mlm.json").read_text(encoding="utf8")) == metrics
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"text": ""}\n', encoding="utf8")
    result = runner.invoke(
        app, ["pretrain", str(tiny_models("longformer")), str(empty), str(tmp_path / "x"), "--gpu-id", "-1"]
    )
    assert result.exit_code == 1
    assert "fewer than two good notes" in result.output
    result = runner.invoke(app, ["pretrain", str(tmp_path / "nope"), str(jsonl_corpus), str(tmp_path / "y")])
    assert result.exit_code == 1 and "does not exist" in result.output


@pytest.mark.slow
def test_torchrun_runs_the_same_command_data_parallel(tmp_path, tiny_models, jsonl_corpus):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29533",
        "-m",
        "spacy_clinlong",
        "pretrain",
        str(tiny_models("longformer")),
        str(jsonl_corpus),
        str(out),
        "--max-steps",
        "3",
        "--max-length",
        "128",
        "--batch-size",
        "2",
        "--save-steps",
        "3",
        "--gpu-id",
        "-1",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((out / METRICS_FILE).read_text(encoding="utf8"))
    assert metrics["processes"] == 2 and metrics["sequences_per_step"] == 4 and metrics["steps"] == 3
    assert result.stdout.count("Held-out masked-LM loss") == 1
