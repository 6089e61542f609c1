"""The custom Doc and Span attributes of spacy-clinlong's pipes, in one place.

`install_extensions` is idempotent (a `has_extension` guard per attribute), and
runs when a pipe module is imported, so `spacy.load` of a pipeline that holds
`clinlong_qa` has them before the first doc.

- `Doc._.questions` (Optional[List[str]]): the questions to answer; None.
- `Doc._.answers` (Optional[List[Optional[Span]]]): one per question, the best
  answer span or None for no answer; None until `clinlong_qa` ran. Stored in
  `doc.user_data` as token offsets and scores (plain data), so a DocBin with
  `store_user_data=True` keeps the answers.
- `Span._.score` (Optional[float]): the answer's score; None elsewhere.
- `Doc._.note_id` (Any): the note's id where the annotate command set it
  (DocBin output); None elsewhere.
"""
from typing import List, Optional

from spacy.tokens import Doc, Span

ANSWERS_KEY = "clinlong_answers"


def install_extensions() -> None:
    """Declare Doc._.questions, Doc._.answers, Doc._.note_id and Span._.score, once."""
    if not Doc.has_extension("questions"):
        Doc.set_extension("questions", default=None)
    if not Doc.has_extension("answers"):
        Doc.set_extension("answers", getter=_get_answers, setter=_set_answers)
    if not Span.has_extension("score"):
        Span.set_extension("score", default=None)
    if not Doc.has_extension("note_id"):
        Doc.set_extension("note_id", default=None)


def _get_answers(doc: Doc) -> Optional[List[Optional[Span]]]:
    stored = doc.user_data.get(ANSWERS_KEY)
    if stored is None:
        return None
    answers: List[Optional[Span]] = []
    for item in stored:
        if item is None:
            answers.append(None)
            continue
        start, end, score = item
        span = doc[int(start) : int(end)]
        # Span attributes are keyed by character offsets: the same span
        # answering two questions shows the score of the one read last.
        span._.score = None if score is None else float(score)
        answers.append(span)
    return answers


def _set_answers(doc: Doc, answers: Optional[List[Optional[Span]]]) -> None:
    if answers is None:
        doc.user_data.pop(ANSWERS_KEY, None)
        return
    stored = []
    for span in answers:
        if span is None:
            stored.append(None)
        else:
            score = span._.score
            stored.append([span.start, span.end, None if score is None else float(score)])
    doc.user_data[ANSWERS_KEY] = stored
