"""The custom Doc and Span attributes of spacy-clinlong's pipes, in one place.

`install_extensions` is idempotent (a `has_extension` guard per attribute), and
runs when a pipe module is imported, so `spacy.load` of a pipeline that holds
`clinlong_qa` has them before the first doc. An attribute of the same name that
another package declared differently is never reused silently: `clinlong_qa`
(and annotate) refuse it with a ValueError naming it.

- `Doc._.questions` (Optional[List[str]]): the questions to answer; None.
- `Doc._.answers` (Optional[List[Optional[Span]]]): one per question, the best
  answer span or None for no answer; None until `clinlong_qa` ran. A Span is
  made of whole tokens: an answer that starts or ends inside a token is
  widened to the tokens it touches (`doc.char_span(..., alignment_mode="expand")`),
  and its exact characters are kept in the two attributes below. Stored in
  `doc.user_data` as token offsets, score and character offsets (plain data),
  so a DocBin with `store_user_data=True` keeps the answers. Setting
  `doc._.answers` to Spans makes each Span's own text the answer;
  `store_answers` sets answers with exact characters, as `clinlong_qa` does.
- `Span._.score` (Optional[float]): the answer's score; None elsewhere.
- `Span._.clinlong_answer_text` (Optional[str]): the answer exactly as the
  model read it, which may be part of the span's first or last token; None
  elsewhere.
- `Span._.clinlong_answer_chars` (Optional[Tuple[int, int]]): the [start, end)
  character offsets of that text in the doc; None elsewhere.
- `Doc._.note_id` (Any): the note's id where the annotate command set it
  (DocBin output); None elsewhere.
"""

from typing import List, Optional, Sequence, Tuple

from spacy.tokens import Doc, Span

ANSWERS_KEY = "clinlong_answers"
# Per answer: token start, token end, score, character start, character end.
StoredAnswer = Optional[Tuple[int, int, Optional[float], int, int]]


def install_extensions(*, check: bool = True) -> None:
    """Declare the Doc and Span attributes of the pipes, once.

    check (bool): Raise ValueError if another package declared one of these
        names with another default, getter, setter or method (the pipes would
        read and write that package's attribute instead of their own). False
        (at import) only declares what is missing: a pipeline without
        clinlong_qa never fails for a name only clinlong_qa needs.
    """
    for cls, name, spec in _declarations():
        if not cls.has_extension(name):
            cls.set_extension(name, **spec)
            continue
        if not check:
            continue
        default, method, getter, setter = cls.get_extension(name)
        ours = (spec.get("default"), None, spec.get("getter"), spec.get("setter"))
        if (default, method, getter, setter) != ours:
            raise ValueError(
                f"{cls.__name__}._.{name} is already declared by another package, "
                "differently from spacy-clinlong's; spacy-clinlong cannot share it "
                f"(check with {cls.__name__}.get_extension({name!r}))."
            )


def _declarations():
    return (
        (Doc, "questions", {"default": None}),
        (Doc, "answers", {"getter": _get_answers, "setter": _set_answers}),
        (Span, "score", {"default": None}),
        (Span, "clinlong_answer_text", {"default": None}),
        (Span, "clinlong_answer_chars", {"default": None}),
        (Doc, "note_id", {"default": None}),
    )


def store_answers(doc: Doc, answers: Sequence[StoredAnswer]) -> None:
    """Set `doc._.answers` from plain data, one item per question.

    Span attributes are shared by every span with the same character offsets,
    so two questions whose answers widen to the same tokens would overwrite
    each other's exact text there: the component stores its answers here.
    doc (Doc): The doc.
    answers (Sequence[StoredAnswer]): Per question None, or (token start,
        token end, score, character start, character end).
    """
    doc.user_data[ANSWERS_KEY] = [
        None
        if a is None
        else [int(a[0]), int(a[1]), None if a[2] is None else float(a[2]), int(a[3]), int(a[4])]
        for a in answers
    ]


def answer_texts(doc: Doc) -> Optional[List[Optional[str]]]:
    """The exact answer text of each question (None for no answer).

    doc (Doc): A doc `clinlong_qa` annotated.
    RETURNS (Optional[List[Optional[str]]]): One per question; None when the
        doc has no answers.
    """
    stored = doc.user_data.get(ANSWERS_KEY)
    if stored is None:
        return None
    return [None if item is None else doc.text[slice(*_chars(doc, item))] for item in stored]


def answer_entries(doc: Doc) -> Optional[List[Optional[Tuple[int, int, Optional[float]]]]]:
    """Each question's answer as its exact characters and score.

    doc (Doc): A doc `clinlong_qa` annotated.
    RETURNS (Optional[List[Optional[Tuple[int, int, Optional[float]]]]]): One
        (start_char, end_char, score) per question (None for no answer); None
        when the doc has no answers.
    """
    stored = doc.user_data.get(ANSWERS_KEY)
    if stored is None:
        return None
    return [
        None if item is None else (*_chars(doc, item), None if item[2] is None else float(item[2]))
        for item in stored
    ]


def _chars(doc: Doc, item) -> Tuple[int, int]:
    if len(item) >= 5:
        return int(item[3]), int(item[4])
    # Stored before answers kept their characters: the tokens' characters.
    span = doc[int(item[0]) : int(item[1])]
    return span.start_char, span.end_char


def _get_answers(doc: Doc) -> Optional[List[Optional[Span]]]:
    stored = doc.user_data.get(ANSWERS_KEY)
    if stored is None:
        return None
    answers: List[Optional[Span]] = []
    for item in stored:
        if item is None:
            answers.append(None)
            continue
        start, end, score = item[:3]
        span = doc[int(start) : int(end)]
        # Span attributes are keyed by character offsets: the same span
        # answering two questions shows the values of the one read last
        # (answer_texts reads each question's own).
        span._.score = None if score is None else float(score)
        chars = _chars(doc, item)
        span._.clinlong_answer_chars = chars
        span._.clinlong_answer_text = doc.text[slice(*chars)]
        answers.append(span)
    return answers


def _set_answers(doc: Doc, answers: Optional[List[Optional[Span]]]) -> None:
    if answers is None:
        doc.user_data.pop(ANSWERS_KEY, None)
        return
    stored: List[StoredAnswer] = []
    for span in answers:
        if span is None:
            stored.append(None)
            continue
        # The Span itself is the answer: its clinlong_answer_chars may be left
        # over from another question answered on the same tokens.
        stored.append((span.start, span.end, span._.score, span.start_char, span.end_char))
    store_answers(doc, stored)
