"""medspaCy's rules after a transformer: sentences, sections, ConText, extra target rules.

`medspacy.load` replaces the pipeline's tokenizer with medspaCy's, which breaks
a trained transformer's alignment, so `add_medspacy` adds medspaCy's
components to the pipeline as it is instead: its tokenizer stays. PyRuSH, the
sentence splitter, logs every sentence start at DEBUG through loguru, token
text included; the `clinlong_pyrush` factory is PyRuSH with that logger
turned off, and `spacy.load` finds it (and medspaCy's own factories) through
spacy-clinlong's entry points.
"""
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

from spacy.language import Language
from spacy.tokens import Doc

TARGET_GROUP = "clinlong_target_rules"
SENTENCE_SETTERS = ("parser", "senter", "sentencizer", "medspacy_pyrush", "clinlong_pyrush")
SENTENCE_CHOICES = ("pyrush", "own")


def quiet_pyrush() -> None:
    """Turn off PyRuSH's per-sentence DEBUG logging (loguru), which prints token text."""
    from loguru import logger

    logger.disable("PyRuSH")


@Language.factory("clinlong_pyrush", default_config={"rules_path": "", "merge_gaps": False},
                  assigns=["token.is_sent_start"])
def make_clinlong_pyrush(nlp: Language, name: str, rules_path: str, merge_gaps: bool):
    """medspaCy's PyRuSH sentence splitter, without its DEBUG log of every sentence.

    rules_path (str): PyRuSH rules; "" for PyRuSH's own.
    merge_gaps (bool): Merge whitespace between sentences into the sentence before.
    RETURNS (QuietPyRuSH): The component.
    """
    return QuietPyRuSH(nlp, name, rules_path=rules_path, merge_gaps=merge_gaps)


class QuietPyRuSH:
    """PyRuSH with its logger off. Its state is its config (the rules path), so there is
    nothing to serialize: PyRuSH's own component inherits spaCy's Sentencizer.to_disk
    without the attributes it writes, and fails in `nlp.to_disk`."""

    def __init__(self, nlp: Language, name: str, *, rules_path: str = "", merge_gaps: bool = False) -> None:
        from PyRuSH import PyRuSHSentencizer

        quiet_pyrush()
        self.name = name
        self.rush = PyRuSHSentencizer(nlp, name=name, rules_path=rules_path, merge_gaps=merge_gaps)

    def __call__(self, doc: Doc) -> Doc:
        return self.rush(doc)

    def pipe(self, docs, batch_size: int = 128):
        return self.rush.pipe(docs, batch_size=batch_size)


@Language.factory("clinlong_target_ents", default_config={"span_group": "medspacy_spans"},
                  assigns=["doc.ents"])
def make_target_ents(nlp: Language, name: str, span_group: str):
    """Add rule matches (a span group) to doc.ents where they overlap no entity; the model's win.

    span_group (str): The group medspaCy's target matcher wrote.
    RETURNS (Callable[[Doc], Doc]): The component.
    """
    return TargetEnts(span_group)


class TargetEnts:
    """Merges a span group into doc.ents, silently keeping the existing entities on overlap."""

    def __init__(self, span_group: str) -> None:
        self.span_group = span_group

    def __call__(self, doc: Doc) -> Doc:
        spans = doc.spans.get(self.span_group)
        if not spans:
            return doc
        taken = set()
        for ent in doc.ents:
            taken.update(range(ent.start, ent.end))
        added = []
        for span in sorted(spans, key=lambda s: (-(s.end - s.start), s.start)):
            if not taken.intersection(range(span.start, span.end)):
                added.append(span)
                taken.update(range(span.start, span.end))
        if added:
            doc.ents = sorted(list(doc.ents) + added, key=lambda s: s.start)
        return doc


def has_sentences(nlp: Language) -> bool:
    """RETURNS (bool): Whether a component of the pipeline sets sentence boundaries."""
    return any(nlp.get_pipe_meta(name).factory in SENTENCE_SETTERS or name in SENTENCE_SETTERS
               for name in nlp.pipe_names)


def add_medspacy(
    nlp: Language,
    *,
    sentences: str = "pyrush",
    sectionizer: bool = True,
    context: bool = True,
    target_rules: Optional[Union[Sequence[Any], str, Path]] = None,
    doc_consumer: bool = True,
    context_rules: Optional[Union[str, Path]] = None,
    section_rules: Optional[Union[str, Path]] = None,
) -> Language:
    """Add medspaCy's components after the model, keeping the pipeline's tokenizer.

    nlp (Language): A pipeline whose entities (from a transformer `ner`) get ConText.
    sentences (str): "pyrush" adds `clinlong_pyrush` (PyRuSH, quiet) unless a component
        already sets sentences; "own" requires that one does (parser, senter, sentencizer).
    sectionizer (bool): Add `medspacy_sectionizer` with its default rules (or `section_rules`).
    context (bool): Add `medspacy_context` with its default rules (or `context_rules`).
    target_rules (Optional[Union[Sequence[TargetRule], str, Path]]): Rules (or a JSON rule
        file) for `medspacy_target_matcher`; `clinlong_target_ents` adds its matches to
        the model's entities where they overlap none; None adds no matcher.
    doc_consumer (bool): Add `medspacy_doc_consumer` (tabular views in `doc._.data`).
    RETURNS (Language): `nlp`, changed in place.
    """
    import medspacy  # noqa: F401  (registers medspaCy's factories and extensions)

    if sentences not in SENTENCE_CHOICES:
        raise ValueError(f"sentences must be one of {SENTENCE_CHOICES}, not {sentences!r}")
    if sentences == "own" and not has_sentences(nlp):
        raise ValueError(
            f"sentences='own' needs a component that sets sentences ({', '.join(SENTENCE_SETTERS[:3])}); "
            f"the pipeline has {nlp.pipe_names}. Use sentences='pyrush'."
        )
    if sentences == "pyrush" and not has_sentences(nlp):
        nlp.add_pipe("clinlong_pyrush")
    if target_rules is not None:
        # Into a span group, then into doc.ents by clinlong_target_ents: medspaCy's own
        # "ents" mode warns with the matched text on every overlap.
        matcher = nlp.add_pipe("medspacy_target_matcher",
                               config={"result_type": "group", "span_group_name": TARGET_GROUP})
        if isinstance(target_rules, (str, Path)):
            from medspacy.target_matcher import TargetRule

            target_rules = TargetRule.from_json(str(target_rules))
        matcher.add(list(target_rules))
        nlp.add_pipe("clinlong_target_ents", config={"span_group": TARGET_GROUP})
    if sectionizer:
        nlp.add_pipe("medspacy_sectionizer", config=_rules(section_rules))
    if context:
        nlp.add_pipe("medspacy_context", config=_rules(context_rules))
    if doc_consumer:
        nlp.add_pipe("medspacy_doc_consumer", config={"dtypes": _consumer_dtypes(sectionizer, context)})
    return nlp


def _rules(path: Optional[Union[str, Path]]) -> dict:
    return {} if path is None else {"rules": str(path)}


def _consumer_dtypes(sectionizer: bool, context: bool) -> Iterable[str]:
    return ["ents"] + (["section"] if sectionizer else []) + (["context"] if context else [])
