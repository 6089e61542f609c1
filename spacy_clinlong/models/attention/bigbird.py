"""BigBird's block-sparse and full attention through SDPA, and its fused GELU."""

import math

import torch
import torch.nn.functional as F
from transformers.activations import NewGELUActivation
from transformers.models.big_bird.modeling_big_bird import (
    BigBirdBlockSparseAttention,
    BigBirdSelfAttention,
)

from .band import PassCache, flash_with_lse, merge_extra_keys, views_apply

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
                hidden_states,
                band_mask,
                from_mask,
                to_mask,
                from_blocked_mask,
                to_blocked_mask,
                output_attentions,
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
        if views_apply(query):
            out[:, :, block:-block] = self._middle_views(query, key, value, to_mask, n_blocks)
            out = out * from_mask  # Hugging Face zeroes the rows of padding
            return (out.transpose(1, 2).reshape(batch, length, heads * dim),)
        middle = torch.arange(1, n_blocks - 1, device=query.device)
        slots = torch.stack(
            [
                torch.zeros_like(middle),
                torch.full_like(middle, n_blocks - 1),
                middle - 1,
                middle,
                middle + 1,
            ],
            dim=1,
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
            q,
            gather(key),
            gather(value),
            attn_mask=bias.reshape(batch * n_mid, 1, 1, 5 * block),
            scale=scale,
        )
        out[:, :, block:-block] = (
            mid.view(batch, n_mid, heads, block, dim)
            .transpose(1, 2)
            .reshape(batch, heads, n_mid * block, dim)
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
            band, lse = flash_with_lse(q, k_band, v_band, bias[None, :, None, :], scale)
            band = band.reshape(heads, n_mid * block, dim)
            lse = lse.reshape(heads, n_mid * block)
            g_key = torch.cat([k[:, :block], k[:, -block:]], dim=1)  # (heads, 2 block, dim)
            g_value = torch.cat([v[:, :block], v[:, -block:]], dim=1)
            g_bias = torch.zeros(2 * block, dtype=query.dtype, device=query.device)
            g_bias[:block] = math.log(1 + self.num_random_blocks)
            g_ok = torch.cat([keys_ok[row, :block], keys_ok[row, -block:]])
            g_bias = g_bias.masked_fill(~g_ok, _BIGBIRD_PENALTY)
            scores = torch.matmul(q.view(heads, n_mid * block, dim), g_key.transpose(1, 2)) * scale + g_bias
            outs.append(merge_extra_keys(band, lse, scores, g_value))
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


# Stock class -> fast class, swapped in place by `use_fast_attention`. The GELU
# is swapped wherever the model has one: the same function, in one kernel.
SWAPS = {
    BigBirdBlockSparseAttention: FastBigBirdBlockSparseAttention,
    BigBirdSelfAttention: FastBigBirdSelfAttention,
    NewGELUActivation: FastNewGELU,
}


def switch_module(module: torch.nn.Module, enabled: bool, *, cache: PassCache, block=None) -> None:
    """Nothing to set on a BigBird module beyond its class: no per-pass state
    and no private method of the model replaced.

    module (torch.nn.Module): Any module of the model.
    enabled (bool): True for the fast path, False for Hugging Face's own.
    cache (PassCache): Unused.
    block (Optional[int]): Unused (Longformer's block size).
    """
