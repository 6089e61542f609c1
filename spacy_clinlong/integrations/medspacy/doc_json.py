"""A JSON view of an annotated doc: what the annotate command writes, one line per note.

`doc_to_json(doc, note_id=...)` gives plain data (str, int, float, bool,
None, lists and dicts) for whatever ran: entities with character offsets,
label, ConText flags and section (once medspaCy's components ran), note
labels (`doc.cats`), and answers to `doc._.questions`.
"""

from typing import Any, Dict, List, Optional

from spacy.tokens import Doc, Span

from ...pipes.extensions import answer_entries

CONTEXT_FLAGS = ("is_negated", "is_historical", "is_family", "is_hypothetical", "is_uncertain")


def _extension(obj, name: str) -> Any:
    return getattr(obj._, name) if obj.has_extension(name) else None


def entity_json(ent: Span) -> Dict[str, Any]:
    """RETURNS (Dict[str, Any]): One entity: offsets, text, label, ConText flags and section."""
    out: Dict[str, Any] = {
        "start": ent.start_char,
        "end": ent.end_char,
        "text": ent.text,
        "label": ent.label_,
    }
    if Span.has_extension("is_negated"):
        for flag in CONTEXT_FLAGS:
            value = _extension(ent, flag)
            out[flag[3:]] = None if value is None else bool(value)
    if Span.has_extension("section_category"):
        out["section"] = _extension(ent, "section_category")
    return out


def sections_json(doc: Doc) -> Optional[List[Dict[str, Any]]]:
    """RETURNS (Optional[List[Dict[str, Any]]]): medspaCy's sections (category, offsets), or None."""
    if not Doc.has_extension("sections"):
        return None
    out = []
    for section in doc._.sections or []:
        start, end = section.section_span
        span = doc[start:end]
        out.append({"category": section.category, "start": span.start_char, "end": span.end_char})
    return out


def answers_json(doc: Doc) -> Optional[List[Dict[str, Any]]]:
    """RETURNS (Optional[List[Dict[str, Any]]]): Each question with its answer (or None), or None."""
    questions = _extension(doc, "questions")
    # Each question's own characters and score, read from what doc._.answers
    # stores (a Span's attributes are shared by questions answered on the
    # same tokens).
    entries = answer_entries(doc) if doc.has_extension("answers") else None
    if not questions or entries is None:
        return None
    out = []
    for question, entry in zip(questions, entries):
        item: Dict[str, Any] = {"question": question, "answer": None}
        if entry is not None:
            start, end, score = entry
            item["answer"] = {"start": start, "end": end, "text": doc.text[start:end], "score": score}
        out.append(item)
    return out


def doc_to_json(doc: Doc, note_id: Optional[Any] = None) -> Dict[str, Any]:
    """The JSON view of one annotated note.

    doc (Doc): The annotated doc.
    note_id (Optional[Any]): The note's id, carried over as given.
    RETURNS (Dict[str, Any]): {"id", "length", "entities", "cats", and, where the
        pipeline made them, "sections" and "answers"}.
    """
    out: Dict[str, Any] = {
        "id": note_id,
        "length": len(doc.text),
        "entities": [entity_json(ent) for ent in doc.ents],
        "cats": {label: float(score) for label, score in doc.cats.items()},
    }
    sections = sections_json(doc)
    if sections is not None:
        out["sections"] = sections
    answers = answers_json(doc)
    if answers is not None:
        out["answers"] = answers
    return out
