"""SQuAD 2.0 exact match and token F1 for `clinlong_qa`.

Normalization is the official SQuAD evaluation script's: lower case, strip
punctuation, the articles a/an/the and extra whitespace. A question without a
gold answer is right (EM 1, F1 1) exactly when no answer is predicted.
"""
import collections
import re
import string
from typing import Any, Callable, Dict, Iterable, List, Optional

from spacy.training import Example
from spacy.util import registry

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
    doc = eg.predicted
    questions = doc._.questions if doc.has_extension("questions") else None
    answers = doc._.answers if doc.has_extension("answers") else None
    if not questions or answers is None:
        return {}
    return {
        q: (None if span is None else span.text)
        for q, span in zip(questions, answers)
    }


@registry.scorers("spacy-clinlong.qa_scorer.v1")
def make_qa_scorer() -> Callable[..., Dict[str, Optional[float]]]:
    """The SQuAD 2.0 scorer of `clinlong_qa` (qa_exact, qa_f1).

    RETURNS (Callable): qa_score.
    """
    return qa_score
