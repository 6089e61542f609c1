"""Switch a loaded model between the fast attention paths and Hugging Face's own."""

import importlib
import sys
import warnings
from typing import List, Optional

import transformers
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from .band import PassCache

ATTENTION_CHOICES = ("fast", "hf")
# The transformers releases the fast paths are tested with: what setup.cfg's
# install_requires allows (tests/test_fast_attention.py checks that the two
# agree). The family modules swap transformers' private classes and methods,
# so a release outside it falls back to Hugging Face's attention.
TESTED_TRANSFORMERS = ">=4.48,<4.53.3"
# One module per model family; each has SWAPS (stock class -> fast class) and
# switch_module (the instance state and private methods it replaces).
_FAMILIES = ("longformer", "bigbird", "modernbert")
_warned = False


def transformers_supported(version: Optional[str] = None) -> bool:
    """Whether a transformers release is in the range the fast paths are tested with.

    version (Optional[str]): A version string; None for the installed one.
    RETURNS (bool): Whether it is in TESTED_TRANSFORMERS (pre-releases count).
    """
    version = transformers.__version__ if version is None else version
    try:
        return SpecifierSet(TESTED_TRANSFORMERS).contains(Version(version), prereleases=True)
    except InvalidVersion:
        return False


def _warn_once(reason: str) -> None:
    global _warned
    if _warned:
        return
    _warned = True
    warnings.warn(
        f'spacy-clinlong: {reason}; using Hugging Face\'s own attention (attention = "hf"): '
        f"same outputs, slower on long notes. The fast paths are tested with transformers"
        f"{TESTED_TRANSFORMERS}.",
        UserWarning,
        stacklevel=4,
    )


def _family_modules(load: bool) -> list:
    """The family modules: imported when `load`, else only those already imported
    (a model can only hold fast classes from a module that was imported)."""
    modules = []
    for name in _FAMILIES:
        qualified = f"{__package__}.{name}"
        if load:
            modules.append(importlib.import_module(qualified))
        else:
            module = sys.modules.get(qualified)
            if module is not None:
                modules.append(module)
    return modules


def _usable_families(asked: bool) -> Optional[list]:
    """The family modules where the fast paths can run, or None where
    transformers is outside the tested range or the private names they replace
    are gone (with one warning per process when the fast path was `asked`)."""
    reason = None
    if not transformers_supported():
        reason = f"transformers {transformers.__version__} is outside the tested range"
    else:
        try:
            return _family_modules(load=True)
        except (ImportError, AttributeError) as err:
            reason = (
                f"the fast attention paths do not load with transformers {transformers.__version__} ({err})"
            )
    if asked:
        _warn_once(reason)
    return None


def use_fast_attention(transformer, enabled: bool = True, *, block: Optional[int] = None) -> bool:
    """Switch a loaded Hugging Face model between the fast and the stock path.

    Longformer, BigBird and ModernBERT attention modules change class (their
    weights stay); a Longformer model pads to a multiple of 8 instead of its
    window, and a ModernBERT model builds no square masks. Other models are
    left as they are. With a transformers release outside TESTED_TRANSFORMERS
    the model gets Hugging Face's path instead, with one warning per process.
    transformer (PreTrainedModel): The model (bare encoder or with a head).
    enabled (bool): True for the fast path, False for Hugging Face's own.
    block (Optional[int]): Longformer queries per attention block; None for
        w / 2 (with the neighbouring blocks, 2.5 w keys per query against the
        2 w + 1 of the band).
    RETURNS (bool): Whether the model has attention modules with a fast path
        (and so whether anything changed); False where the fast path was asked
        for but transformers is outside the tested range.
    """
    families = _usable_families(asked=enabled)
    fallback = enabled and families is None
    if families is None:
        # Hugging Face's path: only what an earlier call installed (from the
        # family modules already imported) is switched back.
        enabled = False
        families = _family_modules(load=False)
    swaps = {stock: fast for family in families for stock, fast in family.SWAPS.items()}
    stock_of = {fast: stock for stock, fast in swaps.items()}
    # One cache for all the attention modules of this model: the layers of a
    # pass share what they derive from the same masks, and other models keep
    # their own.
    cache = PassCache()
    found = False
    for module in transformer.modules():
        stock = stock_of.get(type(module), type(module))
        if stock in swaps:
            found = True
            # Changing the class keeps the parameters, buffers, hooks and
            # state dict keys of the module transformers built.
            module.__class__ = swaps[stock] if enabled else stock
        for family in families:
            family.switch_module(module, enabled, cache=cache, block=block)
    return found and not fallback


def has_fast_attention(transformer) -> bool:
    """Whether `use_fast_attention` is on for this model.

    transformer (PreTrainedModel): The model.
    RETURNS (bool): Whether its attention modules have the fast classes.
    """
    swaps = {}
    for family in _family_modules(load=False):
        swaps.update(family.SWAPS)
    fast = set(swaps.values())
    first = next((m for m in transformer.modules() if type(m) in swaps or type(m) in fast), None)
    return type(first) in fast


def encoder_layers(transformer) -> List:
    """The encoder layers of a loaded model.

    transformer (PreTrainedModel): The model.
    RETURNS (List[torch.nn.Module]): BERT-style `encoder.layer`, or
        ModernBERT's `layers`; empty for other layouts.
    """
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
