"""`clinlong_sentences`: PyRuSH's clinical sentence rules at regex speed.

PyRuSH (medspaCy's splitter) matches about 900 character rules (conf/rush_rules.tsv)
with a pure-Python hash matcher that visits every character, then pairs its sentence
"begin" and "end" marks into sentences and maps them to tokens. Here the rules that
decide sentences in clinical notes are written as a few dozen regular expressions run
by `re` over `doc.text`; the pairing and the token mapping are PyRuSH's own
(`RuSH.segToSentenceSpans`, `cpredict_split_gaps`, split-gaps mode), written over
sentences and numpy arrays rather than characters and tokens. So boundaries match
PyRuSH's on clinical text (docs/medspacy.md gives the agreement measured), at
more than 100,000 words a second on one core.

The rule notation of PyRuSH, translated: \\s a space, tab or U+00A0 (`_S`); \\n a line
break (`_N`); \\w any whitespace or non-ASCII character (`_W`); \\a a non-space; \\C, \\c
upper and lower case; \\d a digit. A rule's captured group (group 1 here) is where a
sentence begins, or the last character of the sentence it ends; a "pseudo" rule's
group cancels the marks it overlaps (`Dr.`, `b.i.d.`, numbered-list dots).
"""

import re
from collections import namedtuple
from typing import Iterator, List, Tuple

import numpy
from spacy.attrs import IDX, IS_SPACE
from spacy.language import Language
from spacy.tokens import Doc

from .pipes import set_sentence_starts
from .rush_pairing import pair_marks, token_starts

_S = r"[ \t\xa0]"
_N = r"\n"  # \r is read as \n: `_scan_text` replaces it (offsets kept)
_W = r"[\s\x7f-\U0010ffff]"
_P = "[" + re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") + "]"
_PRONOUNS = (
    "He|His|Her|She|We|Our|The|They|Their|I|My|But|Now|Discharge|This|That|"
    "this|that|he|she|we|our|his|her|they|their|my|but"
)
_HEADERS = (
    "History of Present Illness|History of present illness|HISTORY OF PRESENT ILLNESS|"
    "Past Medical History|History of Past Illness|Chief Complaint|INDICATION|Indication|"
    "REASON|Reason|FINDINGS|Findings|Discharge Diagnosis|DISCHARGE DIAGNOSIS"
)
_DOSES = r"(?:b\.i\.d|B\.i\.d|B\.I\.D|bid|BID|t\.i\.d|T\.i\.d|T\.I\.D|tid|TID|q\.i\.d|Q\.i\.d|Q\.I\.D|qid|QID|q\.d|Q\.d|Q\.D|qd|QD)"

# A rule is a regex whose group 1 (or, without groups, whole match) is the mark, or a
# `Back` rule: a regex anchored on something rare (a line break, a header) that checks
# the text before it, skipping spaces (`"S"`) or PyRuSH's \w (`"W"`) backwards, so that
# `re` never tries a pattern at every character.
Back = namedtuple(
    "Back", "anchor skip lo hi tail at whole lead", defaults=("S", 0, 1 << 30, r"\S", "tail", False, None)
)

BEGIN_RULES = (
    r"\A\s*()[A-Z0-9]",
    rf"\.(?<=[a-z0-9)]\.){_S}+()[A-Z]",
    rf"\.(?<=[A-Z]{{3}}\.){_S}+()[A-Z](?=[a-z])",
    rf"\.(?<= mL\.){_S}+()[A-Z]",
    rf"\.(?<=[a-z]{{2}}\.){_W}+()[a-z]",
    rf"\.{_W}+()(?:{_PRONOUNS}) ",
    rf"\.{_S}+()The",
    rf"\.{_W}+()\"",
    rf"\.(?<=[a-z]\.)\"{_S}+()[A-Z]",
    rf"\.{_S}+()[0-9]\.{_S}*[A-Z]",
    rf"\?{_S}+()(?:[A-Z](?=[a-z])|[0-9])",
    rf"!{_S}+()(?:[A-Z](?=[a-z])|[0-9])",
    Back(rf"-{_S}+[A-Z]", "S", 1, tail=r"[a-z]\.?", at="anchor"),
    Back(rf"\.{_S}+()[A-Z]", "S", 1, tail=r"[a-z0-9]", at="anchor"),
    Back(rf"\){_S}*[A-Z]", "S", 2, tail="", at="anchor", lead="[0-9]{1,2}"),
    Back(rf"\){_S}*[A-Z]", "W", 1, tail="[a-z]", at="anchor", lead="[0-9]"),
    Back(
        "(?:Patient Name|Procedure Date|Date of Birth|Age|Gender|Note Status):", "S", 2, tail="", at="anchor"
    ),
    Back("(?:Reason|Admitting Diagnosis|Sex|Discharge Date):", "S", 4, tail="", at="anchor"),
    Back(
        rf"(?:Date of Birth:|Sig:{_S}|Admitting Diagnosis:|ADMITTING DIAGNOSIS:)",
        "W",
        1,
        tail="",
        at="anchor",
    ),
    Back("Refills:", "S", 1, at="anchor"),
    r"R(?=EASON FOR)",
    r"F(?=INDINGS:)",
    r"\(End of Report",
    # After line breaks.
    rf"{_N}+{_S}*()[A-Z\"'(]",
    rf"{_N}{_S}*()[0-9]+(?:\.|\)|{_S})",
    rf"{_N}{_S}*()(?:[-#*?.+/]{_S}|[-#][A-Za-z]|\([0-9a-g-]\))",
    rf"{_N}+()[a-z][a-z]+:",
    rf":(?<=[A-Za-z0-9\)]:){_S}*{_N}+{_S}*()\S",
    rf"\.(?<=[a-z%]\.){_S}*{_N}+{_S}*()[a-z0-9(]",
    rf"{_N}{_N}{_W}*()[0-9\"'*%]",
)

_ALNUM_P = r"[A-Za-z0-9!-/:-@\[-`{-~]"
END_RULES = (
    rf"(\.)(?<=\S\.)(?={_S})",
    rf"(\.)(?<=[A-Za-z0-9)\]]\.)(?={_N})",
    rf"(\?)(?<=[A-Za-z0-9]\?)(?={_W})",
    rf"(:)(?<=[A-Za-z0-9]:)(?={_S}*{_N})",
    Back(rf"{_N}{_N}", whole=True),
    Back(rf"{_N}+ ?[A-Z]", tail="[a-z][a-z]"),
    Back(rf"{_N}+(?:[A-Z][a-z]+:|[A-Z][A-Z]+:)"),
    Back(rf"{_N}+[A-Z][a-z]+{_S}+[A-Z][a-z]+:", lo=1),
    Back(rf"{_N}(?:[A-Z]:|JOB#:)"),
    Back(rf"{_N}+(?:[0-9]\.{_S}+[A-Z]|(?:T|P|R|BP|O2){_S})", hi=0),
    Back(rf"{_N}+(?:-|R{_S})", lo=1),
    Back(rf"{_N}- [A-Za-z]", hi=0, tail="[a-z]"),
    Back(rf"{_N}+[0-9]{{1,2}}\.{_S}+[A-Za-z]", lo=1, tail="[A-Za-z0-9]"),
    Back(rf"{_N}+[0-9]+\.{_S}+[A-Z]", hi=0, tail="[A-Z]"),
    Back(rf"{_N}+[A-Z]{{2}}", hi=0, tail="[0-9]"),
    Back(rf"{_N}+[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}{_S}{{3}}"),
    Back(f"{_N}Follow", "W", 1),
    Back(rf"{_N}+Signed{_S}", hi=0, tail=_ALNUM_P),
    Back(f"(?:{_HEADERS}):", "W", 1, tail=_ALNUM_P),
    Back("REASON FOR|Reason For", "W", 1, tail=_ALNUM_P),
    Back(r"Sig:[ \t\xa0]|Date of Birth:|\(End of Report\)|Admitting Diagnosis:|ADMITTING DIAGNOSIS:", "W", 1),
    Back("Refills:", lo=1),
    Back(
        "(?:Patient Name|Procedure Date|Date of Birth|Age|Gender|Note Status|Reason|Sex|Discharge Date):",
        lo=2,
    ),
    Back(rf"(\.){_S}+[A-Z]", lo=1, tail="[a-z0-9]", at="anchor"),
    Back(r"\)", "W", 1, tail="[a-zA-Z0-9%]", lead="[0-9]{1,2}"),
    rf"(\.)(?<=[a-z]\.)(?={_W}+(?:{_PRONOUNS}) )",
    Back("_{15}", "W", 1, whole=True),
    Back(rf"-{_S}+[A-Z]", lo=1, tail="[a-z]", whole=True),
    rf"(\")(?<=[a-z]\.\")(?={_S}+[A-Z])",
    Back(rf"{_N}{_N}", lo=1, tail=r"[a-z]\)"),
    Back(rf"{_N}+[a-z][a-z]+:", hi=0, tail="[a-z]", whole=True),
)

PSEUDO_END_RULES = (
    Back(rf"\.(?={_S})", "", tail=rf"{_S}(?:Dr|dr|mr|mrs|ms|phd)", whole=True),
    r"(?:Mr|Mrs|Ms|Miss)\.",
    Back(rf"\.{_S}+[a-z] ", "", tail=rf"{_S}{_DOSES}", whole=True),
    Back(r"pulm\.", "", tail=_S, whole=True),
    rf"{_N}[0-9]+(\.{_S}+[A-Z])",
    Back(rf"{_N}+{_S}*[a-z]", tail="[a-z]", whole=True),
    Back(rf"{_N}", tail=rf"{_S}(?:and|that|for|had|have|has|I)", whole=True),
    Back(rf"-{_S}+[A-Z][a-z]+", lo=1, tail="[A-Z][a-z]+", whole=True),
    Back(rf"{_N}+{_S}*[a-z]", tail=rf"{_S}(?:are|is|was|were):", whole=True),
    Back(rf"{_N}(?:[A-Z][a-z]|\S)", hi=0, tail=rf"{_S}(?:the|The|in|In|for|or|as)", whole=True),
    r"from [0-9]+ to [0-9]+",
)

# Pseudo rules that could only cancel an end mark at the character where they start,
# but would match almost everywhere (every comma before a word): tried at end marks only.
PSEUDO_END_AT = (
    rf"[,;)]{_W}+(?:[a-z][a-z]|[0-9]+ )",
    rf"[A-Z](?:(?<={_S}[A-Z])|(?<={_S}[A-Z]{{2}})|(?<={_S}[A-Z]{{3}})|(?<={_S}[A-Z]{{4}})){_W}+[a-z][a-z]",
    rf"A{_W}+[a-z][a-z]",
)

PSEUDO_BEGIN_RULES = (Back(rf"(-{_S}+[A-Z][a-z]+)", lo=1, tail="[A-Z][a-z]+", at="anchor"), r"\*")

_SKIP = {"S": " \t\xa0", "W": None, "": ""}


def _literal_first(pattern: str) -> str:
    # `re` skips ahead fast to a literal first character, not to a class or a repeat.
    return "\n\n*" + pattern[3:] if pattern.startswith("\n+") else pattern


def _compile(rules):
    compiled = []
    for rule in rules:
        if isinstance(rule, Back):
            compiled.append(
                rule._replace(
                    anchor=re.compile(_literal_first(rule.anchor)),
                    tail=re.compile(f"(?:{rule.tail})\\Z") if rule.tail else None,
                    lead=re.compile(f"(?:{rule.lead})\\Z") if rule.lead else None,
                )
            )
        else:
            compiled.append(re.compile(_literal_first(rule)))
    return compiled


def _find(text: str, rule) -> Iterator[Tuple[int, int]]:
    """Yield (start, end) of each mark a compiled rule makes in text."""
    if not isinstance(rule, Back):
        for match in rule.finditer(text):
            yield match.span(1) if rule.groups else match.span()
        return
    skip = _SKIP[rule.skip]
    for match in rule.anchor.finditer(text):
        start = match.start()
        if rule.lead is not None:
            lead = rule.lead.search(text, max(0, start - 4), start)
            if lead is None:
                continue
            start = lead.start()
        q = start
        if skip is None:
            while q > 0 and (text[q - 1].isspace() or text[q - 1] > "~"):
                q -= 1
        else:
            while q > 0 and text[q - 1] in skip:
                q -= 1
        if not rule.lo <= start - q <= rule.hi or q == 0:
            continue
        if rule.tail is None:
            tail_start = q
        else:
            tail = rule.tail.search(text, max(0, q - 40), q)
            if tail is None:
                continue
            tail_start = tail.start()
        if rule.at == "anchor":
            mark = match.span(1) if rule.anchor.groups else (start, match.end())
        elif rule.whole:
            mark = (tail_start, match.end())
        else:
            mark = (q - 1, q)
        yield mark


class ClinicalSentences:
    """Sentence starts for every token, by PyRuSH's rules, in time linear in the note."""

    def __init__(self, name: str = "clinlong_sentences", *, min_sent_chars: int = 5) -> None:
        self.name = name
        self.min_sent_chars = min_sent_chars
        self._begins = _compile(BEGIN_RULES)
        self._ends = _compile(END_RULES)
        self._pseudo_begins = _compile(PSEUDO_BEGIN_RULES)
        self._pseudo_ends = _compile(PSEUDO_END_RULES)
        self._pseudo_end_at = _compile(PSEUDO_END_AT)

    def __call__(self, doc: Doc) -> Doc:
        if len(doc):
            set_sentence_starts(doc, self.predict(doc))
        return doc

    def pipe(self, docs, batch_size: int = 128):
        for doc in docs:
            yield self(doc)

    def predict(self, doc: Doc) -> numpy.ndarray:
        """Whether each token starts a sentence, as PyRuSH's split-gaps mode marks it (and the first).

        doc (Doc): The doc; only its text and tokens' offsets are read.
        RETURNS (numpy.ndarray): One bool per token.
        """
        spans = self.sentence_spans(doc.text)
        attrs = doc.to_array([IDX, IS_SPACE])
        starts = token_starts(attrs[:, 0].astype("int64"), attrs[:, 1].astype(bool), spans)
        if len(starts):
            # PyRuSH leaves a first token it finds no sentence at (leading space) a non-start;
            # spaCy's sentences begin there either way, so say so.
            starts[0] = True
        return starts

    def sentence_spans(self, text: str) -> List[Tuple[int, int]]:
        """The sentences' character spans, trimmed of whitespace, as PyRuSH's `segToSentenceSpans`.

        text (str): The note.
        RETURNS (List[Tuple[int, int]]): [begin, end) of each sentence, in order.
        """
        text = _scan_text(text)
        begins = _marks(text, self._begins, self._pseudo_begins)
        ends = _cancel_at(text, _marks(text, self._ends, self._pseudo_ends), self._pseudo_end_at)
        return pair_marks(text, begins, ends, min_sent_chars=self.min_sent_chars)

    def to_disk(self, path, *, exclude=tuple()) -> None:
        """Nothing to write: the rules are the code's and the settings are in the config."""

    def from_disk(self, path, *, exclude=tuple()) -> "ClinicalSentences":
        return self

    def to_bytes(self, *, exclude=tuple()) -> bytes:
        return b""

    def from_bytes(self, data: bytes, *, exclude=tuple()) -> "ClinicalSentences":
        return self


def _scan_text(text: str) -> str:
    # PyRuSH reads \r as it reads \n (both its \n, both whitespace, neither its \s).
    return text.replace("\r", "\n") if "\r" in text else text


def _marks(text: str, rules, pseudo_rules) -> List[Tuple[int, int]]:
    found = {}
    for rule in rules:
        for start, end in _find(text, rule):
            if end - start > found.get(start, (0, -1))[1] - start:
                found[start] = (start, end)
    if not found:
        return []
    marks = sorted(found.values())
    cancelled = []
    for rule in pseudo_rules:
        cancelled.extend(_find(text, rule))
    if not cancelled:
        return marks
    # A pseudo mark cancels every actual mark whose first character it covers.
    starts = numpy.fromiter((m[0] for m in marks), dtype="int64", count=len(marks))
    keep = numpy.ones(len(marks), dtype=bool)
    lo = numpy.array([c[0] for c in cancelled], dtype="int64")
    hi = numpy.array([c[1] for c in cancelled], dtype="int64")
    first = numpy.searchsorted(starts, lo, side="left")
    last = numpy.searchsorted(starts, hi, side="left")
    delta = numpy.zeros(len(marks) + 1, dtype="int64")
    numpy.add.at(delta, first, 1)
    numpy.add.at(delta, last, -1)
    keep = numpy.cumsum(delta[:-1]) == 0
    return [mark for mark, kept in zip(marks, keep) if kept]


def _cancel_at(text: str, marks: List[Tuple[int, int]], rules) -> List[Tuple[int, int]]:
    return [mark for mark in marks if not any(rule.match(text, mark[0]) for rule in rules)]


@Language.factory(
    "clinlong_sentences",
    default_config={"min_sent_chars": 5},
    assigns=["token.is_sent_start"],
)
def make_clinlong_sentences(nlp: Language, name: str, min_sent_chars: int):
    """PyRuSH's clinical sentence rules (medspaCy's splitter) as regular expressions, fast.

    min_sent_chars (int): Text between two sentences longer than this is a sentence of
        its own, else it joins the sentence before (PyRuSH's default, 5).
    RETURNS (ClinicalSentences): The component.
    """
    return ClinicalSentences(name, min_sent_chars=min_sent_chars)
