"""Running a Hugging Face encoder over windows in wordpiece-budget batches."""

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy
import torch
from spacy.util import SimpleFrozenDict
from thinc.api import Model

from .attention import PAD_MULTIPLE, has_fast_attention, use_fast_attention
from .hf_loading import ModelFacts, load_hf
from .long_spans import configure_long_spans
from .shim import LongHFShim, new_shim
from .types import GlobalAttentionT, LongSpansT


@dataclass
class EncoderSettings:
    """What a long-span encoder model is built with: the settings of
    `spacy-clinlong.LongTransformerModel.v1`, which `spacy-clinlong.LongQAModel.v1`
    shares (less global_attention).

    name (str): Hub id or local directory of the encoder.
    get_spans (Optional[Callable]): A long-span getter; None for
        `spacy-clinlong.long_spans.v1` with its defaults.
    global_attention (Optional[Callable]): A Longformer global-attention
        chooser; None where the model chooses (the transformer architecture:
        CLS only; the QA model always gives CLS and the question).
    max_length (Optional[int]): Wordpiece budget per window, special tokens
        included; None or 0 for the model's own (4096, 8192, 512).
    batch_wordpieces (int): The most padded wordpieces per encoder call.
    tokenizer_config (Dict[str, Any]): Keyword arguments for AutoTokenizer.
    transformer_config (Dict[str, Any]): Keyword arguments for AutoConfig.
    mixed_precision (bool): bf16 (or fp16) autocast on GPU; CPU stays fp32.
    grad_scaler_config (Dict[str, Any]): Gradient scaling for fp16 training.
    gradient_checkpointing (bool): Trade compute for memory when training.
    attention (str): "fast": Longformer, BigBird and ModernBERT through
        spacy-clinlong's attention, same weights and outputs; "hf": Hugging
        Face's own.
    torch_compile (bool): torch.compile each encoder layer (dynamic shapes)
        once loaded; the first notes of each new shape pay for compiling.
    quantize (Optional[str]): "int8": predict on CPU through a copy of the
        encoder with dynamically quantized Linear layers (training and saving
        stay fp32); None: fp32.
    """

    name: str
    get_spans: Optional[LongSpansT] = None
    global_attention: Optional[GlobalAttentionT] = None
    max_length: Optional[int] = None
    batch_wordpieces: int = 16384
    tokenizer_config: Dict[str, Any] = field(default_factory=SimpleFrozenDict)
    transformer_config: Dict[str, Any] = field(default_factory=SimpleFrozenDict)
    mixed_precision: bool = False
    grad_scaler_config: Dict[str, Any] = field(default_factory=SimpleFrozenDict)
    gradient_checkpointing: bool = False
    attention: str = "fast"
    torch_compile: bool = False
    quantize: Optional[str] = None

    def __post_init__(self) -> None:
        if self.get_spans is None:
            self.get_spans = configure_long_spans()

    def make_shim(self, *, auto_cls: Optional[str] = None) -> LongHFShim:
        """Check the settings and make the model's (empty) shim; the weights
        load later, at initialize or from_disk.

        auto_cls (Optional[str]): The transformers Auto class; None for AutoModel.
        RETURNS (LongHFShim): The shim.
        """
        return new_shim(
            max_length=self.max_length,
            batch_wordpieces=self.batch_wordpieces,
            tokenizer_config=self.tokenizer_config,
            transformer_config=self.transformer_config,
            mixed_precision=self.mixed_precision,
            grad_scaler_config=self.grad_scaler_config,
            auto_cls=auto_cls,
            attention=self.attention,
            torch_compile=self.torch_compile,
            quantize=self.quantize,
        )

    def model_attrs(self) -> Dict[str, Any]:
        """The settings the model keeps in its attrs, where the encoder reads
        them at run time. thinc saves the plain values with the model, so the
        keys are part of the saved format: do not rename them. The tokenizer,
        transformer and grad scaler configs live in the shim instead.

        RETURNS (Dict[str, Any]): The attrs; global_attention only when set.
        """
        attrs: Dict[str, Any] = {"name": str(self.name), "get_spans": self.get_spans}
        if self.global_attention is not None:
            attrs["global_attention"] = self.global_attention
        attrs["max_length"] = self.max_length
        attrs["batch_wordpieces"] = int(self.batch_wordpieces)
        attrs["mixed_precision"] = bool(self.mixed_precision)
        attrs["gradient_checkpointing"] = bool(self.gradient_checkpointing)
        attrs["attention"] = self.attention
        attrs["torch_compile"] = bool(self.torch_compile)
        return attrs


@dataclass
class WindowInput:
    """One window: a span of one doc, as model input.

    ids (numpy.ndarray): Wordpiece ids, special tokens included.
    global_positions (List[int]): Positions with global attention.
    type_ids (Optional[numpy.ndarray]): Token type ids (a BERT question/note
        pair); None where the model takes none.
    """

    ids: numpy.ndarray
    global_positions: List[int]
    type_ids: Optional[numpy.ndarray] = None

    def __len__(self) -> int:
        return int(self.ids.shape[0])


def round_up(n: int, multiple: int) -> int:
    return ((n + multiple - 1) // multiple) * multiple


# A window joins a batch only if it is at least this full of the batch's padded
# length. Packing by the wordpiece budget alone put a note's 1,400-wordpiece last
# window beside its 4,096-wordpiece first one, padded to 4,096: notes of two
# windows read 37% slower per word than notes of one (docs/speed.md).
MIN_BATCH_FILL = 0.8
# On CPU one encoder call reads at most this many padded wordpieces (one long window,
# or several short ones): its matrix products are already large, and batches of
# several long windows read fewer words/s (one-window notes, batch size 8: 572 words/s
# against 833 one at a time; docs/speed.md).
CPU_CALL_WORDPIECES = 4096


def plan_batches(
    lengths: List[int], *, budget: int, pad_multiple: int, min_fill: float = MIN_BATCH_FILL
) -> List[List[int]]:
    """Group windows into batches of at most `budget` padded wordpieces.

    Windows are sorted longest first, so a batch pads only to its own longest
    window, and a window shorter than `min_fill` of that starts a new batch, so
    short windows never pad to a long one. A window longer than the budget runs alone.
    lengths (List[int]): Window lengths, special tokens included.
    budget (int): The most padded wordpieces (rows x padded length) per batch.
    pad_multiple (int): Batches are padded to a multiple of this.
    min_fill (float): The shortest window a batch takes, as a share of its padded length.
    RETURNS (List[List[int]]): Window indices per batch.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: List[List[int]] = []
    current: List[int] = []
    padded = 0
    for i in order:
        fits = round_up(max(lengths[i], 1), pad_multiple) >= min_fill * padded
        if current and padded * (len(current) + 1) <= budget and fits:
            current.append(i)
            continue
        if current:
            batches.append(current)
        current, padded = [i], round_up(max(lengths[i], 1), pad_multiple)
    if current:
        batches.append(current)
    return batches


def autocast_dtype(device: torch.device, mixed_precision: bool) -> Optional[torch.dtype]:
    """bf16 where the GPU has it, else fp16; None (fp32) on CPU or when off."""
    if not mixed_precision or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def pad_multiple(transformer, facts: ModelFacts) -> int:
    """What a batch is padded to: Longformer's whole window on Hugging Face's
    path, 8 on the banded one (which pads its blocks itself).

    transformer (PreTrainedModel): The model.
    facts (ModelFacts): The model facts.
    RETURNS (int): The padding multiple.
    """
    if facts.model_type == "longformer" and has_fast_attention(transformer):
        return PAD_MULTIPLE
    return facts.pad_multiple


def batch_tensors(
    windows: List[WindowInput],
    facts: ModelFacts,
    device: torch.device,
    *,
    sparse: bool,
    multiple: Optional[int] = None,
) -> Dict[str, torch.Tensor]:
    """Pad a batch of windows into model inputs.

    windows (List[WindowInput]): The windows.
    facts (ModelFacts): The model's padding rule and ids.
    device (torch.device): Where to put the tensors.
    sparse (bool): Whether a BigBird batch will run block-sparse (needs block
        multiples; full attention pads only to 8).
    multiple (Optional[int]): Pad to a multiple of this; None for the model's
        own rule (facts.pad_multiple).
    RETURNS (Dict[str, torch.Tensor]): Keyword arguments for the model.
    """
    longest = max(len(w) for w in windows)
    if multiple is None:
        multiple = facts.pad_multiple if (facts.model_type != "big_bird" or sparse) else 8
    length = round_up(longest, multiple)
    ids = numpy.full((len(windows), length), facts.pad_id, dtype="int64")
    mask = numpy.zeros((len(windows), length), dtype="int64")
    for row, window in enumerate(windows):
        ids[row, : len(window)] = window.ids
        mask[row, : len(window)] = 1
    kwargs = {
        "input_ids": torch.from_numpy(ids).to(device),
        "attention_mask": torch.from_numpy(mask).to(device),
    }
    if facts.model_type == "longformer":
        glob = numpy.zeros((len(windows), length), dtype="int64")
        for row, window in enumerate(windows):
            if window.global_positions:
                glob[row, window.global_positions] = 1
        kwargs["global_attention_mask"] = torch.from_numpy(glob).to(device)
    if any(w.type_ids is not None for w in windows):
        types = numpy.zeros((len(windows), length), dtype="int64")
        for row, window in enumerate(windows):
            if window.type_ids is not None:
                types[row, : len(window)] = window.type_ids
        kwargs["token_type_ids"] = torch.from_numpy(types).to(device)
    return kwargs


def bigbird_sparse(transformer, padded_length: int) -> bool:
    """Whether BigBird can run block-sparse on spans of this length.

    Hugging Face switches a BigBird model to full attention, for good and with a
    warning, the first time it sees a short batch; we choose per batch instead.
    """
    config = transformer.config
    return padded_length > (5 + 2 * config.num_random_blocks) * config.block_size


def run_batch(
    transformer,
    windows: List[WindowInput],
    facts: ModelFacts,
    *,
    is_train: bool,
    mixed_precision: bool,
    read: Optional[Callable[..., torch.Tensor]] = None,
) -> torch.Tensor:
    """Run the encoder on one batch of windows.

    transformer (PreTrainedModel): The encoder.
    windows (List[WindowInput]): The windows.
    facts (ModelFacts): The model facts.
    is_train (bool): Keep the graph for a backward pass (else inference mode).
    mixed_precision (bool): bf16/fp16 autocast on GPU.
    read (Optional[Callable]): Picks the tensor to return from the model
        output; None for the last hidden states.
    RETURNS (torch.Tensor): Last hidden states (batch, padded length, width),
        or what `read` picked, fp32.
    """
    device = next(transformer.parameters()).device
    sparse = False
    if facts.model_type == "big_bird":
        longest = round_up(max(len(w) for w in windows), facts.pad_multiple)
        sparse = transformer.config.attention_type == "block_sparse" and bigbird_sparse(transformer, longest)
        # base_model: the encoder itself, or the one under a task head (QA).
        # A switch makes new stock attention modules: keep the fast path on.
        base = transformer.base_model
        wanted = "block_sparse" if sparse else "original_full"
        if base.attention_type != wanted:
            fast = has_fast_attention(transformer)
            base.set_attention_type(wanted)
            if fast:
                use_fast_attention(transformer)
    multiple = pad_multiple(transformer, facts) if facts.model_type == "longformer" else None
    kwargs = batch_tensors(windows, facts, device, sparse=sparse, multiple=multiple)
    dtype = autocast_dtype(device, mixed_precision)
    amp = (
        torch.autocast(device_type=device.type, dtype=dtype)
        if dtype is not None
        else contextlib.nullcontext()
    )
    if is_train:
        transformer.train()
        with amp:
            output = transformer(**kwargs, return_dict=True)
    else:
        transformer.eval()
        with torch.inference_mode(), amp:
            output = transformer(**kwargs, return_dict=True)
    if read is not None:
        return read(output).float()
    return output.last_hidden_state.float()


# The encoder core both architectures run on: `model` is a LongTransformerModel
# or a LongQAModel (a thinc Model with a LongHFShim as its first layer's shim,
# and the attrs of EncoderSettings.model_attrs).


def load_encoder(model: Model, *, auto_cls: Optional[str] = None) -> Tuple[Any, Any]:
    """Load the tokenizer and encoder named in the model's settings (weights
    load here, at initialize, never at construction).

    model (Model): The model.
    auto_cls (Optional[str]): The transformers Auto class; None for AutoModel.
    RETURNS (Tuple[PreTrainedTokenizerFast, PreTrainedModel]): The tokenizer and encoder.
    """
    tokenizer_config, transformer_config = model.shim.init_configs
    return load_hf(model.attrs["name"], tokenizer_config, transformer_config, auto_cls=auto_cls)


def sync_checkpointing(model: Model, is_train: bool) -> None:
    """Switch the encoder's gradient checkpointing to the model's setting
    before a training pass.

    Hugging Face keeps the switch on the torch module, which loading replaces,
    so it is checked on every training pass rather than once.
    model (Model): The loaded model.
    is_train (bool): Whether this pass trains; prediction leaves it alone.
    """
    transformer = model.transformer
    if not is_train or not transformer.supports_gradient_checkpointing:
        return
    wanted = model.attrs["gradient_checkpointing"]
    if wanted and not transformer.is_gradient_checkpointing:
        transformer.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    elif not wanted and transformer.is_gradient_checkpointing:
        transformer.gradient_checkpointing_disable()


def plan_windows(
    model: Model, windows: Sequence[WindowInput], budget: Optional[int] = None
) -> List[List[int]]:
    """Group windows into encoder calls, padded as the loaded encoder pads.

    model (Model): The loaded model.
    windows (Sequence[WindowInput]): The windows.
    budget (Optional[int]): The most padded wordpieces per call; None for the
        model's batch_wordpieces (on CPU at most CPU_CALL_WORDPIECES).
    RETURNS (List[List[int]]): Window indices per encoder call.
    """
    if budget is None:
        budget = model.attrs["batch_wordpieces"]
        if next(model.transformer.parameters()).device.type == "cpu":
            budget = min(budget, CPU_CALL_WORDPIECES)
    return plan_batches(
        [len(w) for w in windows],
        budget=budget,
        pad_multiple=pad_multiple(model.transformer, model.facts),
    )


class EncodedWindows:
    """The encoder's output for batches of windows, and the way back.

    outputs (List[torch.Tensor]): Per encoder call, (rows, padded length, ...)
        fp32, attached to the graph when training.
    where (Dict[int, Tuple[int, int]]): Window index -> (call, row).
    """

    def __init__(self, outputs: List[torch.Tensor], where: Dict[int, Tuple[int, int]]):
        self.outputs = outputs
        self.where = where

    def rows(self, i: int, length: int) -> torch.Tensor:
        """The output of window i.

        i (int): The window index.
        length (int): The window's length (its row is padded beyond it).
        RETURNS (torch.Tensor): (length, ...) of its call's output.
        """
        b, row = self.where[i]
        return self.outputs[b][row, :length]

    def backward(
        self,
        model: Model,
        d_windows: Iterable[Tuple[int, Union[numpy.ndarray, torch.Tensor]]],
    ) -> None:
        """Scatter gradients of the windows' outputs back into the calls' rows
        and run one backward pass over all calls, scaled by the shim's grad
        scaler (fp16). Gradients add up in the parameters' .grad: call
        `unscale_grads` once the update's backward passes have run.

        model (Model): The model that ran the windows.
        d_windows (Iterable[Tuple[int, ndarray or Tensor]]): Window index and
            the gradient of its first d.shape[0] positions.
        """
        grads = [torch.zeros_like(out) for out in self.outputs]
        for i, d in d_windows:
            b, row = self.where[i]
            d = torch.as_tensor(d)
            grads[b][row, : d.shape[0]] += d.to(grads[b].device, grads[b].dtype)
        if self.outputs:
            grads = model.shim.grad_scaler.scale(grads, inplace=True)
            torch.autograd.backward(self.outputs, grad_tensors=grads)


def encode_windows(
    model: Model,
    windows: Sequence[WindowInput],
    batches: Optional[List[List[int]]] = None,
    *,
    is_train: bool,
    read: Optional[Callable[..., torch.Tensor]] = None,
) -> EncodedWindows:
    """Run the encoder over windows, batch by batch.

    model (Model): The loaded model.
    windows (Sequence[WindowInput]): The windows.
    batches (Optional[List[List[int]]]): Window indices per encoder call (from
        `plan_windows`); None to plan all windows with batch_wordpieces (on CPU at
        most CPU_CALL_WORDPIECES).
    is_train (bool): Keep the graph for a backward pass (else inference mode).
    read (Optional[Callable]): Picks the tensor to keep from the model
        output; None for the last hidden states.
    RETURNS (EncodedWindows): The outputs, and where each window's row is.
    """
    if batches is None:
        batches = plan_windows(model, windows)
    if is_train:
        model.shim.drop_prediction_copy()
        transformer = model.transformer
    else:
        transformer = model.shim.prediction_model()
    facts = model.facts
    outputs: List[torch.Tensor] = []
    where: Dict[int, Tuple[int, int]] = {}
    for b, idx in enumerate(batches):
        outputs.append(
            run_batch(
                transformer,
                [windows[i] for i in idx],
                facts,
                is_train=is_train,
                mixed_precision=model.attrs["mixed_precision"],
                read=read,
            )
        )
        for row, i in enumerate(idx):
            where[i] = (b, row)
    return EncodedWindows(outputs, where)


def unscale_grads(model: Model) -> None:
    """Undo the grad scaler's scaling of the encoder's parameter gradients,
    once per update, after its backward passes (a no-op unless fp16).

    model (Model): The loaded model.
    """
    params = [p.grad for p in model.transformer.parameters() if p.grad is not None]
    model.shim.grad_scaler.unscale(params)
