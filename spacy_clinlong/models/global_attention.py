"""Which wordpieces get Longformer's global attention.

A chooser is a pure function of one window, given as a spaCy Span, that
returns a GlobalSelection: whether the first special token (CLS, `<s>`) is
global, and which tokens of the window are (their first wordpiece is). The
registered `configure_*` functions return such choosers for the config's
`global_attention` block. Models without Longformer-style global attention
ignore the selection.
"""

import re
from dataclasses import dataclass, field
from functools import partial
from typing import List

from spacy.tokens import Span
from spacy.util import registry

from .types import GlobalAttentionT

# A header as clinical notes write them: an upper-case label and a colon
# ("HISTORY OF PRESENT ILLNESS: ...", MTSamples style), or a short label alone
# on its line ("Allergies:", MIMIC style). "Sodium: 141 mmol/L" is not one.
# No "$": spaCy configs read it as variable interpolation; \Z does the same.
DEFAULT_HEADER_PATTERN = r"^(?:[A-Z][A-Z0-9 /&,()\-]{2,60}:|[A-Z][A-Za-z0-9 /&,()\-]{2,60}:[ \t]*\Z)"


@dataclass
class GlobalSelection:
    """The global-attention choice for one window.

    cls (bool): Whether the first special token attends globally.
    tokens (List[int]): Doc indices (Token.i) of tokens that attend globally.
    """

    cls: bool = True
    tokens: List[int] = field(default_factory=list)


def global_cls(span: Span) -> GlobalSelection:
    """Global attention on the first special token only (Longformer's default
    for classification and the convention of Clinical-Longformer).

    span (Span): The window.
    RETURNS (GlobalSelection): CLS only.
    """
    return GlobalSelection(cls=True, tokens=[])


def global_none(span: Span) -> GlobalSelection:
    """No global attention: local windows only.

    span (Span): The window.
    RETURNS (GlobalSelection): Nothing global.
    """
    return GlobalSelection(cls=False, tokens=[])


def global_section_headers(
    span: Span, *, pattern: str, include_cls: bool, max_tokens: int
) -> GlobalSelection:
    """Global attention on the first token of each section header line.

    span (Span): The window.
    pattern (str): Regular expression that a header line matches at its start.
    include_cls (bool): Also make the first special token global.
    max_tokens (int): At most this many header tokens per window (the first
        ones), so a note made of many short headers stays cheap.
    RETURNS (GlobalSelection): The choice.
    """
    regex = _compiled(pattern)
    doc = span.doc
    text = doc.text
    chosen: List[int] = []
    for tok in span:
        if len(chosen) >= max_tokens:
            break
        if tok.is_space:
            continue
        at_line_start = (
            tok.i == 0
            or "\n" in doc[tok.i - 1].text
            or (doc[tok.i - 1].is_space and text[tok.idx - 1] == "\n")
        )
        if not at_line_start:
            continue
        line_end = text.find("\n", tok.idx)
        line = text[tok.idx : line_end if line_end >= 0 else len(text)]
        if regex.match(line):
            chosen.append(tok.i)
    return GlobalSelection(cls=include_cls, tokens=chosen)


_REGEX_CACHE: dict = {}


def _compiled(pattern: str):
    if pattern not in _REGEX_CACHE:
        _REGEX_CACHE[pattern] = re.compile(pattern)
    return _REGEX_CACHE[pattern]


@registry.misc("spacy-clinlong.global_attention_cls.v1")
def configure_global_attention_cls() -> GlobalAttentionT:
    """Global attention on the first token (CLS) of every window.

    RETURNS (Callable[[Span], GlobalSelection]): The chooser.
    """
    return global_cls


@registry.misc("spacy-clinlong.global_attention_none.v1")
def configure_global_attention_none() -> GlobalAttentionT:
    """No global attention.

    RETURNS (Callable[[Span], GlobalSelection]): The chooser.
    """
    return global_none


@registry.misc("spacy-clinlong.global_attention_section_headers.v1")
def configure_global_attention_section_headers(
    pattern: str = DEFAULT_HEADER_PATTERN, include_cls: bool = True, max_tokens: int = 64
) -> GlobalAttentionT:
    """Global attention on section headers (and CLS), so every token can see
    the header of its section however far away it is.

    pattern (str): Regular expression a header line matches at its start.
    include_cls (bool): Also make the first special token global.
    max_tokens (int): The most header tokens per window.
    RETURNS (Callable[[Span], GlobalSelection]): The chooser.
    """
    try:
        re.compile(pattern)
    except re.error as err:
        raise ValueError(f"Invalid section header pattern {pattern!r}: {err}") from None
    if max_tokens < 0:
        raise ValueError(f"max_tokens must be >= 0, got {max_tokens}")
    return partial(global_section_headers, pattern=pattern, include_cls=include_cls, max_tokens=max_tokens)
