"""Running a Hugging Face encoder over windows in wordpiece-budget batches."""
import contextlib
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import numpy
import torch

from .fast_attention import PAD_MULTIPLE, has_fast_attention, use_fast_attention
from .hf_loading import ModelFacts


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


def plan_batches(lengths: List[int], *, budget: int, pad_multiple: int) -> List[List[int]]:
    """Group windows into batches of at most `budget` padded wordpieces.

    Windows are sorted longest first, so a batch pads only to its own longest
    window and short notes never pad to a long one. A window longer than the
    budget runs alone.
    lengths (List[int]): Window lengths, special tokens included.
    budget (int): The most padded wordpieces (rows x padded length) per batch.
    pad_multiple (int): Batches are padded to a multiple of this.
    RETURNS (List[List[int]]): Window indices per batch.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: List[List[int]] = []
    current: List[int] = []
    padded = 0
    for i in order:
        if not current:
            current, padded = [i], round_up(max(lengths[i], 1), pad_multiple)
        elif padded * (len(current) + 1) <= budget:
            current.append(i)
        else:
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
        sparse = transformer.config.attention_type == "block_sparse" and bigbird_sparse(
            transformer, longest
        )
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
