"""How fast medspaCy's stages run after the model, and how close `clinlong_sentences` is to PyRuSH.

`measure_medspacy_speed(texts)` times, on one core, each component on the notes one by
one and on one long note made of them all: the sentence splitters (`clinlong_sentences`,
PyRuSH), then the sectionizer, ConText and the doc consumer as medspaCy runs them
("medspacy": spaCy's rule Matcher in ConText, medspaCy's DocConsumer) and as
`add_medspacy` adds them ("fast": `LowerMatcher`, `clinlong_doc_consumer`), checking
that both give the same `doc._.data`. Entities come from a small term list, so no
model is needed. Words are whitespace-separated words of the text.
"""

import os
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

import numpy
import spacy
from spacy.language import Language
from spacy.tokens import Doc

TERMS = (
    "pain", "chest pain", "hypertension", "diabetes", "fever", "cough", "nausea", "vomiting",
    "infection", "bleeding", "edema", "pneumonia", "fracture", "tumor", "mass", "effusion",
    "stenosis", "shortness of breath", "headache", "anemia", "cancer", "carcinoma", "hernia",
)  # fmt: skip


@contextmanager
def one_core(cpu: Optional[int]):
    """Run the block pinned to one CPU (where the OS allows), then restore the affinity."""
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _best(run: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def sentence_agreement(docs: Sequence[Doc], ours: Sequence[Sequence[bool]], theirs: Sequence[Sequence[bool]]):
    """Precision, recall and F1 of our sentence-start tokens against another splitter's.

    Token 0 counts as a start for both (spaCy treats it as one). Scores are given over all
    tokens and over non-whitespace tokens (PyRuSH also starts a sentence at whitespace
    tokens between sentences).
    RETURNS (Dict[str, Dict[str, float]]): {"all": {...}, "words": {...}}, each with
        precision, recall, f1, and the counts.
    """
    counts = {"all": numpy.zeros(3, dtype="int64"), "words": numpy.zeros(3, dtype="int64")}
    for doc, a, b in zip(docs, ours, theirs):
        a = numpy.asarray(a, dtype=bool).copy()
        b = numpy.asarray(b, dtype=bool).copy()
        if not len(a):
            continue
        a[0] = b[0] = True
        words = numpy.array([not token.is_space for token in doc], dtype=bool)
        for key, mask in (("all", numpy.ones_like(words)), ("words", words)):
            counts[key] += [(a & b & mask).sum(), (a & ~b & mask).sum(), (~a & b & mask).sum()]
    out = {}
    for key, (tp, fp, fn) in counts.items():
        precision = tp / max(tp + fp, 1)
        recall = tp / max(tp + fn, 1)
        f1 = 2 * precision * recall / max(precision + recall, 1e-12)
        out[key] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "tp": int(tp),
            "fp": int(fp),
            "fn": int(fn),
        }
    return out


def _ruler(nlp: Language, terms: Iterable[str]) -> Any:
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "PROBLEM", "pattern": [{"LOWER": w} for w in t.split()]} for t in terms])
    return ruler


def _rule_components(nlp: Language, fast: bool) -> Dict[str, Callable[[Doc], Doc]]:
    from medspacy.io.doc_consumer import DocConsumer
    from medspacy.section_detection import Sectionizer

    from .context_scopes import ScopedConText
    from .doc_consumer import FastDocConsumer

    context = ScopedConText(nlp, "medspacy_context")
    if not fast:  # spaCy's Matcher back in place of the LowerMatcher
        matcher = context._ConText__matcher
        lower = matcher._MedspacyMatcher__matcher
        matcher._MedspacyMatcher__matcher = getattr(lower, "matcher", lower)
    consumer = (FastDocConsumer if fast else DocConsumer)(nlp, dtypes=("ents", "section", "context"))
    return {"sectionizer": Sectionizer(nlp), "context": context, "doc_consumer": consumer}


def _time_rules(docs: List[Doc], components, repeats: int) -> Dict[str, float]:
    times = {}
    for name, component in components.items():
        times[name] = _best(lambda component=component: [component(doc) for doc in docs], repeats)
    return times


def measure_medspacy_speed(
    texts: Sequence[str],
    *,
    repeats: int = 3,
    pyrush: bool = True,
    long_note: bool = True,
    cpu: Optional[int] = 0,
    terms: Sequence[str] = TERMS,
) -> Dict[str, Any]:
    """Words per second of each medspaCy stage on one core, and the splitter's agreement with PyRuSH.

    texts (Sequence[str]): Notes (e.g. deduplicated MTSamples transcriptions).
    repeats (int): Timings are the fastest of this many runs (PyRuSH runs once).
    pyrush (bool): Also time PyRuSH and score `clinlong_sentences` against it.
    long_note (bool): Also time the rule components on all notes joined as one note.
    cpu (Optional[int]): The CPU to pin to while timing; None leaves the affinity alone.
    terms (Sequence[str]): Words that the entity ruler marks as entities.
    RETURNS (Dict[str, Any]): "notes", "words", "sentences" (words/s of each splitter and
        the agreement), "rules" (words/s of each component, "medspacy" and "fast", per
        note and on the long note), "identical" (same doc._.data and ConText edges).
    """
    import medspacy  # noqa: F401  (extensions)

    from .pipes import QuietPyRuSH
    from .sentences import ClinicalSentences

    texts = list(dict.fromkeys(t for t in texts if t and t.strip()))
    nlp = spacy.blank("en")
    nlp.max_length = max([nlp.max_length] + [len(t) + 1 for t in texts])
    docs = [nlp.make_doc(t) for t in texts]
    words = sum(len(t.split()) for t in texts)
    result: Dict[str, Any] = {"notes": len(texts), "words": words, "cpu": cpu}
    with one_core(cpu):
        splitter = ClinicalSentences()
        ours = [splitter.predict(doc) for doc in docs]
        seconds = _best(lambda: [splitter(doc) for doc in docs], repeats)
        sentences: Dict[str, Any] = {"clinlong_sentences_words_per_s": words / seconds}
        if pyrush:
            rush = QuietPyRuSH(nlp, "clinlong_pyrush")
            start = time.perf_counter()
            theirs = [rush.rush.predict([doc])[0] for doc in docs]
            sentences["pyrush_words_per_s"] = words / (time.perf_counter() - start)
            sentences["agreement"] = sentence_agreement(docs, ours, theirs)
        result["sentences"] = sentences

        ruler = _ruler(nlp, terms)
        for doc in docs:
            splitter(ruler(doc))
        batches = {"notes": docs}
        if long_note:
            long_text = "\n\n".join(texts)
            nlp.max_length = max(nlp.max_length, len(long_text) + 1)
            batches["long_note"] = [splitter(ruler(nlp.make_doc(long_text)))]
        rules: Dict[str, Any] = {}
        identical = True
        for batch, batch_docs in batches.items():
            outputs = {}
            for variant in ("medspacy", "fast"):
                times = _time_rules(batch_docs, _rule_components(nlp, variant == "fast"), repeats)
                times["total"] = sum(times.values())
                rules[f"{variant}_{batch}"] = {name: words / t for name, t in times.items()}
                outputs[variant] = [(doc._.data, _edges(doc)) for doc in batch_docs]
            identical = identical and outputs["medspacy"] == outputs["fast"]
        result["rules"] = rules
        result["identical"] = identical
    return result


def _edges(doc: Doc) -> List[tuple]:
    return [
        (ent.start, ent.end, modifier.category, modifier.modifier_span, modifier.scope_span)
        for ent, modifier in doc._.context_graph.edges
    ]
