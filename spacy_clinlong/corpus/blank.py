"""A blank pipeline for code that only tokenizes, built without importing
every installed component's package.

Every `Language()` (so every `spacy.blank`) imports the module behind each
installed `spacy_factories` entry point, to register its factory:
spacy-transformers' `transformer` imports torch and transformers, and
medspaCy's import quickumls, nltk and scikit-learn; together several seconds,
most of a one-document `convert`. A converter, the synthetic corpus writer or
a config writer needs none of them, so it builds its pipeline with those entry
points skipped. The next `Language()` in the process loads them as usual; a
pipeline built here must not be given a component whose factory only an entry
point registers (`add_pipe` would not find it).
"""

from contextlib import contextmanager
from typing import Iterator

import spacy
from spacy.language import Language
from spacy.util import registry


@contextmanager
def factory_entry_points_skipped() -> Iterator[None]:
    """Within the block, creating a `Language` does not import the packages
    behind the `spacy_factories` entry points.

    spaCy 3.x keeps them in `registry._entry_point_factories`, a catalogue
    registry whose `get_all()` every `Language.__init__` calls; with its
    `entry_points` flag off, `get_all()` returns only what is registered
    already. Elsewhere (another spaCy) the block changes nothing: the stock
    path gives the same pipeline, only later. Not thread-safe: it flips a
    process-wide flag, for commands and writers that build one pipeline.
    """
    entry_point_factories = getattr(registry, "_entry_point_factories", None)
    if not isinstance(getattr(entry_point_factories, "entry_points", None), bool):
        yield
        return
    before = entry_point_factories.entry_points
    entry_point_factories.entry_points = False
    try:
        yield
    finally:
        entry_point_factories.entry_points = before


def blank_tokenizer(lang: str) -> Language:
    """`spacy.blank(lang)` without importing the packages of installed
    components: a tokenizer-only pipeline, for converting and writing corpora.

    lang (str): The language code, e.g. "en".
    RETURNS (Language): The blank pipeline.
    """
    with factory_entry_points_skipped():
        return spacy.blank(lang)
