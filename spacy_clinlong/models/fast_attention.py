"""Longformer attention that computes only the band it needs.

Hugging Face's LongformerSelfAttention multiplies overlapping chunks of 2w
keys (about twice the band of 2w + 1 keys each query needs), reshapes the
result diagonal by diagonal, projects the global key and value of every token
of the sequence in every layer (two extra full-width matrix products), finds the
global tokens with `nonzero()` in every layer (a host sync on GPU) and pads
every input to a multiple of the whole window (512).

`FastLongformerSelfAttention` keeps the module, its six projections and their
weights exactly as they are (a state dict loads into either), and computes:

- local attention block by block through `torch.nn.functional.
  scaled_dot_product_attention`: queries in blocks of `w` against the three
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

Outputs equal Hugging Face's within float rounding (tests/test_fast_attention.py
checks 1e-4 in fp32, with and without global attention, 100 to 4,096
wordpieces). `output_attentions` and head masks take Hugging Face's own path.
"""
import functools
import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from transformers.models.longformer.modeling_longformer import LongformerModel, LongformerSelfAttention

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

    query, key, value (torch.Tensor): (batch, length, heads, head_dim).
    key_is_local (torch.Tensor): (batch, length) bool: keys a query may see
        through the window (not padding, not global).
    window (int): The one-sided window w.
    block (Optional[int]): Queries per block; default w.
    slots (Optional[Tuple]): Global positions and their validity
        (`global_slots`): every query also sees these keys.
    dropout (float): Attention dropout (training).
    RETURNS (torch.Tensor): (batch, length, heads, head_dim). A query with no
        visible key (padding far from any token) gets an arbitrary finite row.
    """
    batch, length, heads, dim = query.shape
    block = int(block or window)
    sides = -(-window // block)
    n_blocks = -(-length // block)
    extra = n_blocks * block - length
    span = (2 * sides + 1) * block

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
    visible = F.pad(key_is_local, (sides * block, sides * block + extra), value=False)
    visible = visible.unfold(1, span, block)  # (batch, n_blocks, span)
    mask = band_mask(block, sides, window, query.device)[None, None] & visible[:, :, None, :]
    mask = mask.expand(batch, n_blocks, block, span)
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
            attention_mask == 0,
            self.one_sided_attn_window_size,
            block=self.attention_block or max(1, self.one_sided_attn_window_size // 2),
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

    Longformer attention modules change class (their weights stay), and the
    Longformer model pads to a multiple of 8 instead of its window. Models
    without Longformer attention are left as they are.
    transformer (PreTrainedModel): The model (bare encoder or with a head).
    enabled (bool): True for the fast path, False for Hugging Face's own.
    block (Optional[int]): Queries per attention block; None for w / 2 (with
        the neighbouring blocks, 2.5 w keys per query against the 2 w + 1 of
        the band).
    RETURNS (bool): Whether the model has Longformer attention (and so
        whether anything changed).
    """
    found = False
    for module in transformer.modules():
        if isinstance(module, LongformerSelfAttention):
            found = True
            module.__class__ = FastLongformerSelfAttention if enabled else LongformerSelfAttention
            if enabled:
                module.attention_block = block
            elif "attention_block" in module.__dict__:
                del module.attention_block
        elif isinstance(module, LongformerModel):
            if enabled:
                module._pad_to_window_size = functools.partial(_pad_to_multiple, module)
            elif "_pad_to_window_size" in module.__dict__:
                del module._pad_to_window_size
    return found


def has_fast_attention(transformer) -> bool:
    """Whether `use_fast_attention` is on for this model."""
    first = next((m for m in transformer.modules() if isinstance(m, LongformerSelfAttention)), None)
    return isinstance(first, FastLongformerSelfAttention)
