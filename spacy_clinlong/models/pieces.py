"""Wordpieces of whole notes, aligned to spaCy tokens.

A note is tokenized once, as one text, by the Hugging Face fast tokenizer
(exactly as a user calling the tokenizer on the note would), and each
wordpiece is mapped to the spaCy tokens its characters overlap. Windows are
then cut out of this one wordpiece sequence, so a long note costs one
tokenizer call, and a window's wordpieces are the note's own wordpieces.
"""

from dataclasses import dataclass
from typing import List, Sequence

import numpy
from spacy.tokens import Doc


@dataclass
class DocPieces:
    """The wordpieces of one Doc and their alignment to its tokens.

    ids (numpy.ndarray): Wordpiece ids of the whole text, no special tokens.
    first_token (numpy.ndarray): For each wordpiece, the first token it overlaps.
    last_token (numpy.ndarray): For each wordpiece, the last token it overlaps.
    token_first_wp (numpy.ndarray): For each token, its first wordpiece.
    token_last_wp (numpy.ndarray): For each token, its last wordpiece
        (inclusive). A token the tokenizer produced nothing for (whitespace, a
        dropped control character) borrows the nearest wordpiece: the one
        before it, else the one after it. Both are -1 when the note has no
        wordpieces at all.
    """

    ids: numpy.ndarray
    first_token: numpy.ndarray
    last_token: numpy.ndarray
    token_first_wp: numpy.ndarray
    token_last_wp: numpy.ndarray

    @property
    def n_wordpieces(self) -> int:
        return int(self.ids.shape[0])

    @property
    def n_tokens(self) -> int:
        return int(self.token_first_wp.shape[0])


def tokenize_docs(tokenizer, docs: Sequence[Doc]) -> List[DocPieces]:
    """Tokenize whole docs into wordpieces aligned to their spaCy tokens.

    tokenizer (PreTrainedTokenizerFast): A fast Hugging Face tokenizer.
    docs (Sequence[Doc]): The docs.
    RETURNS (List[DocPieces]): One alignment per doc.
    """
    texts = [doc.text for doc in docs]
    if not texts:
        return []
    enc = tokenizer(
        texts,
        add_special_tokens=False,
        return_offsets_mapping=True,
        return_attention_mask=False,
        return_token_type_ids=False,
        verbose=False,
    )
    return [align_pieces(doc, enc["input_ids"][i], enc["offset_mapping"][i]) for i, doc in enumerate(docs)]


def align_pieces(doc: Doc, ids: Sequence[int], offsets: Sequence) -> DocPieces:
    """Map wordpieces, given by their character offsets, to the tokens of doc.

    doc (Doc): The doc.
    ids (Sequence[int]): Wordpiece ids.
    offsets (Sequence[Tuple[int, int]]): Character offsets of each wordpiece.
    RETURNS (DocPieces): The alignment.
    """
    n_tok = len(doc)
    ids_arr = numpy.asarray(ids, dtype="int64").reshape(-1)
    n_wp = ids_arr.shape[0]
    tok_start = numpy.fromiter((t.idx for t in doc), dtype="int64", count=n_tok)
    tok_len = numpy.fromiter((len(t) for t in doc), dtype="int64", count=n_tok)
    tok_end = tok_start + tok_len
    if n_wp == 0 or n_tok == 0:
        empty = numpy.zeros((0,), dtype="int64")
        none = numpy.full((n_tok,), -1, dtype="int64")
        return DocPieces(ids_arr[:0], empty, empty, none, none.copy())
    off = numpy.asarray(offsets, dtype="int64").reshape(n_wp, 2)
    starts = off[:, 0]
    # A zero-width piece (some byte-level pieces) still belongs where it stands.
    ends = numpy.maximum(off[:, 1], starts + 1)
    # First token whose end is past the piece's start; last token starting
    # before the piece's end. A piece over whitespace only falls between two
    # tokens (first > last): give it to the token that follows.
    first = numpy.searchsorted(tok_end, starts, side="right")
    last = numpy.searchsorted(tok_start, ends, side="left") - 1
    first = numpy.minimum(first, n_tok - 1)
    gap = first > last
    last = numpy.where(gap, first, last)
    # Pieces come in text order, so the first and last piece of each token
    # are a running min/max; numpy.minimum.at keeps it vectorised even when
    # one piece covers several tokens (a piece spanning "do" + "n't").
    counts = last - first + 1
    wp_index = numpy.repeat(numpy.arange(n_wp, dtype="int64"), counts)
    tok_index = numpy.repeat(first, counts) + ragged_arange(counts)
    tok_first = numpy.full((n_tok,), n_wp, dtype="int64")
    tok_last = numpy.full((n_tok,), -1, dtype="int64")
    numpy.minimum.at(tok_first, tok_index, wp_index)
    numpy.maximum.at(tok_last, tok_index, wp_index)
    missing = tok_last < 0
    if missing.any():
        # Borrow the nearest piece: the last piece of any earlier token, else
        # the first piece of a later one.
        prev_last = numpy.maximum.accumulate(tok_last)
        next_first = numpy.minimum.accumulate(tok_first[::-1])[::-1]
        borrow = numpy.where(prev_last >= 0, prev_last, next_first)
        tok_first = numpy.where(missing, borrow, tok_first)
        tok_last = numpy.where(missing, borrow, tok_last)
    return DocPieces(ids_arr, first, last, tok_first, tok_last)


def ragged_arange(counts: numpy.ndarray) -> numpy.ndarray:
    """Concatenated aranges: counts [2, 1, 3] gives [0, 1, 0, 0, 1, 2]."""
    total = int(counts.sum())
    if total == 0:
        return numpy.zeros((0,), dtype="int64")
    offsets = numpy.repeat(numpy.cumsum(counts) - counts, counts)
    return numpy.arange(total, dtype="int64") - offsets
