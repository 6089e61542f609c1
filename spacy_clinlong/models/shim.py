"""The PyTorch shim that carries a Hugging Face encoder and its tokenizer.

Serialized as the files `save_pretrained` writes (config, tokenizer files,
safetensors weights), so a pipeline saved with `nlp.to_disk` loads offline
with exactly the loading code a hub checkpoint goes through.
"""

import contextlib
import warnings
from pathlib import Path
from typing import Any, Dict, Optional

import srsly
from spacy.util import make_tempdir
from spacy_transformers.data_classes import HFObjects
from thinc.api import PyTorchGradScaler, PyTorchShim, get_torch_default_device


class LongHFShim(PyTorchShim):
    """Holds the encoder (as `_model`) and an HFObjects with its tokenizer.

    model (HFObjects): Tokenizer, transformer and their init configs.
    mixed_precision (bool): Whether mixed precision is on (GPU only).
    grad_scaler_config (dict): PyTorchGradScaler settings for fp16 training.
    auto_cls (Optional[str]): The transformers Auto class the model loads with
        ("AutoModelForQuestionAnswering"); None for AutoModel.
    attention (str): "fast" for spacy-clinlong's Longformer, BigBird and
        ModernBERT attention (same weights, same outputs), "hf" for Hugging
        Face's own.
    torch_compile (bool): torch.compile each encoder layer once loaded.
    quantize (Optional[str]): "int8": predict on CPU through a dynamically
        quantized copy of the encoder (quantize.py); None: fp32.
    """

    def __init__(
        self,
        model: HFObjects,
        *,
        mixed_precision: bool = False,
        grad_scaler_config: Optional[Dict[str, Any]] = None,
        auto_cls: Optional[str] = None,
        attention: str = "fast",
        torch_compile: bool = False,
        quantize: Optional[str] = None,
    ):
        self._hfmodel = model
        self._quantize = quantize
        self._prediction_copy = None
        self._auto_cls = auto_cls
        self._attention = attention
        self._torch_compile = torch_compile
        cfg = dict(grad_scaler_config or {})
        cfg.setdefault("enabled", mixed_precision)
        super().__init__(
            model.transformer,
            mixed_precision=mixed_precision,
            grad_scaler=PyTorchGradScaler(**cfg),
        )

    @property
    def init_configs(self):
        """RETURNS (Tuple[Dict[str, Any], Dict[str, Any]]): The AutoTokenizer and AutoConfig
        settings the encoder loads with."""
        return self._hfmodel._init_tokenizer_config, self._hfmodel._init_transformer_config

    @property
    def grad_scaler(self) -> PyTorchGradScaler:
        """RETURNS (PyTorchGradScaler): The gradient scaler (fp16 training; a no-op otherwise)."""
        return self._grad_scaler

    @property
    def hf_objects(self) -> HFObjects:
        """RETURNS (HFObjects): The tokenizer and encoder (None before initialize)."""
        return self._hfmodel

    def set_hf(self, tokenizer, transformer) -> None:
        """Install a loaded tokenizer and encoder, with the attention path chosen."""
        from .attention import compile_layers, use_fast_attention

        use_fast_attention(transformer, getattr(self, "_attention", "fast") == "fast")
        transformer.to(get_torch_default_device())
        if getattr(self, "_torch_compile", False):
            compile_layers(transformer)
        self._model = transformer
        self._hfmodel.tokenizer = tokenizer
        self._hfmodel.transformer = transformer
        self._prediction_copy = None

    def prediction_model(self):
        """The encoder to predict with: the fp32 one, or with `quantize = "int8"`
        on CPU its int8 copy, made on first use after loading or an update.

        RETURNS (PreTrainedModel): The encoder.
        """
        transformer = self._hfmodel.transformer
        if getattr(self, "_quantize", None) is None or transformer is None:
            return transformer
        if self._prediction_copy is None:
            from .quantize import int8_copy

            device = next(transformer.parameters()).device
            if device.type != "cpu":
                _warn_not_cpu(device.type)
                return transformer
            self._prediction_copy = int8_copy(transformer)
        return self._prediction_copy

    def drop_prediction_copy(self) -> None:
        """Forget the int8 copy: the fp32 weights are about to change (training)."""
        self._prediction_copy = None

    def finish_update(self, optimizer) -> None:
        self._prediction_copy = None
        super().finish_update(optimizer)

    @contextlib.contextmanager
    def use_params(self, params):
        # Averaged weights (spaCy's nlp.use_params) go into the fp32 encoder: the int8
        # copy is remade from them inside the block and from the raw weights after it.
        self._prediction_copy = None
        try:
            with super().use_params(params):
                yield
        finally:
            self._prediction_copy = None

    def to_device(self, device_type: str, device_id: int) -> None:
        self._prediction_copy = None
        super().to_device(device_type, device_id)

    def copy(self) -> "LongHFShim":
        # thinc copies a shim with deepcopy (nlp.replace_listeners, Model.copy): the int8
        # copy is remade from the copied weights on first use, not deep-copied.
        cached, self._prediction_copy = self._prediction_copy, None
        try:
            return super().copy()
        finally:
            self._prediction_copy = cached

    def to_bytes(self) -> bytes:
        hf = self._hfmodel
        files: Dict[str, bytes] = {}
        if hf.transformer is not None:
            with make_tempdir() as tmp:
                hf.transformer.save_pretrained(str(tmp), safe_serialization=True)
                hf.tokenizer.save_pretrained(str(tmp))
                for path in sorted(tmp.glob("*")):
                    if path.is_file():
                        files[path.name] = path.read_bytes()
        msg = {
            "format": "save_pretrained.v1",
            "files": files,
            "_init_tokenizer_config": dict(hf._init_tokenizer_config),
            "_init_transformer_config": dict(hf._init_transformer_config),
        }
        return srsly.msgpack_dumps(msg)

    def from_bytes(self, bytes_data: bytes) -> "LongHFShim":
        from .hf_loading import load_hf

        msg = srsly.msgpack_loads(bytes_data)
        if msg.get("format") != "save_pretrained.v1":
            raise ValueError(
                "This transformer was not saved by spacy-clinlong's "
                "LongTransformerModel (unknown serialization format)."
            )
        tok_cfg = msg.get("_init_tokenizer_config", {})
        trf_cfg = msg.get("_init_transformer_config", {})
        self._hfmodel = HFObjects(None, None, None, tok_cfg, trf_cfg)
        if msg["files"]:
            with make_tempdir() as tmp:
                for name, data in msg["files"].items():
                    Path(tmp / Path(name).name).write_bytes(data)
                tokenizer, transformer = load_hf(
                    tmp, tok_cfg, trf_cfg, auto_cls=getattr(self, "_auto_cls", None)
                )
            self.set_hf(tokenizer, transformer)
        else:
            self._model = None
        return self


def new_shim(
    *,
    max_length: Optional[int],
    batch_wordpieces: int,
    tokenizer_config: Dict[str, Any],
    transformer_config: Dict[str, Any],
    mixed_precision: bool,
    grad_scaler_config: Dict[str, Any],
    auto_cls: Optional[str] = None,
    attention: str = "fast",
    torch_compile: bool = False,
    quantize: Optional[str] = None,
) -> LongHFShim:
    """Check the settings every long-span model shares and make its (empty)
    shim; the weights load later, at initialize or from_disk.

    max_length (Optional[int]): Wordpiece budget; None or 0 for the model's own.
    batch_wordpieces (int): The most padded wordpieces per encoder call.
    tokenizer_config (Dict[str, Any]): Keyword arguments for AutoTokenizer.
    transformer_config (Dict[str, Any]): Keyword arguments for AutoConfig.
    mixed_precision (bool): Mixed precision on GPU.
    grad_scaler_config (Dict[str, Any]): Gradient scaler settings.
    auto_cls (Optional[str]): The transformers Auto class; None for AutoModel.
    attention (str): "fast" (spacy-clinlong's attention paths) or "hf".
    torch_compile (bool): torch.compile each encoder layer once loaded.
    quantize (Optional[str]): None (fp32) or "int8" (prediction on CPU).
    RETURNS (LongHFShim): The shim.
    """
    from .attention import ATTENTION_CHOICES
    from .quantize import check_quantize

    if attention not in ATTENTION_CHOICES:
        raise ValueError(f"attention must be one of {ATTENTION_CHOICES}, got {attention!r}")
    if max_length is not None and max_length < 0:
        raise ValueError(f"max_length must be >= 0 (0 or null: the model's own), got {max_length}")
    if batch_wordpieces < 1:
        raise ValueError(f"batch_wordpieces must be >= 1, got {batch_wordpieces}")
    if check_quantize(quantize) and torch_compile:
        raise ValueError("quantize = 'int8' and torch_compile = true cannot be combined: choose one")
    hf = HFObjects(None, None, None, dict(tokenizer_config), dict(transformer_config))
    return LongHFShim(
        hf,
        mixed_precision=mixed_precision,
        grad_scaler_config=dict(grad_scaler_config),
        auto_cls=auto_cls,
        attention=attention,
        torch_compile=torch_compile,
        quantize=quantize,
    )


_WARNED_DEVICES = set()


def _warn_not_cpu(device_type: str) -> None:
    if device_type not in _WARNED_DEVICES:
        _WARNED_DEVICES.add(device_type)
        warnings.warn(
            f"quantize = 'int8' applies on CPU only; the encoder on {device_type} predicts in its own precision",
            stacklevel=3,
        )


class HFModelAccess:
    """Accessors for the thinc Models whose first layer holds a LongHFShim
    (LongTransformerModel, LongQAModel)."""

    @property
    def shim(self) -> LongHFShim:
        return self.layers[0].shims[0]

    @property
    def tokenizer(self):
        return self.shim.hf_objects.tokenizer

    @property
    def transformer(self):
        return self.shim.hf_objects.transformer

    @property
    def facts(self):
        """The loaded model's budget, special tokens and padding rule."""
        from .hf_loading import ModelFacts

        if self.attrs["facts"] is None or self.transformer is None:
            raise ValueError(
                "The transformer is not loaded: call nlp.initialize() before using "
                "a new pipeline, or load a trained one with spacy.load()."
            )
        return ModelFacts(**self.attrs["facts"])
