"""Longformer's self-attention through the banded path, and its padding to 8."""

import functools
import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from transformers.models.longformer.modeling_longformer import (
    LongformerModel,
    LongformerSelfAttention,
)

from .band import PAD_MULTIPLE, PassCache, banded_attention, per_pass

# The global rows go through the factored product while global tokens x heads
# stays under this fraction of the width (beyond it, projecting every token is
# cheaper).
_FACTORED_LIMIT = 1.0


def global_slots(
    is_index_global_attn: torch.Tensor, cache: Optional[PassCache] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Positions of each row's global tokens, padded to the batch's most.

    is_index_global_attn (torch.Tensor): (batch, length) bool.
    cache (Optional[PassCache]): The model's per-pass cache: the encoder hands
        every layer the same tensor, so the slots (and their host sync) are
        computed once per forward pass.
    RETURNS (Tuple[torch.Tensor, torch.Tensor]): positions (batch, G), long,
        ascending within a row; valid (batch, G), bool.
    """
    return per_pass(cache, "global_slots", is_index_global_attn, lambda: _slots(is_index_global_attn))


def _slots(is_index_global_attn: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    counts = is_index_global_attn.sum(dim=1)
    most = int(counts.max().item()) if counts.numel() else 0
    rank = (~is_index_global_attn).to(torch.int32)
    order = torch.sort(rank, dim=1, stable=True).indices[:, :most]
    valid = torch.arange(most, device=counts.device)[None, :] < counts[:, None]
    return order, valid


class FastLongformerSelfAttention(LongformerSelfAttention):
    """LongformerSelfAttention computing only what the band and the globals need.

    Hugging Face's LongformerSelfAttention multiplies overlapping chunks of 2w
    keys (about twice the band of 2w + 1 keys each query needs), reshapes the
    result diagonal by diagonal, projects the global key and value of every
    token of the sequence in every layer (two extra full-width matrix
    products), finds the global tokens with `nonzero()` in every layer (a host
    sync on GPU) and pads every input to a multiple of the whole window (512).

    This class keeps the module, its six projections and their weights exactly
    as they are (a state dict loads into either), and computes:

    - local attention block by block (`band.banded_attention`): queries in
      blocks of w / 2 against the neighbouring key blocks, masked to the band
      |i - j| <= w, plus the global keys as extra columns;
    - the rows of global tokens (full attention through the global
      projections) without projecting every token: for a global query q and a
      head h, the scores q . (W_k h_j + b_k) are (W_k^T q) . h_j + q . b_k,
      and the output sum_j p_j (W_v h_j + b_v) is W_v (sum_j p_j h_j) +
      b_v sum_j p_j, so the cost is a few matrix-vector products per global
      token instead of two sequence-wide projections;
    - the global positions once per forward pass (`pass_cache`, shared by the
      layers of one model), and inputs padded to a multiple of 8 instead of
      the window (`switch_module`).

    Installed by `use_fast_attention` on a loaded model by changing the class
    of its attention modules; parameters and buffers stay as they are.
    `output_attentions` and head masks take Hugging Face's path.
    """

    attention_block: Optional[int] = None
    pass_cache: Optional[PassCache] = None

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
        cache = self.pass_cache
        slots = global_slots(is_index_global_attn, cache) if is_global_attn else None
        dropout = self.dropout if self.training else 0.0
        # Every layer gets the same mask tensor, so the same visible keys (and
        # the band masks built from them) come back from the cache.
        local = per_pass(cache, "visible_keys", attention_mask, lambda: attention_mask == 0)
        out = banded_attention(
            query,
            key,
            value,
            local,
            self.one_sided_attn_window_size,
            block=self.attention_block,
            slots=slots,
            dropout=dropout,
            cache=cache,
        )
        out = out.reshape(batch, length, width)
        # Hugging Face zeroes the rows of padding. At inference `out` is this
        # layer's own tensor, changed in place, and only where a row is padding.
        if torch.is_grad_enabled():
            out = out.masked_fill(is_index_masked[:, :, None], 0.0)
        elif per_pass(cache, "any_index_masked", is_index_masked, lambda: bool(is_index_masked.any())):
            out.masked_fill_(is_index_masked[:, :, None], 0.0)
        if slots is not None and slots[0].shape[1]:
            out = self._with_global_rows(hidden_states, out, slots, is_index_masked, dropout, cache)
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
        # Hugging Face's path needs a multiple of the whole window (the model
        # pads to 8 only once `_pad_to_window_size` is replaced): pad with
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

    def _with_global_rows(self, hidden, out, slots, is_index_masked, dropout, cache=None):
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
        if not torch.is_grad_enabled() and per_pass(
            cache, "every_global_slot_used", valid, lambda: bool(valid.all())
        ):
            # `out` is this layer's own new tensor: written in place, no copy.
            return out.scatter_(1, positions[:, :, None].expand(batch, n_global, width), rows)
        # Padding slots write to a spare row past the end, dropped after.
        target = torch.where(valid, positions, torch.full_like(positions, length))
        out = torch.cat([out, out.new_zeros(batch, 1, width)], dim=1)
        out = out.scatter(1, target[:, :, None].expand(batch, n_global, width), rows)
        return out[:, :length]


def _pad_to_multiple(
    model, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, pad_token_id
):
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


# Stock class -> fast class, swapped in place by `use_fast_attention`.
SWAPS = {LongformerSelfAttention: FastLongformerSelfAttention}


def switch_module(
    module: torch.nn.Module, enabled: bool, *, cache: PassCache, block: Optional[int] = None
) -> None:
    """Set (or clear) what the fast path keeps on one module of a Longformer,
    once its class is swapped.

    module (torch.nn.Module): Any module of the model.
    enabled (bool): True for the fast path, False for Hugging Face's own.
    cache (PassCache): The cache the model's attention modules share.
    block (Optional[int]): Queries per attention block; None for w / 2.
    """
    if isinstance(module, LongformerSelfAttention):
        if enabled:
            module.attention_block = block
            module.pass_cache = cache
        else:
            module.__dict__.pop("attention_block", None)
            module.__dict__.pop("pass_cache", None)
    elif isinstance(module, LongformerModel):
        # Replaces transformers' private LongformerModel._pad_to_window_size
        # (an instance attribute shadows the method, and deleting it restores
        # the stock one): Hugging Face pads every input to a multiple of the
        # whole window (512), which the banded path does not need.
        if enabled:
            module._pad_to_window_size = functools.partial(_pad_to_multiple, module)
        else:
            module.__dict__.pop("_pad_to_window_size", None)
