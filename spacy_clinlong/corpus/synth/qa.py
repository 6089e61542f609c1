"""Extractive QA pairs (SQuAD v2.0 style) for the synthetic notes.

Answers come from the QA marks recorded while the note was written, so each
answer is an exact substring at its `answer_start`. About a quarter of the
questions are unanswerable: they ask about a drug, test or lab that the note
never mentions, or about allergies in a note with none.
"""

import bisect
import random
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import vocab as V

Marks = Dict[str, List[Tuple[int, int]]]
QA = Dict[str, Any]
IMPOSSIBLE_RATE = 0.25


def _answers(text: str, spans: Sequence[Tuple[int, int]]) -> List[Dict[str, Any]]:
    return [{"text": text[s:e], "answer_start": s} for s, e in spans]


def _answerable(
    rng: random.Random, text: str, marks: Marks, note_type: str
) -> List[Tuple[str, List[Dict[str, Any]]]]:
    """RETURNS (List[Tuple[str, List[dict]]]): Every answerable (question, answers) for the note."""
    discharge = note_type == "discharge_summary"
    out: List[Tuple[str, List[Dict[str, Any]]]] = []
    for key in sorted(marks):
        spans = marks[key]
        kind, _, arg = key.partition(":")
        if kind == "dose":
            drug = arg.lower()
            question = rng.choice(
                (
                    f"What dose of {drug} was the patient discharged on?",
                    f"What is the discharge dose of {drug}?",
                )
                if discharge
                else (
                    f"What dose of {drug} is the patient taking at the end of the visit?",
                    f"What is the current dose of {drug}?",
                )
            )
        elif kind == "lab":
            question = rng.choice(
                (f"What was the patient's {arg} on admission?", f"What was the initial {arg}?")
            )
        elif kind == "result":
            question = rng.choice((f"What did the {arg} show?", f"What was the result of the {arg}?"))
        elif kind == "ef":
            question = rng.choice(
                (
                    "What was the patient's ejection fraction?",
                    "What ejection fraction was measured on echocardiogram?",
                )
            )
        elif kind == "abx":
            question = "What antibiotic was the patient treated with for pneumonia?"
        elif kind == "followup":
            question = f"When should the patient follow up with {arg}?"
        elif kind == "allergy":
            question = rng.choice(
                ("What is the patient allergic to?", "What are the patient's documented allergies?")
            )
        elif kind == "cc":
            question = rng.choice(("What was the patient's chief complaint?", "What brought the patient in?"))
        else:
            continue
        out.append((question, _answers(text, spans)))
    return out


def _absent(rng: random.Random, lowered: str, pool: Sequence[str]) -> Optional[str]:
    options = [x for x in pool if x.lower() not in lowered]
    return rng.choice(options) if options else None


def _impossible(rng: random.Random, text: str, marks: Marks, note_type: str) -> Optional[str]:
    """RETURNS (Optional[str]): A question the note cannot answer, or None."""
    lowered = text.lower()
    kinds: List[Callable[[], Optional[str]]] = []

    def dose() -> Optional[str]:
        drug = _absent(rng, lowered, V.ABSENT_DRUGS)
        verb = (
            "was the patient discharged on" if note_type == "discharge_summary" else "is the patient taking"
        )
        return drug and f"What dose of {drug.lower()} {verb}?"

    def test() -> Optional[str]:
        name = _absent(rng, lowered, V.NEVER_DONE_TESTS)
        return name and f"What did the {name} show?"

    def lab() -> Optional[str]:
        name = _absent(rng, lowered, V.NEVER_DONE_LABS)
        return name and f"What was the patient's {name} on admission?"

    def followup() -> Optional[str]:
        name = _absent(rng, lowered, V.SPECIALTIES)
        return name and f"When should the patient follow up with {name}?"

    kinds += [dose, dose, test, lab, followup]
    if "allergy" not in marks:
        kinds += [lambda: "What is the patient allergic to?"] * 2
    if "abx" not in marks:
        kinds.append(lambda: "What antibiotic was the patient treated with for pneumonia?")
    if "ef" not in marks:
        kinds.append(lambda: "What was the patient's ejection fraction?")
    return rng.choice(kinds)()


def make_qas(rng: random.Random, note_id: str, text: str, marks: Marks, note_type: str) -> List[QA]:
    """Draw 3 to 8 questions for a note, about a quarter of them unanswerable.

    rng (random.Random): Random source of the note.
    note_id (str): Note id, prefix of the question ids.
    text (str): Note text.
    marks (Marks): QA key -> answer spans, from `assemble`.
    note_type (str): discharge_summary or progress_note.
    RETURNS (List[QA]): Dicts with id, question, answers, is_impossible.
    """
    pool = _answerable(rng, text, marks, note_type)
    rng.shuffle(pool)
    qas: List[QA] = []
    seen = set()
    wanted = rng.randint(3, 8)
    # Retries cover duplicate or unavailable draws; every note has enough answerable keys.
    for _ in range(4 * wanted):
        if len(qas) == wanted:
            break
        question: Optional[str] = None
        answers: List[Dict[str, Any]] = []
        if rng.random() < IMPOSSIBLE_RATE or not pool:
            question = _impossible(rng, text, marks, note_type)
        else:
            question, answers = pool.pop()
        if question is None or question in seen:
            continue
        seen.add(question)
        qas.append(
            {
                "id": f"{note_id}-qa{len(qas)}",
                "question": question,
                "answers": answers,
                "is_impossible": not answers,
            }
        )
    return qas


def qa_excerpt(note: Dict[str, Any], rng: random.Random, extra_lines: int = 1) -> Dict[str, Any]:
    """Cut a note down to the lines that hold its answers, each with the line
    before it (often its section header), plus `extra_lines` other lines.

    A QA model learns span extraction from such excerpts (about 100 to 200
    wordpieces) in a fraction of the time whole notes take, and is then read
    on whole notes. Answer offsets are remapped; unanswerable questions stay
    (their answer is absent from the excerpt as from the note). Entities,
    sections and note labels do not describe an excerpt and are dropped.

    note (Dict[str, Any]): A note in the `generate_notes` schema.
    rng (random.Random): Chooses the other lines.
    extra_lines (int): How many lines without an answer to keep.
    RETURNS (Dict[str, Any]): A note dict with the excerpt as its text.
    """
    text = note["text"]
    lines, pos = [], 0
    for line in text.splitlines(keepends=True):
        lines.append((pos, pos + len(line)))
        pos += len(line)
    starts = [start for start, _ in lines]

    def line_of(char: int) -> int:
        return bisect.bisect_right(starts, char) - 1

    keep = set()
    for qa in note["qas"]:
        for answer in qa["answers"]:
            first = line_of(answer["answer_start"])
            last = line_of(answer["answer_start"] + len(answer["text"]) - 1)
            keep.update(range(max(first - 1, 0), last + 1))
    others = [i for i in range(len(lines)) if i not in keep and text[slice(*lines[i])].strip()]
    keep.update(rng.sample(others, min(extra_lines, len(others))))
    shift, parts, pos = {}, [], 0
    for i in sorted(keep):
        shift[i] = pos - lines[i][0]
        parts.append(text[slice(*lines[i])])
        pos += lines[i][1] - lines[i][0]
    qas = [
        {
            **qa,
            "answers": [
                {"text": a["text"], "answer_start": a["answer_start"] + shift[line_of(a["answer_start"])]}
                for a in qa["answers"]
            ],
        }
        for qa in note["qas"]
    ]
    return {**note, "text": "".join(parts), "qas": qas, "entities": [], "sections": [], "cats": {}}
