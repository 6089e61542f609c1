"""Low-level text building for the synthetic notes: sections, entities, templates.

A note is built section by section. Each `SectionBuilder` appends text and
records entity offsets relative to its own start, so sections can be grown
independently (to hit a length target) before they are joined into one note.

Template syntax (used by `SectionBuilder.fill`):
    {P:pool}       a PROBLEM entity drawn from `pool` (T = TEST, X = TREATMENT, A = ALLERGEN)
    {P:pool|neg}   ... with ConText flags: neg, hist, fam, hyp (comma separated)
    {^P:pool}      ... with the first letter capitalised
    {P:$var}       an entity drawn from `ctx[var]` (a string is used as is)
    {name}         plain text: `ctx[name]`, else a draw from the pool `name`
Names are looked up in `ctx` first, then in `pools`; "$" only documents
that a name is expected in `ctx`.
Pools are looked up in the `pools` mapping passed in; a template never
repeats a draw from the same pool, so "denies {P:symptom|neg} or
{P:symptom|neg}" yields two different symptoms.
"""

import random
import re
from functools import lru_cache
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

_LABELS = {"P": "PROBLEM", "T": "TEST", "X": "TREATMENT", "A": "ALLERGEN"}
_FLAGS = {"neg": "negated", "hist": "historical", "fam": "family", "hyp": "hypothetical"}
_SLOT = re.compile(r"\{([^{}]+)\}")
# (literal, None) or (None, (capitalise, label or None, source, flag names))
_Piece = Tuple[Optional[str], Optional[Tuple[bool, Optional[str], str, Tuple[str, ...]]]]


@lru_cache(maxsize=None)
def _parse(template: str) -> Tuple[_Piece, ...]:
    pieces: List[_Piece] = []
    pos = 0
    for match in _SLOT.finditer(template):
        if match.start() > pos:
            pieces.append((template[pos : match.start()], None))
        body = match.group(1)
        cap = body.startswith("^")
        body = body.lstrip("^")
        flags: Tuple[str, ...] = ()
        if "|" in body:
            body, flag_str = body.split("|", 1)
            flags = tuple(_FLAGS[f] for f in flag_str.split(","))
        label = None
        if len(body) > 2 and body[1] == ":" and body[0] in _LABELS:
            label, body = _LABELS[body[0]], body[2:]
        pieces.append((None, (cap, label, body, flags)))
        pos = match.end()
    if pos < len(template):
        pieces.append((template[pos:], None))
    return tuple(pieces)


_ARTICLE = re.compile(r"(?:^|\s)[Aa] $")


def _needs_an(word: str) -> bool:
    # Acronyms are read letter by letter: "an EKG", "an MRI", but "a CT".
    if word[:2].isupper():
        return word[0] in "AEFHILMNORSX"
    return word[:1].lower() in "aeiou"


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


class SectionBuilder:
    """Accumulates the text of one section and the annotations inside it.

    name (str): Canonical section name, used as the span label.
    header (str): Header as printed, without the colon.
    """

    def __init__(self, name: str, header: str) -> None:
        self.name = name
        self.header = header
        self._parts: List[str] = []
        self._len = 0
        self._ends_in_space = True
        self.words = 0
        self.entities: List[Dict[str, Any]] = []
        self.marks: List[Tuple[str, int, int]] = []
        self.add(f"{header}:\n")

    def add(self, text: str) -> "SectionBuilder":
        """Append plain text.

        text (str): The text.
        RETURNS (SectionBuilder): self, for chaining.
        """
        if not text:
            return self
        # Exact whitespace word count, maintained across appends.
        runs = len(text.split())
        if runs and not text[0].isspace() and not self._ends_in_space:
            runs -= 1
        self.words += runs
        self._ends_in_space = text[-1].isspace()
        self._parts.append(text)
        self._len += len(text)
        return self

    def ent(
        self, text: str, label: str, flags: Sequence[str] = (), mark: Optional[str] = None
    ) -> "SectionBuilder":
        """Append an entity mention.

        text (str): Surface form.
        label (str): PROBLEM, TEST, TREATMENT or ALLERGEN.
        flags (Sequence[str]): Names of the ConText flags that are True.
        mark (Optional[str]): Also record the span under this QA key.
        RETURNS (SectionBuilder): self.
        """
        start = self._len
        self.add(text)
        ent = {
            "start": start,
            "end": self._len,
            "label": label,
            "negated": False,
            "historical": False,
            "family": False,
            "hypothetical": False,
        }
        for flag in flags:
            ent[flag] = True
        self.entities.append(ent)
        if mark is not None:
            self.marks.append((mark, start, self._len))
        return self

    def mark(self, key: str, text: str) -> "SectionBuilder":
        """Append text that answers a question, recording its span under `key`.

        key (str): QA key, e.g. "dose:Metformin".
        text (str): The answer text.
        RETURNS (SectionBuilder): self.
        """
        start = self._len
        self.add(text)
        self.marks.append((key, start, self._len))
        return self

    def fill(
        self, template: str, rng: random.Random, ctx: Mapping[str, Any], pools: Mapping[str, Sequence[str]]
    ) -> "SectionBuilder":
        """Append one rendered template (see the module docstring for the syntax).

        template (str): The template.
        rng (random.Random): Random source of the note.
        ctx (Mapping[str, Any]): Note variables (pronouns, lists of the note's drugs ...).
        pools (Mapping[str, Sequence[str]]): Named word pools.
        RETURNS (SectionBuilder): self.
        """
        used: Dict[str, List[str]] = {}
        pending = ""  # literal held back until the next value decides "a" or "an"
        for literal, slot in _parse(template):
            if slot is None:
                pending += literal  # type: ignore[operator]
                continue
            cap, label, source, flags = slot
            source = source.lstrip("$")
            value = ctx[source] if source in ctx else pools[source]
            if not isinstance(value, str):
                taken = used.setdefault(source, [])
                options = [v for v in value if v not in taken] or list(value)
                value = rng.choice(options)
                taken.append(value)
            if cap:
                value = _capitalise(value)
            if pending and _ARTICLE.search(pending) and _needs_an(value):
                pending = pending[:-1] + "n "
            self.add(pending)
            pending = ""
            if label is None:
                self.add(value)
            else:
                self.ent(value, label, flags)
        return self.add(pending)

    @property
    def pos(self) -> int:
        """RETURNS (int): Current length of the section text (offset of the next append)."""
        return self._len

    def add_mark(self, key: str, start: int, end: int) -> "SectionBuilder":
        """Record an already written span under a QA key.

        key (str): QA key.
        start (int): Start offset within the section.
        end (int): End offset within the section.
        RETURNS (SectionBuilder): self.
        """
        self.marks.append((key, start, end))
        return self

    def text(self) -> str:
        """RETURNS (str): The section text without trailing whitespace."""
        return "".join(self._parts).rstrip()


def assemble(preamble: str, sections: Sequence[SectionBuilder]) -> Dict[str, Any]:
    """Join sections into one text and shift every offset to note coordinates.

    preamble (str): Title lines before the first section.
    sections (Sequence[SectionBuilder]): The sections, in order.
    RETURNS (Dict[str, Any]): text, sections, entities and marks (key -> list of (start, end)).
    """
    chunks = [preamble.rstrip() + "\n\n"]
    offset = len(chunks[0])
    spans, entities = [], []
    marks: Dict[str, List[Tuple[int, int]]] = {}
    for sec in sections:
        body = sec.text()
        spans.append({"name": sec.name, "start": offset, "end": offset + len(body)})
        for ent in sec.entities:
            shifted = dict(ent)
            shifted["start"] += offset
            shifted["end"] += offset
            entities.append(shifted)
        for key, start, end in sec.marks:
            marks.setdefault(key, []).append((start + offset, end + offset))
        chunks.append(body + "\n\n")
        offset += len(body) + 2
    text = "".join(chunks).rstrip() + "\n"
    return {"text": text, "sections": spans, "entities": entities, "marks": marks}
