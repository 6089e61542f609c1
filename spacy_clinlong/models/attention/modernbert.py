"""ModernBERT's local attention layers through the banded path, without square masks."""

import functools
from typing import Optional

import torch
import torch.nn.functional as F
from transformers.models.modernbert.modeling_modernbert import (
    ModernBertAttention,
    ModernBertModel,
    apply_rotary_pos_emb,
)

from .band import PassCache, banded_attention, per_pass


class FastModernBertAttention(ModernBertAttention):
    """ModernBERT's local layers through the banded path.

    With SDPA (Hugging Face's choice without flash-attn, and so on every
    CPU) a local layer attends through a dense length x length mask: the full
    quadratic cost for a window of 128. Here the local layers compute only
    their band (`band.banded_attention`), and the global layers take a
    (batch, 1, 1, length) padding mask instead of a materialized square one.
    Other attention implementations and `output_attentions` take Hugging
    Face's path.
    """

    pass_cache: Optional[PassCache] = None

    def forward(self, hidden_states, output_attentions=False, **kwargs):
        # transformers' private `config._attn_implementation`: the masks this
        # path reads are the ones `_modernbert_masks` builds for SDPA only;
        # eager and flash-attn keep Hugging Face's path and masks.
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
            cache = self.pass_cache
            if mask is None:
                visible = torch.ones(batch, length, dtype=torch.bool, device=query.device)
            else:
                # Every local layer gets the same mask tensor, so the same
                # visible keys (and the band masks built from them) come back.
                visible = per_pass(cache, "visible_keys", mask, lambda: mask[:, 0, -1, :] == 0)
            window = self.local_attention[0]
            out = banded_attention(
                query.transpose(1, 2),
                key.transpose(1, 2),
                value.transpose(1, 2),
                visible,
                window,
                dropout=dropout,
                cache=cache,
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


# Stock class -> fast class, swapped in place by `use_fast_attention`.
SWAPS = {ModernBertAttention: FastModernBertAttention}


def switch_module(module: torch.nn.Module, enabled: bool, *, cache: PassCache, block=None) -> None:
    """Set (or clear) what the fast path keeps on one module of a ModernBERT,
    once its class is swapped.

    module (torch.nn.Module): Any module of the model.
    enabled (bool): True for the fast path, False for Hugging Face's own.
    cache (PassCache): The cache the model's attention modules share.
    block (Optional[int]): Unused (Longformer's block size).
    """
    if isinstance(module, ModernBertAttention):
        if enabled:
            module.pass_cache = cache
        else:
            module.__dict__.pop("pass_cache", None)
    elif isinstance(module, ModernBertModel):
        # Replaces transformers' private ModernBertModel._update_attention_mask
        # (an instance attribute shadows the method, and deleting it restores
        # the stock one): under SDPA it materializes a (batch, 1, length,
        # length) global mask and a sliding-window one for every pass, which
        # the banded local layers never read.
        if enabled:
            module._update_attention_mask = functools.partial(_modernbert_masks, module)
        else:
            module.__dict__.pop("_update_attention_mask", None)
