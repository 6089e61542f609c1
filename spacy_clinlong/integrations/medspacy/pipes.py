"""medspaCy's rules after a transformer: sentences, sections, ConText, extra target rules.

`medspacy.load` replaces the pipeline's tokenizer with medspaCy's, which breaks
a trained transformer's alignment, so `add_medspacy` adds medspaCy's
components to the pipeline as it is instead: its tokenizer stays. PyRuSH, the
sentence splitter, logs every sentence start at DEBUG through loguru, token
text included; the `clinlong_pyrush` factory is PyRuSH with that logger
turned off, and `spacy.load` finds it (and medspaCy's own factories) through
spacy-clinlong's entry points. The default splitter is `clinlong_sentences`, PyRuSH's
rules at regex speed (sentences.py). ConText is `clinlong_context`, medspaCy's ConText
in time linear in the note (context_scopes.py), under the name `medspacy_context`, and
the doc consumer `clinlong_doc_consumer` (doc_consumer.py), as `medspacy_doc_consumer`.
"""

from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

from spacy.language import Language
from spacy.tokens import Doc

TARGET_GROUP = "clinlong_target_rules"
SENTENCE_SETTERS = (
    "parser",
    "senter",
    "sentencizer",
    "medspacy_pyrush",
    "clinlong_pyrush",
    "clinlong_sentences",
)
SENTENCE_CHOICES = ("fast", "pyrush", "own")
SENTENCE_FACTORIES = {"fast": "clinlong_sentences", "pyrush": "clinlong_pyrush"}


def quiet_pyrush() -> None:
    """Turn off PyRuSH's per-sentence DEBUG logging (loguru), which prints token text."""
    from loguru import logger

    logger.disable("PyRuSH")


@Language.factory(
    "clinlong_pyrush", default_config={"rules_path": "", "merge_gaps": False}, assigns=["token.is_sent_start"]
)
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
    without the attributes it writes, and fails in `nlp.to_disk`.

    PyRuSH's boundaries are written in one array: its own `cset_annotations` sets
    `token.sent_start` token by token, and each set checks the whole doc for a parse
    (`Doc.has_annotation("DEP")`), which made the splitter quadratic in the note.
    """

    def __init__(self, nlp: Language, name: str, *, rules_path: str = "", merge_gaps: bool = False) -> None:
        from PyRuSH import PyRuSHSentencizer

        quiet_pyrush()
        self.name = name
        self.rush = PyRuSHSentencizer(nlp, name=name, rules_path=rules_path, merge_gaps=merge_gaps)

    def __call__(self, doc: Doc) -> Doc:
        set_sentence_starts(doc, self.rush.predict([doc])[0])
        return doc

    def pipe(self, docs, batch_size: int = 128):
        for doc in docs:
            yield self(doc)


def set_sentence_starts(doc: Doc, starts: Sequence[bool]) -> None:
    """Set every token's sent_start (True or False) at once, as token-by-token sets would.

    doc (Doc): A doc without a parse (spaCy refuses sentence starts on a parsed doc).
    starts (Sequence[bool]): Whether each token starts a sentence.
    """
    import numpy
    from spacy.attrs import SENT_START
    from spacy.errors import Errors

    if len(starts) != len(doc):
        raise ValueError(f"{len(starts)} sentence starts for a doc of {len(doc)} tokens")
    if not len(doc):
        return
    if doc.has_annotation("DEP"):
        raise ValueError(Errors.E043)
    values = numpy.where(numpy.asarray(starts, dtype=bool), 1, -1).astype("int64").astype("uint64")
    doc.from_array([SENT_START], values)


@Language.factory(
    "clinlong_target_ents", default_config={"span_group": "medspacy_spans"}, assigns=["doc.ents"]
)
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


CONTEXT_DEFAULTS = {
    "rules": "default",
    "language_code": "en",
    "phrase_matcher_attr": "LOWER",
    "allowed_types": None,
    "excluded_types": None,
    "terminating_types": None,
    "max_scope": None,
    "max_targets": None,
    "prune_on_modifier_overlap": True,
    "prune_on_target_overlap": False,
    "span_attrs": "default",
    "input_span_type": "ents",
    "span_group_name": "medspacy_spans",
}


@Language.factory(
    "clinlong_context", default_config=CONTEXT_DEFAULTS, assigns=["span._.modifiers", "doc._.context_graph"]
)
def make_clinlong_context(
    nlp: Language,
    name: str,
    rules: Optional[str],
    language_code: str,
    phrase_matcher_attr: str,
    allowed_types: Optional[List[str]],
    excluded_types: Optional[List[str]],
    terminating_types: Optional[Dict[str, List[str]]],
    max_scope: Optional[int],
    max_targets: Optional[int],
    prune_on_modifier_overlap: bool,
    prune_on_target_overlap: bool,
    span_attrs: Union[str, Dict[str, Dict[str, Any]], None],
    input_span_type: str,
    span_group_name: str,
):
    """medspaCy's ConText (`medspacy_context`, same arguments and results), in time linear in the note.

    medspaCy's own compares every modifier with every modifier and every target in the
    doc; this one only those whose scopes can meet (see context_scopes.py).
    rules (Optional[str]): "default" (medspaCy's), a JSON rule file, or None.
    RETURNS (ScopedConText): The component; other arguments as medspaCy's ConText.
    """
    from .context_scopes import ScopedConText

    return ScopedConText(
        nlp,
        name,
        rules=rules,
        language_code=language_code,
        phrase_matcher_attr=phrase_matcher_attr,
        allowed_types=set(allowed_types) if allowed_types is not None else None,
        excluded_types=set(excluded_types) if excluded_types is not None else None,
        terminating_types=terminating_types,
        max_scope=max_scope,
        max_targets=max_targets,
        prune_on_modifier_overlap=prune_on_modifier_overlap,
        prune_on_target_overlap=prune_on_target_overlap,
        span_attrs=span_attrs,
        input_span_type=input_span_type,
        span_group_name=span_group_name,
    )


def has_sentences(nlp: Language) -> bool:
    """RETURNS (bool): Whether a component of the pipeline sets sentence boundaries."""
    return any(
        nlp.get_pipe_meta(name).factory in SENTENCE_SETTERS or name in SENTENCE_SETTERS
        for name in nlp.pipe_names
    )


def add_medspacy(
    nlp: Language,
    *,
    sentences: str = "fast",
    sectionizer: bool = True,
    context: bool = True,
    target_rules: Optional[Union[Sequence[Any], str, Path]] = None,
    doc_consumer: bool = True,
    context_rules: Optional[Union[str, Path]] = None,
    section_rules: Optional[Union[str, Path]] = None,
) -> Language:
    """Add medspaCy's components after the model, keeping the pipeline's tokenizer.

    nlp (Language): A pipeline whose entities (from a transformer `ner`) get ConText.
    sentences (str): "fast" adds `clinlong_sentences` (PyRuSH's rules as regular
        expressions, sentences.py), "pyrush" adds `clinlong_pyrush` (PyRuSH itself, quiet),
        either unless a component already sets sentences; "own" requires that one does
        (parser, senter, sentencizer).
    sectionizer (bool): Add `medspacy_sectionizer` with its default rules (or `section_rules`).
    context (bool): Add ConText (`clinlong_context`, named `medspacy_context`) with its default
        rules (or `context_rules`).
    target_rules (Optional[Union[Sequence[TargetRule], str, Path]]): Rules (or a JSON rule
        file) for `medspacy_target_matcher`; `clinlong_target_ents` adds its matches to
        the model's entities where they overlap none; None adds no matcher.
    doc_consumer (bool): Add medspaCy's doc consumer (tabular views in `doc._.data`) as
        `clinlong_doc_consumer` (the same data, fast on many entities), named `medspacy_doc_consumer`.
    RETURNS (Language): `nlp`, changed in place.
    """
    import medspacy  # noqa: F401  (registers medspaCy's factories and extensions)

    if sentences not in SENTENCE_CHOICES:
        raise ValueError(f"sentences must be one of {SENTENCE_CHOICES}, not {sentences!r}")
    if sentences == "own" and not has_sentences(nlp):
        raise ValueError(
            f"sentences='own' needs a component that sets sentences ({', '.join(SENTENCE_SETTERS[:3])}); "
            f"the pipeline has {nlp.pipe_names}. Use sentences='fast' or 'pyrush'."
        )
    if sentences in SENTENCE_FACTORIES and not has_sentences(nlp):
        nlp.add_pipe(SENTENCE_FACTORIES[sentences])
    if target_rules is not None:
        # Into a span group, then into doc.ents by clinlong_target_ents: medspaCy's own
        # "ents" mode warns with the matched text on every overlap.
        matcher = nlp.add_pipe(
            "medspacy_target_matcher", config={"result_type": "group", "span_group_name": TARGET_GROUP}
        )
        if isinstance(target_rules, (str, Path)):
            from medspacy.target_matcher import TargetRule

            target_rules = TargetRule.from_json(str(target_rules))
        matcher.add(list(target_rules))
        nlp.add_pipe("clinlong_target_ents", config={"span_group": TARGET_GROUP})
    if sectionizer:
        nlp.add_pipe("medspacy_sectionizer", config=_rules(section_rules))
    if context:
        nlp.add_pipe("clinlong_context", name="medspacy_context", config=_rules(context_rules))
    if doc_consumer:
        nlp.add_pipe(
            "clinlong_doc_consumer",
            name="medspacy_doc_consumer",
            config={"dtypes": _consumer_dtypes(sectionizer, context)},
        )
    return nlp


def _rules(path: Optional[Union[str, Path]]) -> dict:
    return {} if path is None else {"rules": str(path)}


def _consumer_dtypes(sectionizer: bool, context: bool) -> Iterable[str]:
    return ["ents"] + (["section"] if sectionizer else []) + (["context"] if context else [])
