"""PyRuSH's sentence assembly, over marks and arrays: begins and ends into sentences, sentences into tokens.

Ports of PyRuSH 1.0's `RuSH.segToSentenceSpans` (with `fix_gap` and `trim_gap`) and of
`cpredict_split_gaps` (StaticSentencizerFun.pyx), which `clinlong_sentences` feeds
with the marks of its regular expressions (sentences.py). PyRuSH is MIT-licensed,
Copyright (c) 2020 Jianlin Shi. `pair_marks` keeps PyRuSH's loop (it runs once per
sentence); `token_starts` works on numpy arrays instead of token by token.
"""

from typing import List, Sequence, Tuple

import numpy


def _trim_gap(text: str, previous_end: int, this_begin: int):
    # PyRuSH's RuSH.trim_gap: from the first non-space to the last alphanumeric or .!?)]".
    gap = text[previous_end:this_begin]
    stripped = gap.lstrip()
    if not stripped:
        return None
    begin = len(gap) - len(stripped)
    for i in range(len(gap) - 1, begin, -1):
        char = gap[i]
        if char.isalnum() or char in '.!?)]"':
            return previous_end + begin, previous_end + i + 1
    return None


def pair_marks(
    text: str, begins: List[Tuple[int, int]], ends: List[Tuple[int, int]], *, min_sent_chars: int = 5
) -> List[List[int]]:
    """Pair begin and end marks into sentences, as PyRuSH's `RuSH.segToSentenceSpans`.

    text (str): The note.
    begins (List[Tuple[int, int]]): Begin marks (start, end), sorted.
    ends (List[Tuple[int, int]]): End marks (start, end), sorted; a sentence ends after `start`.
    min_sent_chars (int): Text between sentences longer than this is a sentence of its own.
    RETURNS (List[List[int]]): [begin, end) of each sentence.
    """
    output: List[List[int]] = []

    def fix_gap(previous_end: int, this_begin: int) -> None:
        gap = _trim_gap(text, previous_end, this_begin)
        if gap is None:
            return
        if gap[1] - gap[0] > min_sent_chars:
            output.append(list(gap))
        elif output:
            output[-1][1] = gap[1]

    st_begin = st_end = 0
    st_started = False
    j = 0
    n_begins, n_ends = len(begins), len(ends)
    for i in range(n_begins):
        token_begin = begins[i][0]
        if not st_started:
            st_begin = token_begin
            if st_begin < st_end:
                continue
            st_started = True
        elif token_begin < st_end:
            continue
        if output and st_begin > output[-1][1]:
            fix_gap(output[-1][1], st_begin)
        elif not output and st_begin > 0:
            fix_gap(0, st_begin)
        for k in range(j, n_ends):
            if i < n_begins - 1 and k < n_ends - 1 and begins[i + 1][0] < ends[k][0] + 1:
                break
            st_end = ends[k][0] + 1
            j = k
            while st_end >= 1 and (text[st_end - 1].isspace() or text[st_end - 1] == "\xa0"):
                st_end -= 1
            if st_end < st_begin:
                continue
            elif st_started:
                output.append([st_begin, st_end])
                st_started = False
                if i == n_begins - 1 or (k < n_ends - 1 and begins[i + 1][0] > ends[k + 1][1]):
                    continue
                break
            else:
                output[-1] = [st_begin, st_end]
                st_started = False
    if output:
        gap = _trim_gap(text, 0, output[0][0])
        if gap is not None:
            if ends and output[0][0] <= ends[0][0]:
                output[0][0] = gap[0]
            else:
                output.insert(0, list(gap))
        gap = _trim_gap(text, output[-1][1], len(text))
        if gap is not None:
            if gap[1] - gap[0] > min_sent_chars:
                output.append(list(gap))
            else:
                output[-1][1] = gap[1]
    else:
        gap = _trim_gap(text, 0, len(text))
        if gap is not None and gap[1] - gap[0] > min_sent_chars:
            output.append(list(gap))
    return output


def token_starts(
    idx: numpy.ndarray, is_space: numpy.ndarray, spans: Sequence[Sequence[int]]
) -> numpy.ndarray:
    """Map sentence spans to token starts, as PyRuSH's `cpredict_split_gaps`.

    A token starts a sentence where a span begins at it; the token after a span's last
    token starts one; so does the first whitespace token (else the first token) of the
    text between two spans, and every whitespace token after the last span.

    idx (numpy.ndarray): Each token's character offset.
    is_space (numpy.ndarray): Whether each token is whitespace.
    spans (Sequence[Sequence[int]]): [begin, end) of each sentence, in order.
    RETURNS (numpy.ndarray): One bool per token.
    """
    n = len(idx)
    starts = numpy.zeros(n, dtype=bool)
    if not n or not len(spans):
        return starts
    bounds = numpy.asarray(spans, dtype="int64")
    begins, ends = bounds[:, 0], bounds[:, 1]
    at = numpy.searchsorted(idx, begins, side="left")
    exact = at < n
    exact[exact] = idx[at[exact]] == begins[exact]
    starts[at[exact]] = True
    # The token after each span's last token (a token in the span: idx in [begin, end)).
    after = numpy.searchsorted(idx, ends, side="left")
    has_token = (after > at) & (after < n)
    starts[after[has_token]] = True
    # The text between spans: its first whitespace token, else its first token.
    gap_lo, gap_hi = after[:-1], numpy.searchsorted(idx, begins[1:], side="left")
    space_positions = numpy.flatnonzero(is_space)
    first_space = numpy.searchsorted(space_positions, gap_lo, side="left")
    for lo, hi, s in zip(gap_lo.tolist(), gap_hi.tolist(), first_space.tolist()):
        if lo < hi:
            if s < len(space_positions) and space_positions[s] < hi:
                starts[space_positions[s]] = True
            else:
                starts[lo] = True
    tail = after[-1]
    starts[tail:] |= is_space[tail:]
    return starts
