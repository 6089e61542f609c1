"""spaCy's `Matcher` for patterns of lower-cased words, in time spent only where a pattern can start.

ConText's default rules are 55 token patterns over `LOWER` (a word, or `{"IN": [...]}`,
some optional with `"OP": "?"`). spaCy's `Matcher` runs every pattern's first
predicate on every token, the `IN` sets in Python, which made ConText's matcher
most of ConText's time (about 60 µs a token). Such a pattern is a finite set of word
sequences, so `LowerMatcher` expands it once and, per doc, looks only at the tokens
whose lower form starts a sequence. It returns what the `Matcher` returns, in the same
order (by end, then start, then the order the patterns were added), each match once.
Any other pattern, or an `on_match` callback, makes it hand every call to the `Matcher`.
"""

from itertools import product
from typing import Dict, List, Optional, Tuple

import numpy
from spacy.attrs import LOWER
from spacy.matcher import Matcher
from spacy.strings import get_string_id
from spacy.tokens import Doc
from spacy.vocab import Vocab

MAX_SEQUENCES = 10_000


class LowerMatcher:
    """A `spacy.matcher.Matcher` (same `add` and call) that is fast for `LOWER` word patterns."""

    def __init__(self, vocab: Vocab) -> None:
        self.matcher = Matcher(vocab)
        self.exact = True
        self._starts: Dict[int, List[Tuple[Tuple[int, ...], int, Tuple[int, int]]]] = {}
        self._count = 0

    def __len__(self) -> int:
        return len(self.matcher)

    def add(
        self, key: str, patterns: List[List[dict]], *, on_match=None, greedy: Optional[str] = None
    ) -> None:
        """Add patterns under a key, as `Matcher.add`."""
        self.matcher.add(key, patterns, on_match=on_match, greedy=greedy)
        key_id = get_string_id(key)
        for pattern in patterns:
            sequences = None if on_match is not None or greedy is not None else word_sequences(pattern)
            if sequences is None or len(sequences) > MAX_SEQUENCES:
                self.exact = False
                continue
            order = self._count
            self._count += 1
            for sequence, late in sequences:
                self._starts.setdefault(sequence[0], []).append((sequence, key_id, (late, order)))

    def __call__(self, doc: Doc) -> List[Tuple[int, int, int]]:
        """RETURNS (List[Tuple[int, int, int]]): (key, start, end) of each match, as the Matcher's."""
        if not self.exact:
            return self.matcher(doc)
        if not len(doc) or not self._starts:
            return []
        lower = doc.to_array([LOWER]).reshape(-1)
        firsts = numpy.fromiter(self._starts, dtype="uint64", count=len(self._starts))
        candidates = numpy.flatnonzero(numpy.isin(lower, firsts))
        words = lower.tolist()
        found = {}
        for i in candidates.tolist():
            for sequence, key_id, order in self._starts[words[i]]:
                end = i + len(sequence)
                if tuple(words[i:end]) == sequence:
                    match = (key_id, i, end)
                    if match not in found or found[match] > order:
                        found[match] = order
        # The Matcher reports a match when it reads its last token, or, where the match
        # left out optional tokens at its end, when it reads the token after.
        return sorted(found, key=lambda m: (m[2] + found[m][0], m[1], found[m][1]))


def word_sequences(pattern: List[dict]) -> Optional[List[Tuple[Tuple[int, ...], int]]]:
    """Every sequence of lower-cased words (as string ids) a pattern matches, or None.

    pattern (List[dict]): A Matcher pattern.
    RETURNS (Optional[List[Tuple[Tuple[int, ...], int]]]): The sequences, each with 1 where
        only leaving out the pattern's last token(s) gives it (else 0), or None where the
        pattern uses anything but `LOWER` (a string or `IN`) and `"OP": "?"`.
    """
    choices = []
    for token in pattern:
        if (
            set(token) - {"LOWER", "OP"}
            or "LOWER" not in token
            or token.get("OP", "!") not in ("!", "?", "1")
        ):
            return None
        value = token["LOWER"]
        if isinstance(value, str):
            words = [value]
        elif (
            isinstance(value, dict) and set(value) == {"IN"} and all(isinstance(v, str) for v in value["IN"])
        ):
            words = list(value["IN"])
        else:
            return None
        ids = [(get_string_id(word),) for word in dict.fromkeys(words)]
        choices.append(ids + [()] if token.get("OP") == "?" else ids)
    sequences: Dict[Tuple[int, ...], int] = {}
    for parts in product(*choices):
        sequence = sum(parts, ())
        if sequence:
            late = int(parts[-1] == ())
            sequences[sequence] = min(late, sequences.get(sequence, late))
    return sorted(sequences.items()) if sequences else None
