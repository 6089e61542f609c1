"""int8 prediction on CPU: dynamic quantization of the encoder's Linear layers.

The `quantize = "int8"` setting of the long-span architectures keeps the fp32
encoder for training and saving, and predicts through a copy whose Linear
layers are torch's dynamically quantized ones (int8 weights, activations
quantized per batch; fbgemm/x86 or oneDNN kernels). Weights are quantized per
output channel: on the proof pipeline (MiniLM, 6 layers) it kept 88% of fp32's
entities where one scale per tensor kept 71% (docs/speed.md). The copy is made on the
first prediction after loading and again after each weight update, so a pipeline
saved with the setting loads, trains and saves exactly like an fp32 one.

Longformer's global projections (`query_global`, `key_global`, `value_global`)
stay fp32: spacy-clinlong's Longformer attention reads their weights directly,
and they only ever see the few global tokens.
"""

import copy
import warnings
from typing import Any, Optional

QUANTIZE_CHOICES = (None, "int8")
# Linear layers left in fp32, by the last part of their module name.
KEEP_FP32 = ("query_global", "key_global", "value_global")


def check_quantize(quantize: Optional[str]) -> Optional[str]:
    """Check a `quantize` setting.

    quantize (Optional[str]): None (fp32) or "int8".
    RETURNS (Optional[str]): The setting.
    """
    if quantize not in QUANTIZE_CHOICES:
        raise ValueError(f"quantize must be null (fp32) or 'int8', got {quantize!r}")
    return quantize


def int8_copy(transformer: Any) -> Any:
    """A copy of an encoder whose Linear layers run in int8 (dynamic quantization).

    transformer (PreTrainedModel): An fp32 encoder on CPU; it is not changed.
    RETURNS (PreTrainedModel): The quantized copy, in eval mode, for inference only.
    """
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    spec = {
        name: per_channel_dynamic_qconfig
        for name, module in transformer.named_modules()
        if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] not in KEEP_FP32
    }
    copied = copy.deepcopy(transformer).eval()
    with warnings.catch_warnings():
        # torch.ao.quantization announces its move to torchao; its fbgemm/x86
        # kernels are the ones this setting is measured with (docs/speed.md).
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return quantize_dynamic(copied, spec, dtype=torch.qint8, inplace=True)


def is_quantized(transformer: Any) -> bool:
    """RETURNS (bool): Whether any of the model's Linear layers is a dynamically quantized one."""
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    return any(isinstance(module, DynamicLinear) for module in transformer.modules())
