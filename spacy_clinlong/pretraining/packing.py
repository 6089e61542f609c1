"""Notes packed into fixed-length masked-LM sequences, and the masking itself.

Notes are tokenized one at a time, joined with the tokenizer's separator and
cut into sequences of exactly `max_length` wordpieces (special tokens
included), as Clinical-Longformer's 4,096-wordpiece pretraining did; only the
last sequence of a pass may be shorter. Each wordpiece carries the number of
the word it belongs to, so whole-word masking works for any fast tokenizer
(BERT's "##" pieces and RoBERTa's byte-level BPE alike), which Hugging Face's
`DataCollatorForWholeWordMask` does not (it only reads "##").
"""

from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Set

import torch
from torch.utils.data import IterableDataset
from transformers import DataCollatorForLanguageModeling

from ..models.hf_loading import special_template
from .notes import NoteSource

NO_WORD = -1


def content_length(tokenizer, max_length: int) -> int:
    """RETURNS (int): Wordpieces of note text per sequence, after the special tokens."""
    prefix, suffix = special_template(tokenizer)
    room = max_length - len(prefix) - len(suffix)
    if room < 8:
        raise ValueError(f"max_length {max_length} leaves {room} wordpieces for text after special tokens")
    return room


def pack_notes(
    texts: Iterable[str], tokenizer, max_length: int, *, skip: Optional[Set[int]] = None
) -> Iterator[Dict[str, List[int]]]:
    """Tokenize notes and pack them into sequences of `max_length` wordpieces.

    texts (Iterable[str]): Note texts.
    tokenizer (PreTrainedTokenizerFast): The model's tokenizer.
    max_length (int): Wordpieces per sequence, special tokens included.
    skip (Optional[Set[int]]): Indices of notes to leave out (the held-out ones).
    YIELDS (Dict[str, List[int]]): "input_ids" and "word_groups" (the word
        number of each wordpiece; -1 for special tokens).
    """
    prefix, suffix = special_template(tokenizer)
    room = content_length(tokenizer, max_length)
    # Between two notes inside one sequence: the end-of-sequence token(s).
    joint = list(suffix) or [tokenizer.sep_token_id]
    ids: List[int] = []
    groups: List[int] = []
    word_base = 0
    for i, text in enumerate(texts):
        if skip and i in skip:
            continue
        enc = tokenizer(text, add_special_tokens=False, return_attention_mask=False, verbose=False)
        words = enc.word_ids()
        if ids:
            ids += joint
            groups += [NO_WORD] * len(joint)
        ids += enc["input_ids"]
        groups += [NO_WORD if w is None else word_base + w for w in words]
        word_base += max((w for w in words if w is not None), default=-1) + 1
        while len(ids) >= room:
            yield _wrap(ids[:room], groups[:room], prefix, suffix)
            ids, groups = ids[room:], groups[room:]
    if ids:
        yield _wrap(ids, groups, prefix, suffix)


def _wrap(ids: List[int], groups: List[int], prefix: List[int], suffix: List[int]) -> Dict[str, List[int]]:
    # Word numbers restart in every sequence, so they stay below its length.
    base = next((g for g in groups if g != NO_WORD), 0)
    groups = [g if g == NO_WORD else g - base for g in groups]
    return {
        "input_ids": list(prefix) + ids + list(suffix),
        "word_groups": [NO_WORD] * len(prefix) + groups + [NO_WORD] * len(suffix),
    }


class PackedNotes(IterableDataset):
    """A torch IterableDataset of packed sequences, streamed from a `NoteSource`.

    Each pass re-reads the corpus from the start, so training for more steps
    than one pass yields simply starts another epoch.
    """

    def __init__(
        self, source: NoteSource, tokenizer, max_length: int, *, skip: Optional[Set[int]] = None
    ) -> None:
        self.source = source
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.skip = set(skip or ())

    def __iter__(self) -> Iterator[Dict[str, List[int]]]:
        yield from pack_notes(self.source, self.tokenizer, self.max_length, skip=self.skip)


def mask_batch(
    input_ids: torch.Tensor,
    word_groups: Optional[torch.Tensor],
    *,
    tokenizer,
    mlm_probability: float,
    generator: Optional[torch.Generator] = None,
) -> Dict[str, torch.Tensor]:
    """BERT's masking: choose positions (or whole words), then 80% [MASK], 10% random, 10% kept.

    input_ids (torch.Tensor): (batch, length) ids, padded with the pad id.
    word_groups (Optional[torch.Tensor]): (batch, length) word numbers (-1 for
        special tokens and padding); None masks wordpieces independently.
    tokenizer (PreTrainedTokenizerFast): Gives the mask, pad and special ids.
    mlm_probability (float): Share of wordpieces (or words) chosen.
    generator (Optional[torch.Generator]): Random source (fixed for held-out loss).
    RETURNS (Dict[str, torch.Tensor]): input_ids, attention_mask and labels
        (-100 where no prediction is scored).
    """
    inputs = input_ids.clone()
    attention_mask = (inputs != tokenizer.pad_token_id).long()
    special = torch.zeros_like(inputs, dtype=torch.bool)
    for sid in tokenizer.all_special_ids:
        special |= inputs == sid
    if word_groups is None:
        chosen = torch.rand(inputs.shape, generator=generator) < mlm_probability
    else:
        # One draw per word: every wordpiece of a chosen word is chosen.
        n_words = int(word_groups.max().item()) + 2
        draws = torch.rand((inputs.shape[0], n_words), generator=generator) < mlm_probability
        chosen = torch.gather(draws, 1, (word_groups + 1).clamp(min=0))
        chosen &= word_groups >= 0
    chosen &= ~special
    labels = torch.where(chosen, inputs, torch.full_like(inputs, -100))
    roll = torch.rand(inputs.shape, generator=generator)
    to_mask = chosen & (roll < 0.8)
    to_random = chosen & (roll >= 0.8) & (roll < 0.9)
    inputs[to_mask] = tokenizer.mask_token_id
    random_ids = torch.randint(len(tokenizer), inputs.shape, generator=generator)
    inputs[to_random] = random_ids[to_random]
    return {"input_ids": inputs, "attention_mask": attention_mask, "labels": labels}


def pad_batch(examples: Sequence[Dict[str, Any]], pad_id: int) -> Dict[str, torch.Tensor]:
    """RETURNS (Dict[str, torch.Tensor]): input_ids and word_groups padded to the longest."""
    width = max(len(e["input_ids"]) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    groups = torch.full((len(examples), width), NO_WORD, dtype=torch.long)
    for row, e in enumerate(examples):
        ids[row, : len(e["input_ids"])] = torch.tensor(e["input_ids"])
        groups[row, : len(e["word_groups"])] = torch.tensor(e["word_groups"])
    return {"input_ids": ids, "word_groups": groups}


class WholeWordMaskCollator:
    """Pads packed sequences and masks whole words (all wordpieces of a chosen word).

    tokenizer (PreTrainedTokenizerFast): The model's tokenizer.
    mlm_probability (float): Share of words chosen.
    """

    def __init__(self, tokenizer, mlm_probability: float = 0.15, seed: int = 1) -> None:
        self.tokenizer = tokenizer
        self.mlm_probability = mlm_probability
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, examples: Sequence[Dict[str, Any]]) -> Dict[str, torch.Tensor]:
        batch = pad_batch(examples, self.tokenizer.pad_token_id)
        return mask_batch(
            batch["input_ids"],
            batch["word_groups"],
            tokenizer=self.tokenizer,
            mlm_probability=self.mlm_probability,
            generator=self.generator,
        )


class TokenMaskCollator(DataCollatorForLanguageModeling):
    """Hugging Face's masked-LM collator, fed packed sequences (word numbers dropped)."""

    def __call__(self, examples, return_tensors=None):
        return super().__call__([{"input_ids": e["input_ids"]} for e in examples], return_tensors)


def make_collator(tokenizer, *, mlm_probability: float, whole_word: bool, seed: int):
    """The training collator: whole-word, or Hugging Face's per wordpiece.

    Both mask with their own random source, seeded here, not the global one:
    a resumed run collates the batches it skips, so its masks after the
    checkpoint are those of an uninterrupted run, and the checkpoint's saved
    global state still drives dropout as it would have.
    seed (int): A seed of at least 1 (Hugging Face's collator ignores 0).
    RETURNS (Callable): The collator.
    """
    if whole_word:
        return WholeWordMaskCollator(tokenizer, mlm_probability, seed=seed)
    return TokenMaskCollator(tokenizer, mlm=True, mlm_probability=mlm_probability, seed=seed)
