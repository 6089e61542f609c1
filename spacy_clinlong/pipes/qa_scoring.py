"""Scoring for `clinlong_qa`: answer spans against gold and logits, and SQuAD 2.0 EM/F1.

`window_targets` turns gold answers (characters) into each window's training
target (the wordpieces covering them) and loss weight; `decode` ranks the
candidate answers of each question (start + end logit, across windows)
against its null score. The metrics are the official SQuAD evaluation
script's: normalization lowers case and strips punctuation, the articles
a/an/the and extra whitespace; a question without a gold answer is right
(EM 1, F1 1) exactly when no answer is predicted. The predicted text is the
answer's exact characters (`span._.clinlong_answer_text`), not the
token-widened Span's.
"""

import collections
import re
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Tuple

import numpy
from spacy.training import Example
from spacy.util import registry

if TYPE_CHECKING:  # pragma: no cover
    from ..models.qa_model import NotePieces, PairWindow, QAOutput

GOLD_KEY = "clinlong_qa"

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace.

    text (str): An answer.
    RETURNS (str): The normalized answer.
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(gold: str, pred: str) -> float:
    """1.0 when the normalized answers are equal, else 0.0."""
    return float(normalize_answer(gold) == normalize_answer(pred))


def token_f1(gold: str, pred: str) -> float:
    """Token-overlap F1 of two answers; 1.0 if both are empty, 0.0 if one is.

    gold (str): The gold answer ("" for no answer).
    pred (str): The predicted answer ("" for no answer).
    RETURNS (float): The F1.
    """
    gold_toks = normalize_answer(gold).split()
    pred_toks = normalize_answer(pred).split()
    if not gold_toks or not pred_toks:
        return float(gold_toks == pred_toks)
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_toks)
    recall = same / len(gold_toks)
    return 2 * precision * recall / (precision + recall)


def score_answer(golds: List[str], pred: Optional[str]) -> Dict[str, float]:
    """Best EM and F1 of a prediction over the gold answers.

    golds (List[str]): Gold answer texts; empty for an impossible question.
    pred (Optional[str]): The predicted answer text; None for no answer.
    RETURNS (Dict[str, float]): {"exact": ..., "f1": ...}.
    """
    golds = [g for g in golds if normalize_answer(g)] or [""]
    pred = pred or ""
    return {
        "exact": max(exact_match(g, pred) for g in golds),
        "f1": max(token_f1(g, pred) for g in golds),
    }


def qa_score(examples: Iterable[Example], **kwargs: Any) -> Dict[str, Optional[float]]:
    """SQuAD 2.0 EM and F1 of `doc._.answers` against the reference QA gold.

    Gold is `example.reference.user_data["clinlong_qa"]` (SQuAD-style dicts
    with "question" and "answers"); predictions are matched to gold questions
    by their text in `example.predicted._.questions`.
    examples (Iterable[Example]): The examples.
    RETURNS (Dict[str, Optional[float]]): qa_exact and qa_f1 (0 to 1), None
        when no example has QA gold.
    """
    exact: List[float] = []
    f1: List[float] = []
    for eg in examples:
        gold = eg.reference.user_data.get(GOLD_KEY)
        if not gold:
            continue
        predicted = _predicted_answers(eg)
        for qa in gold:
            golds = [a["text"] for a in qa.get("answers") or []]
            if qa.get("is_impossible"):
                golds = []
            result = score_answer(golds, predicted.get(qa.get("question", "")))
            exact.append(result["exact"])
            f1.append(result["f1"])
    if not exact:
        return {"qa_exact": None, "qa_f1": None}
    return {"qa_exact": sum(exact) / len(exact), "qa_f1": sum(f1) / len(f1)}


def _predicted_answers(eg: Example) -> Dict[str, Optional[str]]:
    """Question -> the exact predicted answer text (not the token-widened Span's)."""
    from .extensions import answer_texts

    doc = eg.predicted
    questions = doc._.questions if doc.has_extension("questions") else None
    texts = answer_texts(doc)
    if not questions or texts is None:
        return {}
    return dict(zip(questions, texts))


def gold_chars(text: str, qa: Dict[str, Any]) -> List[Tuple[int, int]]:
    """The [start, end) characters of a gold question's answers, in gold order.

    Whitespace around an answer is left out (predictions leave it out too);
    an answer whose offsets fall outside the text is skipped.
    text (str): The note.
    qa (Dict[str, Any]): A SQuAD-style gold question.
    RETURNS (List[Tuple[int, int]]): Empty for an impossible question.
    """
    if qa.get("is_impossible"):
        return []
    spans = []
    for answer in qa.get("answers") or []:
        start = int(answer.get("answer_start", -1))
        end = start + len(answer.get("text") or "")
        if start < 0 or end > len(text):
            continue
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            spans.append((start, end))
    return spans


def window_targets(
    windows: List["PairWindow"], pieces: List["NotePieces"], golds: List[List[Tuple[int, int]]]
) -> List[Tuple[int, int, float]]:
    """Each window's target row positions (start, end) and loss weight.

    The target is the wordpieces covering the first gold answer that lies
    whole inside the window's note part, else (0, 0), the CLS position. The
    weights make every question weigh the same (see `LongQA.get_loss`).
    windows (List[PairWindow]): The windows, grouped by query.
    pieces (List[NotePieces]): The note wordpieces of each query.
    golds (List[List[Tuple[int, int]]]): Per query its answers' characters.
    RETURNS (List[Tuple[int, int, float]]): Per window start row, end row, weight.
    """
    answer_pieces = [
        [wp for wp in (pieces[qi].char_span_pieces(s, e) for s, e in golds[qi]) if wp is not None]
        for qi in range(len(golds))
    ]
    rows = []
    for window in windows:
        rows.append((0, 0))
        for first, last in answer_pieces[window.query]:
            if window.start <= first and last < window.end:
                rows[-1] = (window.offset + first - window.start, window.offset + last - window.start)
                break
    kinds: Dict[Tuple[int, bool], int] = {}
    for window, row in zip(windows, rows):
        key = (window.query, row != (0, 0))
        kinds[key] = kinds.get(key, 0) + 1
    n_queries = len({w.query for w in windows})
    targets = []
    for window, row in zip(windows, rows):
        n_kind = kinds[(window.query, row != (0, 0))]
        both = (window.query, True) in kinds and (window.query, False) in kinds
        weight = (0.5 if both else 1.0) / n_kind / n_queries
        targets.append((row[0], row[1], weight))
    return targets


@dataclass
class Candidate:
    """An answer candidate: characters [start_char, end_char) of the note and its score."""

    start_char: int
    end_char: int
    score: float


def decode(
    output: "QAOutput",
    n_queries: int,
    *,
    max_answer_length: int,
    n_best: int = 20,
) -> List[Tuple[Optional[float], List[Candidate]]]:
    """The null score and the ranked answer candidates of each query.

    Logits are compared across windows as they are (SQuAD 2.0 practice): a
    candidate is the best-scoring (start + end logit) occurrence of a
    wordpiece span over all windows; it must lie inside one window's note part
    and span at most max_answer_length wordpieces. Its characters are those of
    its wordpieces (the tokenizer's offsets) with surrounding whitespace
    stripped, so it may start or end inside a spaCy token. The null score is
    the smallest CLS score (start + end logit at position 0) over the query's
    windows: the window that reads the answer decides.
    output (QAOutput): The model output.
    n_queries (int): Number of queries.
    max_answer_length (int): The longest answer, in wordpieces.
    n_best (int): Start and end positions tried per window.
    RETURNS (List[Tuple[Optional[float], List[Candidate]]]): Per query the null
        score (None without windows) and candidates, best first.
    """
    nulls: List[Optional[float]] = [None] * n_queries
    found: List[Dict[Tuple[int, int], float]] = [{} for _ in range(n_queries)]
    for window, logits in zip(output.windows, output.logits):
        qi = window.query
        null = float(logits[0, 0] + logits[0, 1])
        nulls[qi] = null if nulls[qi] is None else min(nulls[qi], null)
        n_note = window.end - window.start
        note = logits[window.offset : window.offset + n_note]
        k = min(n_best, n_note)
        starts = numpy.argsort(-note[:, 0], kind="stable")[:k]
        ends = numpy.argsort(-note[:, 1], kind="stable")[:k]
        pieces = output.pieces[qi]
        for s in starts:
            for e in ends:
                if e < s or e - s + 1 > max_answer_length:
                    continue
                key = _strip(pieces, window.start + int(s), window.start + int(e))
                score = float(note[s, 0] + note[e, 1])
                if key is not None and score > found[qi].get(key, -numpy.inf):
                    found[qi][key] = score
    results = []
    for qi in range(n_queries):
        ranked = sorted(found[qi].items(), key=lambda kv: (-kv[1], kv[0]))
        results.append((nulls[qi], [Candidate(s, e, score) for (s, e), score in ranked]))
    return results


def _strip(pieces: "NotePieces", first: int, last: int) -> Optional[Tuple[int, int]]:
    """Characters of wordpieces first..last, without surrounding whitespace; None if blank."""
    text = pieces.text
    start, end = int(pieces.char_offsets[first, 0]), int(pieces.char_offsets[last, 1])
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if end > start else None


@registry.scorers("spacy-clinlong.qa_scorer.v1")
def make_qa_scorer() -> Callable[..., Dict[str, Optional[float]]]:
    """The SQuAD 2.0 scorer of `clinlong_qa` (qa_exact, qa_f1).

    RETURNS (Callable): qa_score.
    """
    return qa_score
