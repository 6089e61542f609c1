"""Banded (sliding-window) attention, its block geometry and the log-sum-exp merge."""

import math
from typing import Any, Callable, Dict, Optional, Tuple

import torch
import torch.nn.functional as F

# What a Longformer batch is padded to on the fast path: the banded attention
# pads its blocks itself, so 8 (tensor-core friendly) is enough.
PAD_MULTIPLE = 8

# Flash attention on CPU, which also returns the log-sum-exp of each row (what
# merging extra keys needs); a private op of torch, so only where present.
_FLASH_CPU = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)


class PassCache:
    """What the layers of one model derive from the same tensors in a forward pass.

    The encoder hands every layer the same mask tensors, so what is derived
    from them (the global positions, the visible keys, the band masks) is made
    once per pass, by the first layer, and found by identity by the others.
    `use_fast_attention` gives one cache to all the attention modules of a
    model, so two models never evict each other's entries. Each entry is one
    tuple, replaced in one assignment: threads sharing a model at worst
    recompute.
    """

    def __init__(self) -> None:
        self._entries: Dict[str, Tuple[Any, Any, Any]] = {}

    def get(self, name: str, source: torch.Tensor, make: Callable[[], Any], settings: Any = None) -> Any:
        """`make()`, or what it returned for this very `source` tensor and settings.

        name (str): Which derived value.
        source (torch.Tensor): The tensor it is derived from (compared by identity).
        make (Callable[[], Any]): Derives it.
        settings (Any): Anything else it depends on (compared by equality).
        RETURNS (Any): The derived value.
        """
        entry = self._entries.get(name)
        if entry is not None and entry[0] is source and entry[1] == settings:
            return entry[2]
        value = make()
        self._entries[name] = (source, settings, value)
        return value

    def __reduce__(self):
        # A deep copy or a pickle of the model starts empty: the entries are
        # keyed by tensors of a past pass and would only take memory.
        return (PassCache, ())


def per_pass(
    cache: Optional[PassCache],
    name: str,
    source: torch.Tensor,
    make: Callable[[], Any],
    settings: Any = None,
) -> Any:
    """`cache.get(...)`, or `make()` where there is no cache (a direct call).

    cache (Optional[PassCache]): The model's cache, or None.
    name, source, make, settings: As for `PassCache.get`.
    RETURNS (Any): The derived value.
    """
    if cache is None:
        return make()
    return cache.get(name, source, make, settings)


def band_geometry(length: int, window: int, block: int) -> Tuple[int, int, int, int, int]:
    """The blocks of a banded attention over a sequence.

    length (int): Sequence length.
    window (int): The one-sided window w.
    block (int): Queries per block.
    RETURNS (Tuple[int, int, int, int, int]): Block size, key blocks on each
        side, query blocks, padding to whole blocks, keys per neighbourhood.
    """
    block = int(block)
    sides = -(-window // block)
    n_blocks = -(-length // block)
    return block, sides, n_blocks, n_blocks * block - length, (2 * sides + 1) * block


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


def _allowed(key_is_local: torch.Tensor, window: int, block: int) -> torch.Tensor:
    """Which keys of its neighbourhood each query may see: inside the band and
    visible. RETURNS (torch.Tensor): (batch, n_blocks, block, span) bool."""
    block, sides, n_blocks, extra, span = band_geometry(key_is_local.shape[1], window, block)
    visible = F.pad(key_is_local, (sides * block, sides * block + extra), value=False)
    visible = visible.unfold(1, span, block)  # (batch, n_blocks, span)
    return band_mask(block, sides, window, key_is_local.device)[None, None] & visible[:, :, None, :]


def views_apply(tensor: torch.Tensor, dropout: float = 0.0) -> bool:
    """Whether attention over `tensor` may read strided views of the keys
    through CPU flash attention (`flash_with_lse`): on CPU, at inference,
    without dropout, where torch has the op.

    tensor (torch.Tensor): The queries.
    dropout (float): The attention dropout.
    RETURNS (bool): Whether the views path applies.
    """
    return (
        _FLASH_CPU is not None and tensor.device.type == "cpu" and not torch.is_grad_enabled() and not dropout
    )


def flash_with_lse(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, bias: torch.Tensor, scale: float
) -> Tuple[torch.Tensor, torch.Tensor]:
    """CPU flash attention with the log-sum-exp of each row (only where
    `views_apply`).

    query, key, value (torch.Tensor): (..., length, dim); key and value may be
        overlapping strided views.
    bias (torch.Tensor): Additive mask, broadcast to the scores.
    scale (float): The score scale.
    RETURNS (Tuple[torch.Tensor, torch.Tensor]): The output and the
        log-sum-exp of each query's scores.
    """
    out, lse = _FLASH_CPU(query, key, value, 0.0, False, attn_mask=bias, scale=scale)[:2]
    return out, lse


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
    cache: Optional[PassCache] = None,
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
        (longformer.global_slots): every query also sees these keys.
    dropout (float): Attention dropout (training).
    cache (Optional[PassCache]): The model's per-pass cache, where the band
        masks built from the same `key_is_local` tensor are kept for the next
        layers; None to build them every call.
    RETURNS (torch.Tensor): (batch, length, heads, head_dim). A query with no
        visible key (padding far from any token) gets an arbitrary row, which
        callers drop or zero.
    """
    if views_apply(query, dropout):
        return _banded_attention_views(
            query, key, value, key_is_local, window, block=block, slots=slots, cache=cache
        )
    batch, length, heads, dim = query.shape
    block, sides, n_blocks, extra, span = band_geometry(length, window, block or max(1, window // 2))

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


def _band_biases(key_is_local: torch.Tensor, window: int, block: int, dtype) -> list:
    """Per batch row, the additive mask (1, n_blocks, block, span) of the band
    and the visible keys."""
    allowed = _allowed(key_is_local, window, block)  # (batch, n_blocks, block, span)
    biases = []
    for row in range(key_is_local.shape[0]):
        bias = torch.zeros(allowed.shape[1:], dtype=dtype, device=key_is_local.device)
        biases.append(bias.masked_fill_(~allowed[row], float("-inf"))[None])
    return biases


def _banded_attention_views(query, key, value, key_is_local, window, *, block=None, slots=None, cache=None):
    """`banded_attention` without copying neighbourhoods (CPU, inference).

    Per batch row, the keys and values padded once are viewed as
    (heads, n_blocks, span, dim) with overlapping strides, and one flash
    attention call gives the band's output and log-sum-exp; the global keys'
    scores are merged in after.
    """
    batch, length, heads, dim = query.shape
    block, sides, n_blocks, extra, span = band_geometry(length, window, block or max(1, window // 4))
    scale = 1.0 / math.sqrt(dim)
    # The same key_is_local tensor in every layer of a pass, so the same masks.
    biases = per_pass(
        cache,
        "band_biases",
        key_is_local,
        lambda: _band_biases(key_is_local, window, block, query.dtype),
        settings=(window, block, query.dtype),
    )
    rows = []
    for row in range(batch):
        q = F.pad(query[row].transpose(0, 1), (0, 0, 0, extra)).view(heads, n_blocks, block, dim)
        k = F.pad(key[row].transpose(0, 1), (0, 0, sides * block, sides * block + extra))
        v = F.pad(value[row].transpose(0, 1), (0, 0, sides * block, sides * block + extra))
        stride = (k.stride(0), block * dim, dim, 1)
        k = k.as_strided((heads, n_blocks, span, dim), stride)
        v = v.as_strided((heads, n_blocks, span, dim), stride)
        out, lse = flash_with_lse(q, k, v, biases[row], scale)
        rows.append(
            (
                out.reshape(heads, n_blocks * block, dim)[:, :length],
                lse.reshape(heads, -1)[:, :length],
            )
        )
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
        out = merge_extra_keys(out, lse, scores, g_value)
    return out.transpose(1, 2)


def merge_extra_keys(
    out: torch.Tensor, lse: torch.Tensor, scores: torch.Tensor, values: torch.Tensor
) -> torch.Tensor:
    """Attention over a band plus extra keys, from the band's own attention.

    out (torch.Tensor): (..., queries, dim): attention output over the band.
    lse (torch.Tensor): (..., queries): log-sum-exp of the band's scores.
    scores (torch.Tensor): (..., queries, extra): scaled scores (with any
        additive mask) of the extra keys.
    values (torch.Tensor): (..., extra, dim): their values.
    RETURNS (torch.Tensor): (..., queries, dim): the softmax over band and
        extra keys together, a new tensor. A query that sees nothing gets an
        arbitrary row.
    """
    top = torch.maximum(lse, scores.amax(dim=-1))
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    band_weight = torch.exp(lse - top)
    extra_weight = torch.exp(scores - top[..., None])
    total = band_weight + extra_weight.sum(dim=-1)
    if torch.compiler.is_compiling():
        # torch.compile with dynamic shapes (torch 2.13) emits code that fails for the
        # in-place version below; inductor fuses the elementwise passes of this one itself.
        band_part = torch.where(
            band_weight[..., None] > 0, out * band_weight[..., None], torch.zeros_like(out)
        )
        return (band_part + torch.matmul(extra_weight, values)) / total[..., None]
    # The full-size rows are written twice: the band's share, then the extra
    # keys' part added in place (the weights are per query, so small).
    merged = out * (band_weight / total)[..., None]
    saw_nothing = band_weight == 0
    if bool(saw_nothing.any()):
        # A band that saw nothing has a NaN output and zero weight.
        merged.masked_fill_(saw_nothing[..., None], 0.0)
    shares = extra_weight / total[..., None]
    if scores.shape[-1] == 1:
        # One extra key (a Longformer note's only global token): an outer product.
        return merged.addcmul_(shares, values)
    queries, dim = out.shape[-2:]
    merged.view(-1, queries, dim).baddbmm_(
        shares.reshape(-1, queries, scores.shape[-1]), values.reshape(-1, values.shape[-2], dim)
    )
    return merged
