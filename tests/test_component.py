"""The long-span transformer component with each architecture's tiny model."""

import logging
import shutil

import numpy
import pytest
import spacy
import torch
from transformers import AutoModel, AutoTokenizer

from spacy_clinlong.corpus.synth.generator import generate_notes
from spacy_clinlong.models import ModelLoadError
from spacy_clinlong.models.pieces import tokenize_docs

ARCHS = ["longformer", "bigbird", "modernbert", "bert"]


def assert_all_aligned(doc):
    data = doc._.trf_data
    if len(doc) == 0:
        return
    lengths = numpy.asarray(data.align.lengths)
    assert lengths.shape[0] == len(doc)
    assert (lengths >= 1).all(), "a token has no wordpiece"
    hidden = data.model_output.last_hidden_state
    assert numpy.asarray(data.align.dataXd).max() < hidden.shape[0] * hidden.shape[1]
    assert numpy.isfinite(hidden).all()


def check_rows_hold_own_pieces(nlp, doc):
    """Every aligned row holds a wordpiece of the token's own characters."""
    data = doc._.trf_data
    tok = nlp.get_pipe("transformer").model.tokenizer
    pieces = tokenize_docs(tok, [doc])[0]
    flat_ids = data.wordpieces.input_ids.reshape(-1)
    rows = numpy.asarray(data.align.dataXd)
    lengths = numpy.asarray(data.align.lengths)
    starts = numpy.cumsum(lengths) - lengths
    for i in range(len(doc)):
        first, last = pieces.token_first_wp[i], pieces.token_last_wp[i]
        got = flat_ids[rows[starts[i] : starts[i] + lengths[i]]].tolist()
        assert got == pieces.ids[first : last + 1].tolist(), f"token {i}"


@pytest.fixture(scope="module")
def notes():
    return generate_notes(12, seed=3)


@pytest.mark.parametrize("arch", ARCHS)
def test_each_architecture_reads_a_note(trf_nlp, arch, tiny_models, notes):
    nlp = trf_nlp(tiny_models(arch))
    model = nlp.get_pipe("transformer").model
    budget = model.facts.max_length
    assert budget == {"longformer": 4096, "bigbird": 4096, "modernbert": 8192, "bert": 512}[arch]
    doc = nlp(notes[0]["text"])
    assert_all_aligned(doc)
    check_rows_hold_own_pieces(nlp, doc)
    hidden = doc._.trf_data.model_output.last_hidden_state
    assert hidden.shape[-1] == model.get_dim("nO")
    n_wp = len(tokenize_docs(model.tokenizer, [doc])[0].ids)
    special = len(model.facts.prefix_ids) + len(model.facts.suffix_ids)
    if n_wp + special <= budget:
        assert hidden.shape[0] == 1, "a note that fits must be one span"
    else:
        assert hidden.shape[0] > 1 and hidden.shape[1] <= budget


def _hf_reference(model_dir, text, global_positions=None, mask_fn=None):
    tok = AutoTokenizer.from_pretrained(model_dir)
    hf = AutoModel.from_pretrained(model_dir).eval()
    enc = tok(text, return_tensors="pt")
    kwargs = dict(enc)
    kwargs.pop("token_type_ids", None)
    if global_positions is not None:
        g = torch.zeros_like(enc["input_ids"])
        g[0, global_positions] = 1
        kwargs["global_attention_mask"] = g
    with torch.no_grad():
        return hf(**kwargs).last_hidden_state[0].numpy(), hf


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("n_words", [60, 700])
def test_parity_with_hugging_face(trf_nlp, arch, n_words, tiny_models, notes):
    """A note that fits gives what the HF model gives on the same wordpieces."""
    model_dir = tiny_models(arch)
    words = " ".join(n["text"] for n in notes).split(" ")
    text = " ".join(words[:n_words])
    nlp = trf_nlp(model_dir)
    doc = nlp(text)
    ours = doc._.trf_data.model_output.last_hidden_state
    if ours.shape[0] != 1:
        pytest.skip("note does not fit this model's budget")
    glob = [0] if arch == "longformer" else None
    ref, hf = _hf_reference(model_dir, text, glob)
    if arch == "bigbird" and ref.shape[0] > 9 * 16:
        assert hf.attention_type == "block_sparse"
    assert ours.shape[1] == ref.shape[0]
    assert numpy.abs(ours[0] - ref).max() <= 1e-4


def test_parity_with_section_header_global_attention(trf_nlp, tiny_models, notes):
    model_dir = tiny_models("longformer")
    text = notes[1]["text"]
    nlp = trf_nlp(
        model_dir,
        global_attention={"@misc": "spacy-clinlong.global_attention_section_headers.v1"},
    )
    doc = nlp(text)
    model = nlp.get_pipe("transformer").model
    pieces = tokenize_docs(model.tokenizer, [doc])[0]
    if doc._.trf_data.model_output.last_hidden_state.shape[0] != 1:
        pytest.skip("note does not fit")
    chooser = model.attrs["global_attention"]
    selection = chooser(doc[:])
    assert selection.cls and len(selection.tokens) >= 3, "headers should be found"
    header_tokens = {
        doc.char_span(s["start"], s["end"], alignment_mode="expand").start for s in notes[1]["sections"]
    }
    assert header_tokens <= set(selection.tokens), "every section header is global"
    for i in selection.tokens:
        line = doc.text[doc[i].idx :].split("\n", 1)[0]
        assert line.split(":")[0].isupper() or line.rstrip().endswith(":")
    positions = [0] + [1 + int(pieces.token_first_wp[i]) for i in selection.tokens]
    ref, _ = _hf_reference(model_dir, text, positions)
    ours = doc._.trf_data.model_output.last_hidden_state[0]
    assert numpy.abs(ours - ref).max() <= 1e-4
    cls_only, _ = _hf_reference(model_dir, text, [0])
    assert numpy.abs(ours - cls_only).max() > 1e-3, "header tokens must change the output"


def test_bigbird_chooses_attention_per_batch_without_warnings(trf_nlp, tiny_models, notes, caplog):
    nlp = trf_nlp(tiny_models("bigbird"))
    trf = nlp.get_pipe("transformer").model.transformer
    long_text = " ".join(n["text"] for n in notes[:2])
    with caplog.at_level(logging.INFO, logger="transformers"):
        nlp("Short note.")
        assert trf.attention_type == "original_full"
        nlp(long_text)
        assert trf.attention_type == "block_sparse"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_thirty_thousand_token_note_is_read_whole(trf_nlp, tiny_models, notes):
    nlp = trf_nlp(tiny_models("longformer"), max_length=1024)
    nlp.max_length = 10**7
    parts, n = [], 0
    i = 0
    while n < 30000:
        parts.append(notes[i % len(notes)]["text"])
        n += len(nlp.make_doc(parts[-1]))
        i += 1
    doc = nlp("\n\n".join(parts))
    assert len(doc) >= 30000
    assert_all_aligned(doc)
    check_rows_hold_own_pieces(nlp, doc)
    data = doc._.trf_data
    assert data.model_output.last_hidden_state.shape[0] > 20
    assert max(data.wordpieces.lengths) <= 1024


BAD_INPUTS = [
    "",
    "   \n\t  ",
    "x" * 50000,
    "Pt\x00 denies\x07 pain\x1b[0m; BP 120/80\x0c",
    "Line one.\r\nLine two.\r\n\r\nALLERGIES:\r\nnone",
    "Patient 😀🩺 reports pain. 患者主诉胸痛。 المريض يشكو من ألم. Пациент жалуется.",
    "\u200b\u200d\ufeff",
]


@pytest.mark.parametrize("arch", ARCHS)
def test_bad_input_in_one_batch(trf_nlp, arch, tiny_models):
    # A 1,024 budget also cuts the 50,000-character token into windows.
    nlp = trf_nlp(tiny_models(arch), max_length=None if arch == "bert" else 1024)
    docs = list(nlp.pipe(BAD_INPUTS, batch_size=len(BAD_INPUTS)))
    assert len(docs) == len(BAD_INPUTS)
    for doc, text in zip(docs, BAD_INPUTS):
        assert doc.text == text
        assert_all_aligned(doc)


def test_missing_model_gives_one_clear_message(trf_nlp, tmp_path):
    for name in [str(tmp_path / "nope"), "./no/such/dir"]:
        with pytest.raises(ModelLoadError, match="does not exist") as info:
            trf_nlp(name)
        err = info.value
        assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no config.json"):
        trf_nlp(tmp_path / "empty")
    with pytest.raises(ModelLoadError, match="hub id") as info:
        trf_nlp("no-such-org/no-such-model-xyz")
    assert info.value.__suppress_context__, "no chained traceback from transformers"
    assert len(str(info.value).splitlines()) == 1


def test_max_length_beyond_the_model_is_refused(trf_nlp, tiny_models):
    with pytest.raises(ValueError, match="exceeds"):
        trf_nlp(tiny_models("bert"), max_length=4096)


def test_overlap_too_large_for_the_budget_fails_at_initialize(trf_nlp, tiny_models):
    with pytest.raises(ValueError, match="overlap"):
        trf_nlp(tiny_models("bert"), max_length=200)


def test_round_trip_offline(trf_nlp, tiny_models, notes, tmp_path):
    src = tmp_path / "model"
    shutil.copytree(tiny_models("longformer"), src)
    nlp = trf_nlp(src, max_length=512)
    text = notes[2]["text"]
    before = nlp(text)._.trf_data
    nlp.to_disk(tmp_path / "pipeline")
    shutil.rmtree(src)  # the weights and tokenizer must travel inside the pipeline
    loaded = spacy.load(tmp_path / "pipeline")
    after = loaded(text)._.trf_data
    model = loaded.get_pipe("transformer").model
    assert model.facts.max_length == 512
    assert numpy.array_equal(before.align.dataXd, after.align.dataXd)
    diff = numpy.abs(before.model_output.last_hidden_state - after.model_output.last_hidden_state).max()
    assert diff == 0.0
    files = list((tmp_path / "pipeline" / "transformer").iterdir())
    assert {f.name for f in files} >= {"model", "cfg"}


def test_mixed_precision_is_fp32_on_cpu(trf_nlp, tiny_models, notes):
    plain = trf_nlp(tiny_models("longformer"))
    mixed = trf_nlp(tiny_models("longformer"), mixed_precision=True)
    a = plain(notes[0]["text"])._.trf_data.model_output.last_hidden_state
    b = mixed(notes[0]["text"])._.trf_data.model_output.last_hidden_state
    assert b.dtype == numpy.float32 and numpy.array_equal(a, b)


def test_prediction_runs_in_inference_mode(trf_nlp, tiny_models):
    from spacy_clinlong.models.encoder import WindowInput, run_batch

    nlp = trf_nlp(tiny_models("bert"))
    model = nlp.get_pipe("transformer").model
    ids = model.facts.prefix_ids + [model.tokenizer.convert_tokens_to_ids("a")] + model.facts.suffix_ids
    window = WindowInput(ids=numpy.asarray(ids), global_positions=[])
    out = run_batch(model.transformer, [window], model.facts, is_train=False, mixed_precision=False)
    assert out.is_inference()
    out = run_batch(model.transformer, [window], model.facts, is_train=True, mixed_precision=False)
    assert out.requires_grad


def test_fast_and_stock_attention_agree_and_the_choice_is_saved(trf_nlp, tiny_models, notes, tmp_path):
    from spacy_clinlong.models.attention import has_fast_attention

    fast = trf_nlp(tiny_models("longformer"))
    stock = trf_nlp(tiny_models("longformer"), attention="hf")
    assert has_fast_attention(fast.get_pipe("transformer").model.transformer)
    assert not has_fast_attention(stock.get_pipe("transformer").model.transformer)
    texts = [n["text"] for n in notes[:4]]
    for a, b in zip(fast.pipe(texts), stock.pipe(texts)):
        x = a._.trf_data.model_output.last_hidden_state
        y = b._.trf_data.model_output.last_hidden_state
        assert x.shape == y.shape
        assert numpy.abs(x - y).max() <= 1e-4
    for nlp, want in ((fast, True), (stock, False)):
        path = tmp_path / str(want)
        nlp.to_disk(path)
        loaded = spacy.load(path)
        assert has_fast_attention(loaded.get_pipe("transformer").model.transformer) is want


def test_unknown_attention_is_refused(trf_nlp, tiny_models):
    with pytest.raises(ValueError, match="attention must be one of"):
        trf_nlp(tiny_models("longformer"), attention="flash")


@pytest.mark.slow
def test_torch_compile_keeps_the_outputs(trf_nlp, tiny_models, notes):
    from spacy_clinlong.models.attention import encoder_layers

    plain = trf_nlp(tiny_models("longformer"))
    compiled = trf_nlp(tiny_models("longformer"), torch_compile=True)
    layers = encoder_layers(compiled.get_pipe("transformer").model.transformer)
    assert layers and all(layer._compiled_call_impl is not None for layer in layers)
    text = notes[0]["text"]
    a = plain(text)._.trf_data.model_output.last_hidden_state
    b = compiled(text)._.trf_data.model_output.last_hidden_state
    assert a.shape == b.shape and numpy.abs(a - b).max() <= 1e-4
