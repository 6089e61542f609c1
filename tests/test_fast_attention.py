"""The fast attention paths give Hugging Face's outputs (1e-4, fp32), or give way to them."""

import copy

import pytest
import torch
from transformers import LongformerConfig, LongformerForMaskedLM, LongformerModel
from transformers.models.longformer.modeling_longformer import LongformerSelfAttention

from spacy_clinlong.models.attention import (
    FastLongformerSelfAttention,
    banded_attention,
    has_fast_attention,
    use_fast_attention,
)

TOL = 1e-4


def _config(hidden=64, heads=4, window=64, layers=2, positions=4098):
    return LongformerConfig(
        hidden_size=hidden,
        num_attention_heads=heads,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        attention_window=[window] * layers,
        max_position_embeddings=positions,
        vocab_size=300,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )


def _pair(config, block=None):
    torch.manual_seed(0)
    stock = LongformerModel(config).eval()
    fast = copy.deepcopy(stock)
    assert use_fast_attention(fast, True, block=block)
    return stock, fast


def _inputs(lengths, n_global, seed=0):
    gen = torch.Generator().manual_seed(seed)
    longest = max(lengths)
    ids = torch.full((len(lengths), longest), 1, dtype=torch.long)
    mask = torch.zeros((len(lengths), longest), dtype=torch.long)
    glob = torch.zeros((len(lengths), longest), dtype=torch.long)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(3, 300, (n,), generator=gen)
        ids[row, 0], ids[row, n - 1] = 0, 2
        mask[row, :n] = 1
        if n_global:
            glob[row, 0] = 1
            # A different count per row: padded global slots are exercised.
            extra = max(0, n_global - 1 - row)
            glob[row, torch.randint(1, n, (extra,), generator=gen)] = 1
    return ids, mask, glob


def _assert_same(stock, fast, lengths, n_global):
    ids, mask, glob = _inputs(lengths, n_global)
    with torch.inference_mode():
        want = stock(input_ids=ids, attention_mask=mask, global_attention_mask=glob).last_hidden_state
        got = fast(input_ids=ids, attention_mask=mask, global_attention_mask=glob).last_hidden_state
    assert got.shape == want.shape
    for row, n in enumerate(lengths):
        diff = (got[row, :n] - want[row, :n]).abs().max().item()
        assert diff < TOL, (lengths, n_global, row, diff)
    assert torch.isfinite(got).all()


@pytest.mark.parametrize(
    "lengths,n_global",
    [
        ([100], 0),
        ([100], 1),
        ([700, 300], 1),
        ([1000, 37], 3),
        ([513, 1025, 64], 5),
        ([4096], 0),
        ([4096], 1),
        ([4096, 2900], 2),
    ],
)
def test_fast_attention_equals_hugging_face(lengths, n_global):
    stock, fast = _pair(_config())
    _assert_same(stock, fast, lengths, n_global)


@pytest.mark.parametrize("block", [8, 16, 32, 48, 64])
def test_fast_attention_any_block_size(block):
    # Blocks smaller, equal to and larger than the one-sided window (32); the
    # global rows through the full projections (40 x 4 heads > width 64) too.
    stock, fast = _pair(_config(window=64), block=block)
    _assert_same(stock, fast, [650, 129], 1)
    _assert_same(stock, fast, [300, 290], 40)


def test_fast_attention_base_width_4096():
    # The real geometry (768 wide, 12 heads, window 512) on one layer.
    stock, fast = _pair(_config(hidden=768, heads=12, window=512, layers=1))
    _assert_same(stock, fast, [4096], 1)
    _assert_same(stock, fast, [4096, 1500], 3)


@pytest.mark.parametrize("views", [True, False])
def test_banded_attention_is_the_band(views):
    # Direct check against a dense masked softmax: |i - j| <= w plus globals;
    # at inference on CPU through strided views and a log-sum-exp merge, with
    # gradients through gathered blocks.
    torch.manual_seed(1)
    batch, length, heads, dim, w = 2, 90, 3, 8, 10
    q, k, v = (torch.randn(batch, length, heads, dim) for _ in range(3))
    local = torch.ones(batch, length, dtype=torch.bool)
    local[1, 70:] = False  # padding
    local[:, 0] = False  # a global token
    slots = (torch.zeros(batch, 1, dtype=torch.long), torch.ones(batch, 1, dtype=torch.bool))
    with torch.inference_mode(views):
        got = banded_attention(q, k, v, local, w, block=7, slots=slots)
    i = torch.arange(length)
    allowed = ((i[:, None] - i[None, :]).abs() <= w)[None] & local[:, None, :]
    allowed[:, :, 0] = True
    scores = torch.einsum("bihd,bjhd->bhij", q, k) / dim**0.5
    scores = scores.masked_fill(~allowed[:, None], float("-inf"))
    want = torch.einsum("bhij,bjhd->bihd", scores.softmax(-1), v)
    assert (got[0] - want[0]).abs().max() < 1e-5
    assert (got[1, :70] - want[1, :70]).abs().max() < 1e-5


def test_fast_attention_keeps_weights_and_switches_back():
    config = _config()
    stock, fast = _pair(config)
    assert has_fast_attention(fast) and not has_fast_attention(stock)
    assert all(
        type(m) is FastLongformerSelfAttention
        for m in fast.modules()
        if isinstance(m, LongformerSelfAttention)
    )
    before = {k: v.clone() for k, v in fast.state_dict().items()}
    assert before.keys() == stock.state_dict().keys()
    use_fast_attention(fast, False)
    assert not has_fast_attention(fast)
    assert "_pad_to_window_size" not in fast.__dict__
    assert all(torch.equal(before[k], v) for k, v in fast.state_dict().items())
    _assert_same(stock, fast, [300], 1)


def test_fast_attention_under_a_head_and_in_training():
    # A model with a head (MLM): the attention under it switches too, and a
    # training step's gradients match Hugging Face's (dropout off).
    config = _config()
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    torch.manual_seed(0)
    stock = LongformerForMaskedLM(config).train()
    fast = copy.deepcopy(stock)
    assert use_fast_attention(fast)
    ids, mask, glob = _inputs([200, 150], 2)
    grads = []
    for model in (stock, fast):
        model.zero_grad()
        out = model(input_ids=ids, attention_mask=mask, global_attention_mask=glob, labels=ids)
        out.loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        assert (grads[0][name] - grads[1][name]).abs().max() < 1e-4, name


def test_output_attentions_takes_the_stock_path():
    stock, fast = _pair(_config())
    ids, mask, glob = _inputs([200], 1)
    with torch.inference_mode():
        want = stock(input_ids=ids, attention_mask=mask, global_attention_mask=glob, output_attentions=True)
        got = fast(input_ids=ids, attention_mask=mask, global_attention_mask=glob, output_attentions=True)
    assert got.attentions is not None and len(got.attentions) == len(want.attentions)
    assert (got.last_hidden_state - want.last_hidden_state).abs().max() < TOL


def _bigbird_pair(attention_type="block_sparse", random_blocks=3, hidden=64, heads=4, block=16, layers=2):
    from transformers import BigBirdConfig, BigBirdModel

    config = BigBirdConfig(
        hidden_size=hidden,
        num_attention_heads=heads,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        block_size=block,
        num_random_blocks=random_blocks,
        max_position_embeddings=4096,
        vocab_size=300,
        attention_type=attention_type,
    )
    torch.manual_seed(0)
    stock = BigBirdModel(config).eval()
    fast = copy.deepcopy(stock)
    assert use_fast_attention(fast)
    return stock, fast


def _assert_same_from_mask(stock, fast, lengths):
    """Same hidden states on unpadded positions, from input_ids and attention_mask."""
    gen = torch.Generator().manual_seed(len(lengths))
    ids = torch.zeros((len(lengths), max(lengths)), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(5, 300, (n,), generator=gen)
        mask[row, :n] = 1
    with torch.inference_mode():
        want = stock(input_ids=ids, attention_mask=mask).last_hidden_state
        got = fast(input_ids=ids, attention_mask=mask).last_hidden_state
    assert getattr(stock, "attention_type", None) == getattr(fast, "attention_type", None)
    for row, n in enumerate(lengths):
        diff = (got[row, :n] - want[row, :n]).abs().max().item()
        assert diff < TOL, (lengths, row, diff)


@pytest.mark.parametrize("random_blocks", [3, 1])
@pytest.mark.parametrize("lengths", [[197], [1000, 700], [4096], [4096, 2900, 300]])
def test_fast_bigbird_block_sparse_equals_hugging_face(random_blocks, lengths):
    stock, fast = _bigbird_pair(random_blocks=random_blocks)
    _assert_same_from_mask(stock, fast, lengths)
    assert fast.attention_type == "block_sparse"


def test_fast_bigbird_base_width():
    stock, fast = _bigbird_pair(hidden=768, heads=12, block=64, layers=1)
    _assert_same_from_mask(stock, fast, [4096, 1500])


@pytest.mark.parametrize("lengths", [[100], [500, 37]])
def test_fast_bigbird_full_attention_equals_hugging_face(lengths):
    stock, fast = _bigbird_pair(attention_type="original_full")
    _assert_same_from_mask(stock, fast, lengths)


def test_bigbird_pipeline_keeps_the_fast_path_across_attention_switches(trf_nlp, tiny_models):
    from spacy_clinlong.corpus.synth.generator import generate_notes

    nlp = trf_nlp(tiny_models("bigbird"))
    transformer = nlp.get_pipe("transformer").model.transformer
    assert has_fast_attention(transformer)
    short, long = "Chest pain.", "\n\n".join(n["text"] for n in generate_notes(2, seed=1))
    for text in (long, short, long):
        nlp(text)
        assert has_fast_attention(transformer)


def _modernbert_pair(hidden=64, heads=2, layers=4, local=16):
    from transformers import ModernBertConfig, ModernBertModel

    config = ModernBertConfig(
        hidden_size=hidden,
        num_attention_heads=heads,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        local_attention=local,
        global_attn_every_n_layers=3,
        max_position_embeddings=8192,
        vocab_size=300,
        pad_token_id=0,
        attn_implementation="sdpa",
    )
    torch.manual_seed(0)
    stock = ModernBertModel(config).eval()
    fast = copy.deepcopy(stock)
    assert use_fast_attention(fast)
    return stock, fast


@pytest.mark.parametrize("lengths", [[100], [1000, 700], [8192], [300, 37]])
def test_fast_modernbert_equals_hugging_face(lengths):
    stock, fast = _modernbert_pair()
    _assert_same_from_mask(stock, fast, lengths)
    # output_attentions takes Hugging Face's eager path (and its square masks).
    with torch.inference_mode():
        eager = fast(input_ids=torch.randint(5, 300, (1, 64)), output_attentions=True)
    assert eager.attentions is not None
    assert "_update_attention_mask" in fast.__dict__
    use_fast_attention(fast, False)
    assert "_update_attention_mask" not in fast.__dict__ and not has_fast_attention(fast)


def test_layers_of_one_model_share_a_cache_that_copies_start_empty():
    # The masks derived once per pass belong to the model: its layers share
    # one cache, another model has its own, and a copy starts empty.
    stock, fast = _pair(_config())
    _, other = _pair(_config())
    caches = {id(m.pass_cache) for m in fast.modules() if isinstance(m, FastLongformerSelfAttention)}
    assert len(caches) == 1
    first = next(m for m in fast.modules() if isinstance(m, FastLongformerSelfAttention))
    second = next(m for m in other.modules() if isinstance(m, FastLongformerSelfAttention))
    assert first.pass_cache is not second.pass_cache
    _assert_same(stock, fast, [300, 200], 2)
    assert first.pass_cache._entries
    copied = copy.deepcopy(fast)
    layer = next(m for m in copied.modules() if isinstance(m, FastLongformerSelfAttention))
    assert not layer.pass_cache._entries and layer.pass_cache is not first.pass_cache
    _assert_same(stock, copied, [300, 200], 2)
    use_fast_attention(fast, False)
    assert all("pass_cache" not in m.__dict__ for m in fast.modules())


@pytest.mark.parametrize(
    "version,supported",
    [
        ("4.47.1", False),
        ("4.48.0", True),
        ("4.53.2", True),
        ("4.53.3", False),
        ("5.0.0", False),
        ("dev", False),
    ],
)
def test_tested_transformers_range(version, supported):
    from spacy_clinlong.models.attention import transformers_supported

    assert transformers_supported(version) is supported


def test_tested_range_is_what_setup_cfg_pins():
    import configparser
    from pathlib import Path

    from spacy_clinlong.models.attention import TESTED_TRANSFORMERS

    setup = configparser.ConfigParser()
    setup.read(Path(__file__).parent.parent / "setup.cfg")
    pins = [r.strip() for r in setup["options"]["install_requires"].splitlines()]
    assert f"transformers{TESTED_TRANSFORMERS}" in pins


def test_untested_transformers_gets_hugging_face_attention_with_one_warning(monkeypatch):
    import warnings

    import transformers

    from spacy_clinlong.models.attention import switch

    stock, fast = _pair(_config())
    monkeypatch.setattr(transformers, "__version__", "4.99.0")
    monkeypatch.setattr(switch, "_warned", False)
    with pytest.warns(UserWarning, match=r"transformers 4\.99\.0 is outside the tested range") as caught:
        assert not use_fast_attention(fast)
    assert sum("tested range" in str(w.message) for w in caught) == 1
    # The model that had the fast path is back on Hugging Face's, outputs and all.
    assert not has_fast_attention(fast) and "_pad_to_window_size" not in fast.__dict__
    _assert_same(stock, fast, [300], 1)
    torch.manual_seed(0)
    fresh = LongformerModel(_config()).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning in the process
        assert not use_fast_attention(fresh)
        use_fast_attention(fresh, False)
    assert not has_fast_attention(fresh)
