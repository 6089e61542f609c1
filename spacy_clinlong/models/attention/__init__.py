"""Attention paths for Longformer, BigBird and ModernBERT: same weights, same outputs, less work."""

import importlib

from .band import PAD_MULTIPLE, PassCache, banded_attention
from .switch import (
    ATTENTION_CHOICES,
    TESTED_TRANSFORMERS,
    compile_layers,
    encoder_layers,
    has_fast_attention,
    transformers_supported,
    use_fast_attention,
)

# The family modules import transformers' private classes, so they are
# imported on first use (by use_fast_attention, or here on first access): a
# transformers release without those names costs the fast path, with one
# warning, never `import spacy_clinlong`.
_FAMILY_EXPORTS = {
    "FastLongformerSelfAttention": "longformer",
    "FastBigBirdBlockSparseAttention": "bigbird",
    "FastBigBirdSelfAttention": "bigbird",
    "FastNewGELU": "bigbird",
    "FastModernBertAttention": "modernbert",
}

__all__ = [
    "ATTENTION_CHOICES",
    "PAD_MULTIPLE",
    "TESTED_TRANSFORMERS",
    "PassCache",
    "banded_attention",
    "compile_layers",
    "encoder_layers",
    "has_fast_attention",
    "transformers_supported",
    "use_fast_attention",
    *_FAMILY_EXPORTS,
]


def __getattr__(name: str):
    if name in _FAMILY_EXPORTS:
        return getattr(importlib.import_module(f".{_FAMILY_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
