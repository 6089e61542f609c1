"""Attention that computes only what Longformer, BigBird and ModernBERT need.

Hugging Face's LongformerSelfAttention multiplies overlapping chunks of 2w
keys (about twice the band of 2w + 1 keys each query needs), reshapes the
result diagonal by diagonal, projects the global key and value of every token
of the sequence in every layer (two extra full-width matrix products), finds the
global tokens with `nonzero()` in every layer (a host sync on GPU) and pads
every input to a multiple of the whole window (512).

`FastLongformerSelfAttention` keeps the module, its six projections and their
weights exactly as they are (a state dict loads into either), and computes:

- local attention block by block through `torch.nn.functional.
  scaled_dot_product_attention`: queries in blocks of w / 2 against the
  neighbouring key blocks, masked to the band |i - j| <= w, plus the global
  keys as extra columns;
- the rows of global tokens (full attention through the global projections)
  without projecting every token: for a global query q and a head h, the
  scores q . (W_k h_j + b_k) are (W_k^T q) . h_j + q . b_k, and the output
  sum_j p_j (W_v h_j + b_v) is W_v (sum_j p_j h_j) + b_v sum_j p_j, so the cost
  is a few matrix-vector products per global token instead of two
  sequence-wide projections;
- the global positions once per forward pass (cached across layers), and
  inputs padded to a multiple of 8 instead of the window.

BigBird (block-sparse at inference) and ModernBERT (local layers under SDPA)
get the same treatment: see `FastBigBirdBlockSparseAttention` and
`FastModernBertAttention`.

Outputs equal Hugging Face's within float rounding (tests/test_fast_attention.py
checks 1e-4 in fp32; the differences are about 1e-6). `output_attentions`,
head masks and the cases noted on each class take Hugging Face's own path.
"""
import functools
import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from transformers.activations import NewGELUActivation
from transformers.models.big_bird.modeling_big_bird import BigBirdBlockSparseAttention, BigBirdSelfAttention
from transformers.models.longformer.modeling_longformer import LongformerModel, LongformerSelfAttention
from transformers.models.modernbert.modeling_modernbert import (
    ModernBertAttention,
    ModernBertModel,
    apply_rotary_pos_emb,
)

ATTENTION_CHOICES = ("fast", "hf")
# The global rows go through the factored product while global tokens x heads
# stays under this fraction of the width (beyond it, projecting every token is
# cheaper).
_FACTORED_LIMIT = 1.0
PAD_MULTIPLE = 8

# (is_index_global_attn tensor, its slots): the encoder hands every layer the
# same mask tensor, so the slots are computed (with one host sync) once per
# forward pass. One tuple, replaced in one assignment, so concurrent threads
# at worst recompute.
_SLOTS_CACHE: Tuple[Optional[torch.Tensor], Optional[Tuple[torch.Tensor, torch.Tensor]]] = (None, None)


def global_slots(is_index_global_attn: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Positions of each row's global tokens, padded to the batch's most.

    is_index_global_attn (torch.Tensor): (batch, length) bool.
    RETURNS (Tuple[torch.Tensor, torch.Tensor]): positions (batch, G), long,
        ascending within a row; valid (batch, G), bool.
    """
    global _SLOTS_CACHE
    key, value = _SLOTS_CACHE
    if key is is_index_global_attn and value is not None:
        return value
    counts = is_index_global_attn.sum(dim=1)
    most = int(counts.max().item()) if counts.numel() else 0
    rank = (~is_index_global_attn).to(torch.int32)
    order = torch.sort(rank, dim=1, stable=True).indices[:, :most]
    valid = torch.arange(most, device=counts.device)[None, :] < counts[:, None]
    value = (order, valid)
    _SLOTS_CACHE = (is_index_global_attn, value)
    return value


_VISIBLE_CACHE: Tuple[Optional[torch.Tensor], Optional[torch.Tensor]] = (None, None)


def visible_keys(attention_mask: torch.Tensor, pick) -> torch.Tensor:
    """`pick(attention_mask)`, the keys a window may see, made once per forward
    pass: every layer gets the same mask tensor, so every layer gets the same
    result tensor back, and the band masks built from it are reused.

    attention_mask (torch.Tensor): The mask the model hands each layer.
    pick (Callable): Makes the (batch, length) bool tensor from it.
    RETURNS (torch.Tensor): (batch, length) bool.
    """
    global _VISIBLE_CACHE
    key, value = _VISIBLE_CACHE
    if key is attention_mask and value is not None:
        return value
    value = pick(attention_mask)
    _VISIBLE_CACHE = (attention_mask, value)
    return value


def _longformer_local(mask: torch.Tensor) -> torch.Tensor:
    return mask == 0


def _modernbert_visible(mask: torch.Tensor) -> torch.Tensor:
    return mask[:, 0, -1, :] == 0


def _geometry(length: int, window: int, block: int) -> Tuple[int, int, int, int, int]:
    """Blocks of a banded attention: block size, key blocks on each side,
    query blocks, padding to whole blocks, keys per neighbourhood."""
    block = int(block)
    sides = -(-window // block)
    n_blocks = -(-length // block)
    return block, sides, n_blocks, n_blocks * block - length, (2 * sides + 1) * block


def _allowed(key_is_local: torch.Tensor, window: int, block: int) -> torch.Tensor:
    """Which keys of its neighbourhood each query may see: inside the band and
    visible. RETURNS (torch.Tensor): (batch, n_blocks, block, span) bool."""
    block, sides, n_blocks, extra, span = _geometry(key_is_local.shape[1], window, block)
    visible = F.pad(key_is_local, (sides * block, sides * block + extra), value=False)
    visible = visible.unfold(1, span, block)  # (batch, n_blocks, span)
    return band_mask(block, sides, window, key_is_local.device)[None, None] & visible[:, :, None, :]


def band_mask(block: int, sides: int, window: int, device) -> torch.Tensor:
    """Which keys of a block's neighbourhood each query of the block may see.

    block (int): Queries per block.
    sides (int): Key blocks on each side of the query block.
    window (int): The one-sided window w: |i - j| <= w.
    RETURNS (torch.Tensor): (block, (2 * sides + 1) * block) bool.
    """
    q = torch.arange(block, device=device)[:, None]
    k = torch.arange((2 * sides + 1) * block, device=device)[None, :]
    return (k - sides * block - q).abs() <= window


def banded_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    key_is_local: torch.Tensor,
    window: int,
    *,
    block: Optional[int] = None,
    slots: Optional[Tuple[torch.Tensor, torch.Tensor]] = None,
    dropout: float = 0.0,
) -> torch.Tensor:
    """Sliding-window attention (|i - j| <= window) plus global key columns.

    On CPU at inference the neighbourhoods of the query blocks are strided
    views of the keys (nothing copied) and the global keys are merged through
    the log-sum-exp of the local part (`_banded_attention_views`); elsewhere
    each block's neighbourhood, global keys first, is gathered into one buffer
    for one SDPA call.
    query, key, value (torch.Tensor): (batch, length, heads, head_dim).
    key_is_local (torch.Tensor): (batch, length) bool: keys a query may see
        through the window (not padding, not global).
    window (int): The one-sided window w.
    block (Optional[int]): Queries per block; default w / 2 (w / 4 with
        views, where smaller blocks cost no copying).
    slots (Optional[Tuple]): Global positions and their validity
        (`global_slots`): every query also sees these keys.
    dropout (float): Attention dropout (training).
    RETURNS (torch.Tensor): (batch, length, heads, head_dim). A query with no
        visible key (padding far from any token) gets an arbitrary row, which
        callers drop or zero.
    """
    if _FLASH_CPU is not None and query.device.type == "cpu" and not torch.is_grad_enabled() and not dropout:
        return _banded_attention_views(query, key, value, key_is_local, window, block=block, slots=slots)
    batch, length, heads, dim = query.shape
    block, sides, n_blocks, extra, span = _geometry(length, window, block or max(1, window // 2))

    has_globals = slots is not None and slots[0].shape[1] > 0
    n_global = slots[0].shape[1] if has_globals else 0

    def blocks_of_keys(x: torch.Tensor) -> torch.Tensor:
        # (batch, length, heads, dim) -> (batch, n_blocks, heads, G + span, dim):
        # the global keys first, then the block's neighbourhood, written once
        # into one buffer.
        padded = F.pad(x, (0, 0, 0, 0, sides * block, sides * block + extra))
        windows = padded.unfold(1, span, block).permute(0, 1, 2, 4, 3)
        out = x.new_empty(batch, n_blocks, heads, n_global + span, dim)
        out[:, :, :, n_global:] = windows
        if has_globals:
            index = slots[0][:, :, None, None].expand(batch, n_global, heads, dim)
            chosen = x.gather(1, index).permute(0, 2, 1, 3)  # (batch, heads, G, dim)
            out[:, :, :, :n_global] = chosen[:, None]
        return out.view(batch * n_blocks, heads, n_global + span, dim)

    q = F.pad(query, (0, 0, 0, 0, 0, extra)).view(batch, n_blocks, block, heads, dim)
    q = q.permute(0, 1, 3, 2, 4).reshape(batch * n_blocks, heads, block, dim)
    k = blocks_of_keys(key)
    v = blocks_of_keys(value)
    mask = _allowed(key_is_local, window, block).expand(batch, n_blocks, block, span)
    if has_globals:
        seen = slots[1][:, None, None, :].expand(batch, n_blocks, block, n_global)
        mask = torch.cat([seen, mask], dim=-1)
    # A query that sees nothing (padding) would give NaN, and NaN times a zero
    # weight is still NaN in the next layer: let it see everything instead.
    mask = mask | ~mask.any(dim=-1, keepdim=True)
    mask = mask.reshape(batch * n_blocks, 1, block, mask.shape[-1])
    out = F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, dropout_p=dropout, scale=1.0 / math.sqrt(dim)
    )
    out = out.view(batch, n_blocks, heads, block, dim).permute(0, 1, 3, 2, 4)
    return out.reshape(batch, n_blocks * block, heads, dim)[:, :length]


# Flash attention on CPU, which also returns the log-sum-exp of each row (what
# merging the global keys needs); a private op of torch, so only where present.
_FLASH_CPU = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
# (key_is_local tensor, settings, masks): the band masks of a forward pass are
# the same in every layer.
_BAND_CACHE: Tuple[Optional[torch.Tensor], Optional[tuple], Optional[list]] = (None, None, None)


def _band_biases(key_is_local: torch.Tensor, window: int, block: int, dtype) -> list:
    """Per batch row, the additive mask (1, n_blocks, block, span) of the band
    and the visible keys; cached for the layers of one forward pass."""
    global _BAND_CACHE
    settings = (window, block, dtype)
    cached_key, cached_settings, cached = _BAND_CACHE
    if cached_key is key_is_local and cached_settings == settings:
        return cached
    allowed = _allowed(key_is_local, window, block)  # (batch, n_blocks, block, span)
    biases = []
    for row in range(key_is_local.shape[0]):
        bias = torch.zeros(allowed.shape[1:], dtype=dtype, device=key_is_local.device)
        biases.append(bias.masked_fill_(~allowed[row], float("-inf"))[None])
    _BAND_CACHE = (key_is_local, settings, biases)
    return biases


def _banded_attention_views(query, key, value, key_is_local, window, *, block=None, slots=None):
    """`banded_attention` without copying neighbourhoods (CPU, inference).

    Per batch row, the keys and values padded once are viewed as
    (heads, n_blocks, span, dim) with overlapping strides, and one flash
    attention call gives the band's output and log-sum-exp; the global keys'
    scores are merged in after.
    """
    batch, length, heads, dim = query.shape
    block, sides, n_blocks, extra, span = _geometry(length, window, block or max(1, window // 4))
    scale = 1.0 / math.sqrt(dim)
    # The same key_is_local tensor in every layer of a pass (visible_keys).
    biases = _band_biases(key_is_local, window, block, query.dtype)
    rows = []
    for row in range(batch):
        q = F.pad(query[row].transpose(0, 1), (0, 0, 0, extra)).view(heads, n_blocks, block, dim)
        k = F.pad(key[row].transpose(0, 1), (0, 0, sides * block, sides * block + extra))
        v = F.pad(value[row].transpose(0, 1), (0, 0, sides * block, sides * block + extra))
        stride = (k.stride(0), block * dim, dim, 1)
        k = k.as_strided((heads, n_blocks, span, dim), stride)
        v = v.as_strided((heads, n_blocks, span, dim), stride)
        out, lse = _FLASH_CPU(q, k, v, 0.0, False, attn_mask=biases[row], scale=scale)[:2]
        rows.append((out.reshape(heads, n_blocks * block, dim)[:, :length], lse.reshape(heads, -1)[:, :length]))
    out = torch.stack([r[0] for r in rows])  # (batch, heads, length, dim)
    lse = torch.stack([r[1] for r in rows])  # (batch, heads, length)
    if slots is not None and slots[0].shape[1]:
        positions, valid = slots
        n_global = positions.shape[1]
        index = positions[:, :, None, None].expand(batch, n_global, heads, dim)
        g_key = key.gather(1, index).transpose(1, 2)  # (batch, heads, G, dim)
        g_value = value.gather(1, index).transpose(1, 2)
        scores = torch.einsum("bhld,bhgd->bhlg", query.transpose(1, 2), g_key) * scale
        scores = scores.masked_fill(~valid[:, None, None, :], float("-inf"))
        out = _merge_extra_keys(out, lse, scores, g_value)
    return out.transpose(1, 2)


def _merge_extra_keys(out: torch.Tensor, lse: torch.Tensor, scores: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Attention over a band plus extra keys, from the band's own attention.

    out (torch.Tensor): (..., queries, dim): attention output over the band.
    lse (torch.Tensor): (..., queries): log-sum-exp of the band's scores.
    scores (torch.Tensor): (..., queries, extra): scaled scores (with any
        additive mask) of the extra keys.
    values (torch.Tensor): (..., extra, dim): their values.
    RETURNS (torch.Tensor): (..., queries, dim): the softmax over band and
        extra keys together. A query that sees nothing gets an arbitrary row.
    """
    top = torch.maximum(lse, scores.amax(dim=-1))
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    band_weight = torch.exp(lse - top)
    extra_weight = torch.exp(scores - top[..., None])
    # A band that saw nothing has a NaN output and zero weight.
    band_part = torch.where(band_weight[..., None] > 0, out * band_weight[..., None], torch.zeros_like(out))
    total = band_weight + extra_weight.sum(dim=-1)
    return (band_part + torch.matmul(extra_weight, values)) / total[..., None]


class FastLongformerSelfAttention(LongformerSelfAttention):
    """LongformerSelfAttention with the banded path (see the module docstring).

    Installed by `use_fast_attention` on a loaded model by changing the class
    of its attention modules; parameters and buffers stay as they are.
    """

    attention_block: Optional[int] = None

    def forward(
        self,
        hidden_states,
        attention_mask=None,
        layer_head_mask=None,
        is_index_masked=None,
        is_index_global_attn=None,
        is_global_attn=None,
        output_attentions=False,
    ):
        if output_attentions or layer_head_mask is not None:
            return self._stock_forward(
                hidden_states,
                attention_mask,
                layer_head_mask,
                is_index_masked,
                is_index_global_attn,
                is_global_attn,
                output_attentions,
            )
        batch, length, width = hidden_states.shape
        heads, dim = self.num_heads, self.head_dim
        query = self.query(hidden_states).view(batch, length, heads, dim)
        key = self.key(hidden_states).view(batch, length, heads, dim)
        value = self.value(hidden_states).view(batch, length, heads, dim)
        slots = global_slots(is_index_global_attn) if is_global_attn else None
        dropout = self.dropout if self.training else 0.0
        out = banded_attention(
            query,
            key,
            value,
            visible_keys(attention_mask, _longformer_local),
            self.one_sided_attn_window_size,
            block=self.attention_block,
            slots=slots,
            dropout=dropout,
        )
        # Hugging Face zeroes the rows of padding.
        out = out.masked_fill(is_index_masked[:, :, None, None], 0.0).reshape(batch, length, width)
        if slots is not None and slots[0].shape[1]:
            out = self._with_global_rows(hidden_states, out, slots, is_index_masked, dropout)
        return (out,)

    def _stock_forward(
        self,
        hidden_states,
        attention_mask,
        layer_head_mask,
        is_index_masked,
        is_index_global_attn,
        is_global_attn,
        output_attentions,
    ):
        # Hugging Face's path needs a multiple of the whole window: pad with
        # masked positions, and cut its outputs back.
        length = hidden_states.shape[1]
        window = 2 * self.one_sided_attn_window_size
        extra = (window - length % window) % window
        if extra:
            hidden_states = F.pad(hidden_states, (0, 0, 0, extra))
            masked = torch.finfo(attention_mask.dtype).min
            attention_mask = F.pad(attention_mask, (0, extra), value=masked)
            is_index_masked = F.pad(is_index_masked, (0, extra), value=True)
            is_index_global_attn = F.pad(is_index_global_attn, (0, extra), value=False)
        outputs = super().forward(
            hidden_states,
            attention_mask=attention_mask,
            layer_head_mask=layer_head_mask,
            is_index_masked=is_index_masked,
            is_index_global_attn=is_index_global_attn,
            is_global_attn=is_global_attn,
            output_attentions=output_attentions,
        )
        if not extra:
            return outputs
        cut = [outputs[0][:, :length]]
        if len(outputs) > 1:
            cut.append(outputs[1][:, :length])  # (batch, length, heads, keys)
        if len(outputs) > 2:
            cut.append(outputs[2][..., :length])  # (batch, heads, globals, length)
        return tuple(cut)

    def _with_global_rows(self, hidden, out, slots, is_index_masked, dropout):
        positions, valid = slots
        batch, length, width = hidden.shape
        heads, dim = self.num_heads, self.head_dim
        n_global = positions.shape[1]
        chosen = hidden.gather(1, positions[:, :, None].expand(batch, n_global, width))
        query = self.query_global(chosen).view(batch, n_global, heads, dim) / math.sqrt(dim)
        factored = n_global * heads <= _FACTORED_LIMIT * width
        if factored:
            w_key = self.key_global.weight.view(heads, dim, width)
            through = torch.einsum("bghd,hde->bghe", query, w_key.to(query.dtype))
            scores = torch.einsum("bghe,ble->bghl", through, hidden.to(through.dtype))
            bias = self.key_global.bias.view(heads, dim).to(query.dtype)
            scores = scores + (query * bias).sum(-1)[..., None]
        else:
            keys = self.key_global(hidden).view(batch, length, heads, dim)
            scores = torch.einsum("bghd,blhd->bghl", query, keys)
        scores = scores.masked_fill(is_index_masked[:, None, None, :], torch.finfo(scores.dtype).min)
        probs = F.softmax(scores, dim=-1, dtype=torch.float32).type_as(scores)
        probs = F.dropout(probs, p=dropout, training=dropout > 0)
        if factored:
            mixed = torch.einsum("bghl,ble->bghe", probs, hidden.to(probs.dtype))
            w_value = self.value_global.weight.view(heads, dim, width).to(mixed.dtype)
            rows = torch.einsum("bghe,hde->bghd", mixed, w_value)
            rows = rows + probs.sum(-1)[..., None] * self.value_global.bias.view(heads, dim).to(rows.dtype)
        else:
            values = self.value_global(hidden).view(batch, length, heads, dim)
            rows = torch.einsum("bghl,blhd->bghd", probs, values)
        rows = rows.reshape(batch, n_global, width).to(out.dtype)
        # Padding slots write to a spare row past the end, dropped after.
        target = torch.where(valid, positions, torch.full_like(positions, length))
        out = torch.cat([out, out.new_zeros(batch, 1, width)], dim=1)
        out = out.scatter(1, target[:, :, None].expand(batch, n_global, width), rows)
        return out[:, :length]


# Hugging Face's additive penalty for padded keys in BigBird.
_BIGBIRD_PENALTY = -10000.0


class FastBigBirdBlockSparseAttention(BigBirdBlockSparseAttention):
    """BigBird's block-sparse attention at inference, one SDPA call per part.

    In eval mode Hugging Face draws no random blocks: every "random" block is
    block 0, so the middle query blocks see block 0 (1 + r) times over, next
    to their three sliding blocks and the last block, and the first and last
    query blocks see everything. That is computed here exactly: each middle
    query block gathers its five key blocks (duplicates masked) and block 0's
    scores get log(1 + r), which is what r extra copies do to a softmax. The
    r copies of block 0 are never materialized or multiplied. Training and
    `output_attentions` (random blocks, attention maps) take Hugging Face's
    path.
    """

    def forward(
        self,
        hidden_states,
        band_mask=None,
        from_mask=None,
        to_mask=None,
        from_blocked_mask=None,
        to_blocked_mask=None,
        output_attentions=None,
    ):
        batch, length, _ = hidden_states.shape
        block = self.block_size
        if output_attentions or self.training or length % block or length // block < 5:
            return super().forward(
                hidden_states, band_mask, from_mask, to_mask, from_blocked_mask, to_blocked_mask, output_attentions
            )
        heads, dim = self.num_attention_heads, self.attention_head_size
        n_blocks = length // block
        query = self.transpose_for_scores(self.query(hidden_states))  # (batch, heads, length, dim)
        key = self.transpose_for_scores(self.key(hidden_states))
        value = self.transpose_for_scores(self.value(hidden_states))
        scale = 1.0 / math.sqrt(dim)
        out = torch.empty_like(query)
        # The first and last query blocks: every key.
        key_bias = ((1.0 - to_mask) * _BIGBIRD_PENALTY).to(query.dtype)  # (batch, 1, 1, length)
        edges = torch.cat([query[:, :, :block], query[:, :, -block:]], dim=2)
        edges = F.scaled_dot_product_attention(edges, key, value, attn_mask=key_bias, scale=scale)
        out[:, :, :block] = edges[:, :, :block]
        out[:, :, -block:] = edges[:, :, block:]
        # Middle query blocks 1 .. n-2: block 0, the last block, i - 1, i, i + 1.
        if _FLASH_CPU is not None and query.device.type == "cpu" and not torch.is_grad_enabled():
            out[:, :, block:-block] = self._middle_views(query, key, value, to_mask, n_blocks)
            out = out * from_mask  # Hugging Face zeroes the rows of padding
            return (out.transpose(1, 2).reshape(batch, length, heads * dim),)
        middle = torch.arange(1, n_blocks - 1, device=query.device)
        slots = torch.stack(
            [torch.zeros_like(middle), torch.full_like(middle, n_blocks - 1), middle - 1, middle, middle + 1], dim=1
        )
        n_mid = n_blocks - 2

        def gather(x: torch.Tensor) -> torch.Tensor:
            blocks = x.view(batch, heads, n_blocks, block, dim)[:, :, slots]  # (b, h, m, 5, block, dim)
            return blocks.permute(0, 2, 1, 3, 4, 5).reshape(batch * n_mid, heads, 5 * block, dim)

        to_blocks = to_mask.view(batch, n_blocks, block).to(query.dtype)
        bias = (1.0 - to_blocks[:, slots]) * _BIGBIRD_PENALTY  # (batch, m, 5, block)
        extra = torch.zeros(n_mid, 5, dtype=query.dtype, device=query.device)
        extra[:, 0] = math.log(1 + self.num_random_blocks)
        # Block 1's "i - 1" is block 0 and block n-2's "i + 1" the last block:
        # already in the first two slots, so out.
        drop = torch.finfo(query.dtype).min / 2
        extra[0, 2] = drop
        extra[-1, 4] = drop
        bias = bias + extra[None, :, :, None]
        q = query.view(batch, heads, n_blocks, block, dim)[:, :, 1:-1]
        q = q.permute(0, 2, 1, 3, 4).reshape(batch * n_mid, heads, block, dim)
        mid = F.scaled_dot_product_attention(
            q, gather(key), gather(value), attn_mask=bias.reshape(batch * n_mid, 1, 1, 5 * block), scale=scale
        )
        out[:, :, block:-block] = mid.view(batch, n_mid, heads, block, dim).transpose(1, 2).reshape(
            batch, heads, n_mid * block, dim
        )
        out = out * from_mask  # Hugging Face zeroes the rows of padding
        return (out.transpose(1, 2).reshape(batch, length, heads * dim),)


    def _middle_views(self, query, key, value, to_mask, n_blocks):
        """The middle query blocks on CPU at inference, nothing gathered: the
        sliding blocks i - 1 .. i + 1 are strided views of the keys (one flash
        attention call with its log-sum-exp per batch row), and the first and
        last blocks (block 0 weighted 1 + r) are merged in after.
        RETURNS (torch.Tensor): (batch, heads, (n_blocks - 2) * block, dim).
        """
        batch, heads, length, dim = query.shape
        block = self.block_size
        n_mid = n_blocks - 2
        span = 3 * block
        scale = 1.0 / math.sqrt(dim)
        keys_ok = to_mask.reshape(batch, length) > 0
        outs = []
        for row in range(batch):
            q = query[row, :, block:-block].contiguous().view(heads, n_mid, block, dim)
            k = key[row].contiguous()
            v = value[row].contiguous()
            stride = (k.stride(0), block * dim, dim, 1)
            k_band = k.as_strided((heads, n_mid, span, dim), stride)
            v_band = v.as_strided((heads, n_mid, span, dim), stride)
            seen = keys_ok[row].unfold(0, span, block)[:n_mid]  # (n_mid, span)
            bias = torch.zeros(seen.shape, dtype=query.dtype, device=query.device)
            bias = bias.masked_fill(~seen, _BIGBIRD_PENALTY)
            # Block 1's window starts with block 0, block n-2's ends with the
            # last block: both are counted with the first and last blocks.
            bias[0, :block] = float("-inf")
            bias[-1, -block:] = float("-inf")
            band, lse = _FLASH_CPU(q, k_band, v_band, 0.0, False, attn_mask=bias[None, :, None, :], scale=scale)[:2]
            band = band.reshape(heads, n_mid * block, dim)
            lse = lse.reshape(heads, n_mid * block)
            g_key = torch.cat([k[:, :block], k[:, -block:]], dim=1)  # (heads, 2 block, dim)
            g_value = torch.cat([v[:, :block], v[:, -block:]], dim=1)
            g_bias = torch.zeros(2 * block, dtype=query.dtype, device=query.device)
            g_bias[:block] = math.log(1 + self.num_random_blocks)
            g_ok = torch.cat([keys_ok[row, :block], keys_ok[row, -block:]])
            g_bias = g_bias.masked_fill(~g_ok, _BIGBIRD_PENALTY)
            scores = torch.matmul(q.view(heads, n_mid * block, dim), g_key.transpose(1, 2)) * scale + g_bias
            outs.append(_merge_extra_keys(band, lse, scores, g_value))
        return torch.stack(outs)


class FastNewGELU(NewGELUActivation):
    """gelu_new (BigBird's activation) as torch's fused tanh GELU, one kernel
    instead of six elementwise passes; Hugging Face's `PytorchGELUTanh`."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return F.gelu(input, approximate="tanh")


class FastBigBirdSelfAttention(BigBirdSelfAttention):
    """BigBird's full attention (short spans) through SDPA: Hugging Face's
    eager path materializes the probabilities in the input dtype."""

    def forward(
        self,
        hidden_states,
        attention_mask=None,
        head_mask=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        past_key_value=None,
        output_attentions=False,
    ):
        if (
            output_attentions
            or head_mask is not None
            or encoder_hidden_states is not None
            or past_key_value is not None
            or self.is_decoder
        ):
            return super().forward(
                hidden_states,
                attention_mask,
                head_mask,
                encoder_hidden_states,
                encoder_attention_mask,
                past_key_value,
                output_attentions,
            )
        batch, length, _ = hidden_states.shape
        query = self.transpose_for_scores(self.query(hidden_states))
        key = self.transpose_for_scores(self.key(hidden_states))
        value = self.transpose_for_scores(self.value(hidden_states))
        if attention_mask is not None:
            attention_mask = attention_mask.to(query.dtype)
        out = F.scaled_dot_product_attention(
            query,
            key,
            value,
            attn_mask=attention_mask,
            dropout_p=self.dropout.p if self.training else 0.0,
            scale=1.0 / math.sqrt(self.attention_head_size),
        )
        return (out.transpose(1, 2).reshape(batch, length, self.all_head_size),)


class FastModernBertAttention(ModernBertAttention):
    """ModernBERT's local layers through the banded path.

    With SDPA (Hugging Face's choice without flash-attn, and so on every
    CPU) a local layer attends through a dense length x length mask: the full
    quadratic cost for a window of 128. Here the local layers compute only
    their band (`banded_attention`), and the global layers take a
    (batch, 1, 1, length) padding mask instead of a materialized square one.
    Other attention implementations and `output_attentions` take Hugging
    Face's path.
    """

    def forward(self, hidden_states, output_attentions=False, **kwargs):
        if output_attentions or self.config._attn_implementation != "sdpa":
            return super().forward(hidden_states, output_attentions=output_attentions, **kwargs)
        batch = hidden_states.shape[0]
        qkv = self.Wqkv(hidden_states).view(batch, -1, 3, self.num_heads, self.head_dim)
        cos, sin = self.rotary_emb(qkv, position_ids=kwargs.get("position_ids"))
        query, key, value = qkv.transpose(3, 1).unbind(dim=2)  # (batch, heads, length, dim)
        query, key = apply_rotary_pos_emb(query, key, cos, sin)
        mask = kwargs.get("attention_mask")
        dropout = self.attention_dropout if self.training else 0.0
        if self.local_attention == (-1, -1):
            out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=dropout)
            out = out.transpose(1, 2)
        else:
            length = query.shape[2]
            if mask is None:
                visible = torch.ones(batch, length, dtype=torch.bool, device=query.device)
            else:
                visible = visible_keys(mask, _modernbert_visible)
            window = self.local_attention[0]
            out = banded_attention(
                query.transpose(1, 2),
                key.transpose(1, 2),
                value.transpose(1, 2),
                visible,
                window,
                dropout=dropout,
            )
        out = out.reshape(batch, -1, self.all_head_size)
        return (self.out_drop(self.Wo(out)),)


def _modernbert_masks(model, attention_mask, output_attentions):
    """ModernBertModel._update_attention_mask without the square masks: the
    padding as (batch, 1, 1, length), no sliding-window mask (the banded
    local layers need none)."""
    if output_attentions or model.config._attn_implementation != "sdpa":
        return type(model)._update_attention_mask(model, attention_mask, output_attentions)
    visible = attention_mask[:, None, None, :].to(torch.bool)
    mask = torch.zeros(visible.shape, dtype=model.dtype, device=attention_mask.device)
    return mask.masked_fill(~visible, torch.finfo(model.dtype).min), None


_FAST = {
    LongformerSelfAttention: FastLongformerSelfAttention,
    BigBirdBlockSparseAttention: FastBigBirdBlockSparseAttention,
    BigBirdSelfAttention: FastBigBirdSelfAttention,
    ModernBertAttention: FastModernBertAttention,
    NewGELUActivation: FastNewGELU,
}
_STOCK = {fast: stock for stock, fast in _FAST.items()}


def _pad_to_multiple(model, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, pad_token_id):
    """LongformerModel._pad_to_window_size, padding to a multiple of 8 only:
    the banded attention pads its blocks itself."""
    shape = input_ids.shape if input_ids is not None else inputs_embeds.shape
    batch, length = shape[:2]
    padding = (PAD_MULTIPLE - length % PAD_MULTIPLE) % PAD_MULTIPLE
    if padding:
        if input_ids is not None:
            input_ids = F.pad(input_ids, (0, padding), value=pad_token_id)
        if position_ids is not None:
            position_ids = F.pad(position_ids, (0, padding), value=pad_token_id)
        if inputs_embeds is not None:
            pad_ids = inputs_embeds.new_full((batch, padding), model.config.pad_token_id, dtype=torch.long)
            inputs_embeds = torch.cat([inputs_embeds, model.embeddings(pad_ids)], dim=-2)
        attention_mask = F.pad(attention_mask, (0, padding), value=0)
        token_type_ids = F.pad(token_type_ids, (0, padding), value=0)
    return padding, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds


def use_fast_attention(transformer, enabled: bool = True, *, block: Optional[int] = None) -> bool:
    """Switch a loaded Hugging Face model between the fast and the stock path.

    Longformer, BigBird and ModernBERT attention modules change class (their
    weights stay); a Longformer model pads to a multiple of 8 instead of its
    window, and a ModernBERT model builds no square masks. Other models are
    left as they are.
    transformer (PreTrainedModel): The model (bare encoder or with a head).
    enabled (bool): True for the fast path, False for Hugging Face's own.
    block (Optional[int]): Longformer queries per attention block; None for
        w / 2 (with the neighbouring blocks, 2.5 w keys per query against the
        2 w + 1 of the band).
    RETURNS (bool): Whether the model has attention modules with a fast path
        (and so whether anything changed).
    """
    found = False
    for module in transformer.modules():
        stock = _STOCK.get(type(module), type(module))
        if stock in _FAST:
            found = True
            module.__class__ = _FAST[stock] if enabled else stock
            if stock is LongformerSelfAttention:
                if enabled:
                    module.attention_block = block
                elif "attention_block" in module.__dict__:
                    del module.attention_block
        elif isinstance(module, LongformerModel):
            if enabled:
                module._pad_to_window_size = functools.partial(_pad_to_multiple, module)
            elif "_pad_to_window_size" in module.__dict__:
                del module._pad_to_window_size
        elif isinstance(module, ModernBertModel):
            if enabled:
                module._update_attention_mask = functools.partial(_modernbert_masks, module)
            elif "_update_attention_mask" in module.__dict__:
                del module._update_attention_mask
    return found


def has_fast_attention(transformer) -> bool:
    """Whether `use_fast_attention` is on for this model."""
    first = next((m for m in transformer.modules() if type(m) in _FAST or type(m) in _STOCK), None)
    return type(first) in _STOCK


def encoder_layers(transformer) -> list:
    """The encoder layers of a loaded model (BERT-style `encoder.layer`, or
    ModernBERT's `layers`)."""
    base = transformer.base_model
    encoder = getattr(base, "encoder", None)
    if encoder is not None and hasattr(encoder, "layer"):
        return list(encoder.layer)
    return list(getattr(base, "layers", []))


def compile_layers(transformer) -> int:
    """`torch.compile` each encoder layer in place, with dynamic shapes (notes
    vary in length). The weights and module structure stay; save_pretrained
    and state dicts are unchanged.

    transformer (PreTrainedModel): The model.
    RETURNS (int): How many layers were compiled.
    """
    layers = encoder_layers(transformer)
    for layer in layers:
        layer.compile(dynamic=True)
    return len(layers)
