"""Trivial QA baselines, and QA scores by the answer's distance from its section header.

Every head is measured against the simplest thing that could work, scored
exactly as `clinlong_qa` is (SQuAD 2.0 EM/F1 through `qa_scoring.score_answer`,
the official normalization):

- "no_answer": never answers. It scores the share of unanswerable questions
  (about a quarter of the synthetic ones), so a QA model at that score has
  learned nothing but to abstain.
- "sentence_overlap": the sentence that shares the most question words with
  the question, its whole text as the answer; no answer when it shares none.
  Sentences are `doc.sents` when a component set them, else lines cut after
  sentence-final punctuation (how clinical notes break). Words are the
  SQuAD-normalized words without English stop words, each weighted by its
  rarity among the note's sentences (idf); ties go to the earlier sentence.

In the synthetic notes the dose a patient was discharged on differs from the
admission dose of the same drug only by the section it sits in, so a reader
must connect an answer to a header that may lie far above it.
`header_distance` gives, per gold question, the distance of its (first) answer
from the start of its section, the header line: in spaCy tokens by default,
in wordpieces with a tokenizer. `scores_by_distance` buckets per-question
scores by it (near <= 64 < mid <= 128 < far tokens, as `long_range` does for
entities), for baselines and for a pipeline alike.
"""

import math
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

from spacy.lang.en.stop_words import STOP_WORDS
from spacy.language import Language
from spacy.tokens import Doc, Span

from ..pipes.extensions import answer_texts
from ..pipes.qa_scoring import GOLD_KEY, normalize_answer, score_answer
from .long_range import BEYOND, bucket_of

AnswerFn = Callable[[Doc, str], Optional[str]]
_SENT_END = {".", "?", "!", ";"}


def no_answer(doc: Doc, question: str) -> Optional[str]:
    """The "no_answer" baseline: never answers.

    doc (Doc): The note.
    question (str): The question.
    RETURNS (Optional[str]): None.
    """
    return None


def sentence_overlap(doc: Doc, question: str) -> Optional[str]:
    """The "sentence_overlap" baseline: the sentence sharing the most question words.

    doc (Doc): The note.
    question (str): The question.
    RETURNS (Optional[str]): The sentence's text, or None when no sentence
        shares a word with the question.
    """
    wanted = _words(question)
    sents = [(sent, _words(sent.text)) for sent in note_sentences(doc)]
    if not wanted or not sents:
        return None
    df: Dict[str, int] = {}
    for _, words in sents:
        for word in words & wanted:
            df[word] = df.get(word, 0) + 1
    best, best_score = None, 0.0
    for sent, words in sents:
        shared = words & wanted
        # log(n / df) + 1: a word in every sentence still counts a little.
        score = sum(math.log(len(sents) / df[w]) + 1.0 for w in shared)
        if score > best_score:
            best, best_score = sent, score
    return None if best is None else best.text.strip()


BASELINES: Dict[str, AnswerFn] = {"no_answer": no_answer, "sentence_overlap": sentence_overlap}


def note_sentences(doc: Doc) -> List[Span]:
    """The note's sentences: `doc.sents` when set, else lines cut after . ? ! ;

    A list item's number ("1.") stays with its item.

    doc (Doc): The note.
    RETURNS (List[Span]): Sentences without leading or trailing whitespace tokens.
    """
    if doc.has_annotation("SENT_START"):
        spans = list(doc.sents)
    else:
        spans, start = [], 0
        for tok in doc:
            ends_line = "\n" in tok.text
            ends_sent = (
                tok.text in _SENT_END
                and (bool(tok.whitespace_) or tok.i + 1 == len(doc) or doc[tok.i + 1].is_space)
                # "1." numbering a list item ends nothing
                and not (tok.i == start + 1 and doc[start].like_num)
            )
            if ends_line or ends_sent:
                spans.append(doc[start : tok.i + 1])
                start = tok.i + 1
        spans.append(doc[start:])
    out = []
    for span in spans:
        start, end = span.start, span.end
        while start < end and doc[start].is_space:
            start += 1
        while end > start and doc[end - 1].is_space:
            end -= 1
        if end > start:
            out.append(doc[start:end])
    return out


def header_distance(doc: Doc, qa: Dict[str, Any], *, tokenizer: Any = None) -> Optional[int]:
    """How far a gold question's first answer lies from the start of its section.

    The section is the `doc.spans["sections"]` span holding the answer's
    first character; its first token is the header ("DISCHARGE MEDICATIONS:").
    doc (Doc): The gold doc, with labelled sections (`synth` writes them).
    qa (Dict[str, Any]): A SQuAD-style gold question of the doc.
    tokenizer (Any): A Hugging Face tokenizer to count wordpieces; None to
        count spaCy tokens.
    RETURNS (Optional[int]): spaCy tokens (or wordpieces) from the section's
        first token to the answer's first token; None for an impossible
        question, a doc without sections, or an answer outside every section.
    """
    answers = qa.get("answers") or []
    if qa.get("is_impossible") or not answers or "sections" not in doc.spans:
        return None
    start = int(answers[0].get("answer_start", -1))
    end = start + len(answers[0].get("text") or "")
    span = doc.char_span(start, end, alignment_mode="expand") if 0 <= start < end <= len(doc.text) else None
    if span is None:
        return None
    section = next((s for s in doc.spans["sections"] if s.start <= span.start < s.end), None)
    if section is None:
        return None
    if tokenizer is None:
        return span.start - section.start
    text = doc.text[section.start_char : start]
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def question_scores(
    docs: Iterable[Doc],
    answers: Optional[Sequence[Sequence[Optional[str]]]] = None,
    *,
    answer_fn: Optional[AnswerFn] = None,
    tokenizer: Any = None,
) -> List[Dict[str, Any]]:
    """SQuAD EM and F1 of every gold question, with its header distance.

    Give either the predicted answers (per doc, one per gold question, in
    gold order; e.g. from `pipeline_answers`) or an answer function (a baseline).
    docs (Iterable[Doc]): Gold docs with QA gold in `doc.user_data["clinlong_qa"]`.
    answers (Optional[Sequence[Sequence[Optional[str]]]]): Predicted answer texts.
    answer_fn (Optional[Callable[[Doc, str], Optional[str]]]): Or: answers a question.
    tokenizer (Any): Count header distances in its wordpieces (None: spaCy tokens).
    RETURNS (List[Dict[str, Any]]): Per question "id", "exact", "f1",
        "impossible" and "distance" (None where `header_distance` is).
    """
    if (answers is None) == (answer_fn is None):
        raise ValueError("Give either answers or answer_fn")
    rows = []
    for i, doc in enumerate(docs):
        gold = list(doc.user_data.get(GOLD_KEY) or [])
        predicted = answers[i] if answers is not None else None
        if predicted is not None and len(predicted) != len(gold):
            raise ValueError(f"Doc {i}: {len(predicted)} answers for {len(gold)} gold questions")
        for j, qa in enumerate(gold):
            question = qa.get("question") or ""
            pred = predicted[j] if predicted is not None else answer_fn(doc, question)  # type: ignore[misc]
            golds = [] if qa.get("is_impossible") else [a["text"] for a in qa.get("answers") or []]
            result = score_answer(golds, pred)
            rows.append(
                {
                    "id": qa.get("id"),
                    "exact": result["exact"],
                    "f1": result["f1"],
                    "impossible": not golds,
                    "distance": header_distance(doc, qa, tokenizer=tokenizer),
                }
            )
    return rows


def summarize(rows: Sequence[Dict[str, Any]]) -> Dict[str, Optional[float]]:
    """RETURNS (Dict[str, Optional[float]]): qa_exact and qa_f1 over the rows (None if none)."""
    if not rows:
        return {"qa_exact": None, "qa_f1": None}
    return {
        "qa_exact": sum(r["exact"] for r in rows) / len(rows),
        "qa_f1": sum(r["f1"] for r in rows) / len(rows),
    }


def baseline_scores(docs: Sequence[Doc], baselines: Optional[Dict[str, AnswerFn]] = None) -> Dict[str, Dict]:
    """Each baseline's SQuAD 2.0 EM and F1 over the docs' gold questions.

    docs (Sequence[Doc]): Gold docs with QA gold in `doc.user_data["clinlong_qa"]`.
    baselines (Optional[Dict[str, Callable]]): Name -> answer function; None for BASELINES.
    RETURNS (Dict[str, Dict]): Name -> {"qa_exact", "qa_f1"} (0 to 1).
    """
    baselines = BASELINES if baselines is None else baselines
    return {name: summarize(question_scores(docs, answer_fn=fn)) for name, fn in baselines.items()}


def scores_by_distance(rows: Sequence[Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """Bucket per-question scores by the answer's distance from its section header.

    rows (Sequence[Dict[str, Any]]): From `question_scores`.
    RETURNS (Dict[str, Dict[str, Any]]): Bucket -> {"qa_exact", "qa_f1", "n"}:
        "near", "mid", "far" (`long_range.bucket_of`; with wordpiece distances
        the same bounds are counted in wordpieces), ">256" (the far ones beyond
        256, counted once more), "unanswerable", and "no section" (answers
        without a section to measure from).
    """
    buckets: Dict[str, List[Dict[str, Any]]] = {}
    for row in rows:
        if row["impossible"]:
            keys = ["unanswerable"]
        elif row["distance"] is None:
            keys = ["no section"]
        else:
            keys = [bucket_of(row["distance"])] + ([f">{BEYOND}"] if row["distance"] > BEYOND else [])
        for key in keys:
            buckets.setdefault(key, []).append(row)
    return {key: {**summarize(part), "n": len(part)} for key, part in buckets.items()}


def pipeline_answers(nlp: Language, docs: Sequence[Doc], *, batch_size: int = 8) -> List[List[Optional[str]]]:
    """Ask a pipeline with `clinlong_qa` each gold doc's gold questions.

    nlp (Language): The pipeline.
    docs (Sequence[Doc]): Gold docs with QA gold in `doc.user_data["clinlong_qa"]`.
    batch_size (int): Docs per `nlp.pipe` batch.
    RETURNS (List[List[Optional[str]]]): Per doc, the exact answer text of each
        gold question (None for no answer), for `question_scores`.
    """
    asked = []
    for doc in docs:
        new = nlp.make_doc(doc.text)
        new._.questions = [qa.get("question") or "" for qa in doc.user_data.get(GOLD_KEY) or []]
        asked.append(new)
    return [answer_texts(doc) or [] for doc in nlp.pipe(asked, batch_size=batch_size)]


def _words(text: str) -> set:
    return {w for w in normalize_answer(text).split() if w not in STOP_WORDS}
