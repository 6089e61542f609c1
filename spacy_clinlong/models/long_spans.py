"""Whole-note spans: one window when the note fits, sentence-cut windows when not.

The windows are counted in wordpieces (what the model's budget is made of),
not in spaCy tokens. A long note is cut at sentence or line boundaries, at
token boundaries inside an over-long sentence, and only inside a token when a
single token is longer than the budget. Consecutive windows overlap by about
`overlap` wordpieces, and every token later takes its vector from the window
where it has the most context on both sides. Nothing is ever truncated.
"""

from dataclasses import dataclass
from functools import partial
from typing import List, Optional, Tuple

import numpy
from spacy.tokens import Doc
from spacy_transformers.util import registry

from .pieces import DocPieces, ragged_arange
from .types import LongSpansT, Window

_SENT_END = {".", "?", "!", ";"}


def get_long_spans(
    doc: Doc,
    pieces: DocPieces,
    max_wordpieces: int,
    *,
    overlap: int,
    min_fill: float,
) -> List[Window]:
    """Cut a doc's wordpieces into windows of at most max_wordpieces.

    doc (Doc): The doc.
    pieces (DocPieces): Its wordpieces, aligned to its tokens.
    max_wordpieces (int): The most wordpieces in a window, special tokens excluded.
    overlap (int): Wordpieces shared by consecutive windows (about; the next
        window starts at the boundary nearest below `end - overlap`).
    min_fill (float): A window ends at a boundary only if it is at least this
        full; otherwise a finer boundary is used.
    RETURNS (List[Tuple[int, int]]): Windows as [start, end) wordpiece offsets.
    """
    n_wp = pieces.n_wordpieces
    if n_wp <= max_wordpieces:
        return [(0, n_wp)]
    if overlap >= max_wordpieces * min_fill:
        raise ValueError(
            f"overlap ({overlap}) must be below max_wordpieces * min_fill ({max_wordpieces} * {min_fill})"
        )
    tok_cuts = token_cut_points(pieces)
    sent_cuts = sentence_cut_points(doc, pieces, tok_cuts)
    windows: List[Window] = []
    start = 0
    while True:
        limit = start + max_wordpieces
        if limit >= n_wp:
            windows.append((start, n_wp))
            return windows
        lowest = start + int(max_wordpieces * min_fill)
        end = _last_in(sent_cuts, lowest, limit)
        if end is None:
            end = _last_in(tok_cuts, lowest, limit)
        if end is None:
            end = limit  # one token longer than the budget: cut inside it
        windows.append((start, end))
        if overlap <= 0:
            start = end
            continue
        target = end - overlap
        nxt = _last_in(sent_cuts, max(start, target - overlap), target)
        if nxt is None:
            nxt = _last_in(tok_cuts, max(start, target - overlap), target)
        start = nxt if nxt is not None else target


def token_cut_points(pieces: DocPieces) -> numpy.ndarray:
    """Wordpiece offsets p where cutting between p-1 and p splits no token.

    pieces (DocPieces): The wordpieces of a doc.
    RETURNS (numpy.ndarray): Sorted offsets in [1, n_wordpieces).
    """
    if pieces.n_wordpieces < 2:
        return numpy.zeros((0,), dtype="int64")
    ok = pieces.last_token[:-1] < pieces.first_token[1:]
    return numpy.flatnonzero(ok) + 1


def sentence_cut_points(doc: Doc, pieces: DocPieces, tok_cuts: numpy.ndarray) -> numpy.ndarray:
    """Token cut points that also start a sentence or a line.

    Uses the doc's sentence boundaries when a component set them; otherwise
    line breaks and sentence-final punctuation, which is where clinical notes
    break (headers, list items, sentences).
    doc (Doc): The doc.
    pieces (DocPieces): Its wordpieces.
    tok_cuts (numpy.ndarray): The token cut points.
    RETURNS (numpy.ndarray): Sorted offsets, a subset of tok_cuts.
    """
    n = len(doc)
    starts = numpy.zeros((n,), dtype=bool)
    if doc.has_annotation("SENT_START"):
        for sent in doc.sents:
            starts[sent.start] = True
    for tok in doc[:-1]:
        if "\n" in tok.text or (tok.text in _SENT_END and not doc[tok.i + 1].is_space):
            starts[tok.i + 1] = True
    starts[0] = False
    if not starts.any() or tok_cuts.size == 0:
        return numpy.zeros((0,), dtype="int64")
    # The piece where a sentence starts: the first piece of its first token,
    # or of the next token that has pieces of its own.
    points = numpy.searchsorted(pieces.first_token, numpy.flatnonzero(starts), "left")
    points = numpy.unique(points)
    return points[numpy.isin(points, tok_cuts)]


def _last_in(points: numpy.ndarray, low: int, high: int) -> Optional[int]:
    """The largest point p with low < p <= high, or None."""
    i = int(numpy.searchsorted(points, high, side="right")) - 1
    if i >= 0 and points[i] > low:
        return int(points[i])
    return None


@dataclass
class WindowAlignment:
    """Where each token of a doc takes its vector from.

    align_data (numpy.ndarray): Row indices into the doc's flattened
        (n_windows * window_length, width) output, token by token.
    align_lengths (numpy.ndarray): How many rows each token has.
    """

    align_data: numpy.ndarray
    align_lengths: numpy.ndarray


def align_tokens_to_windows(
    pieces: DocPieces, windows: List[Window], *, n_prefix: int, row_length: int
) -> WindowAlignment:
    """Give each token the rows of its wordpieces in its best window.

    The best window is the one where the token has the most context on both
    sides: the largest min(left, right) distance to the window's edges. A
    token split across windows (only a token longer than the budget) takes each
    of its wordpieces from that wordpiece's best window.
    pieces (DocPieces): The doc's wordpieces.
    windows (List[Tuple[int, int]]): The doc's windows.
    n_prefix (int): Special tokens before the content (e.g. 1 for CLS).
    row_length (int): The padded length of the doc's windows.
    RETURNS (WindowAlignment): The alignment.
    """
    a = pieces.token_first_wp
    b = pieces.token_last_wp
    n_tok = a.shape[0]
    if n_tok and a[0] < 0:
        # No wordpieces at all: every token reads the first special token.
        return WindowAlignment(numpy.zeros((n_tok,), dtype="int32"), numpy.ones((n_tok,), dtype="int32"))
    ws = numpy.asarray([w[0] for w in windows], dtype="int64")
    we = numpy.asarray([w[1] for w in windows], dtype="int64")
    tok_best, tok_score = _best_window(a, b, ws, we)
    lengths = b - a + 1
    tok_rep = numpy.repeat(numpy.arange(n_tok, dtype="int64"), lengths)
    wp = numpy.repeat(a, lengths) + ragged_arange(lengths)
    win = tok_best[tok_rep]
    split = tok_score[tok_rep] < 0
    if split.any():
        wp_best, _ = _best_window(wp[split], wp[split], ws, we)
        win[split] = wp_best
    rows = win * row_length + n_prefix + (wp - ws[win])
    return WindowAlignment(rows.astype("int32"), lengths.astype("int32"))


def _best_window(
    a: numpy.ndarray, b: numpy.ndarray, ws: numpy.ndarray, we: numpy.ndarray
) -> Tuple[numpy.ndarray, numpy.ndarray]:
    """For ranges [a, b], the window holding the range with most context."""
    best = numpy.zeros(a.shape, dtype="int64")
    best_score = numpy.full(a.shape, -1, dtype="int64")
    for w in range(ws.shape[0]):
        inside = (ws[w] <= a) & (b < we[w])
        score = numpy.where(inside, numpy.minimum(a - ws[w], we[w] - 1 - b), -1)
        better = score > best_score
        best[better] = w
        best_score[better] = score[better]
    return best, best_score


def check_long_spans(get_spans: LongSpansT, max_wordpieces: int) -> None:
    """Fail at initialization, not on the first long note, when a configured
    overlap cannot fit the model's budget.

    get_spans (Callable): The configured span getter.
    max_wordpieces (int): The budget, special tokens excluded.
    """
    settings = getattr(get_spans, "keywords", {})
    overlap, min_fill = settings.get("overlap"), settings.get("min_fill")
    if overlap is not None and min_fill is not None and overlap >= max_wordpieces * min_fill:
        raise ValueError(
            f"long_spans overlap ({overlap}) must be below max_length * min_fill "
            f"({max_wordpieces} * {min_fill}): lower the overlap or raise max_length"
        )


@registry.span_getters("spacy-clinlong.long_spans.v1")
def configure_long_spans(overlap: int = 128, min_fill: float = 0.5) -> LongSpansT:
    """Whole-note spans in wordpieces, for LongTransformerModel.

    A note that fits the model's budget is one span. A longer note is cut into
    windows at sentence or line boundaries that overlap by about `overlap`
    wordpieces; each token takes its vector from the window where it has the
    most context on both sides.
    overlap (int): Wordpieces shared by consecutive windows.
    min_fill (float): How full (0 to 1) a window must be before it may end at a
        sentence boundary rather than a token boundary.
    RETURNS (Callable[[Doc, DocPieces, int], List[Tuple[int, int]]]): The getter.
    """
    if overlap < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    if not 0.0 < min_fill <= 1.0:
        raise ValueError(f"min_fill must be in (0, 1], got {min_fill}")
    return partial(get_long_spans, overlap=overlap, min_fill=min_fill)
