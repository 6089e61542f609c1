"""What `quantize = "int8"` does to a pipeline's answers on a user's own notes.

`check_int8` loads a saved pipeline twice, as saved in fp32 and with every
long-span model of ours switched to int8 (the same config override a user
gives `spacy.load`), reads the same notes with both, and reports how many of
fp32's entities int8 finds again (same offsets and label), the two sets'
F1 taken fp32 as the reference, per label; for text classification, how often
each label's decision at 0.5 is the same and the largest score difference;
for span groups the same as entities; and both pipelines' words/s. Only counts
and scores leave this module, never note text.
"""

import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

from ..models.architecture import MODEL_ARCH, TOK2VEC_ARCH
from ..models.qa_model import QA_ARCH
from .bench.measure import machine_facts
from .bench.report import machine_line

QUANTIZABLE = (MODEL_ARCH, TOK2VEC_ARCH, QA_ARCH)
SpanKey = Tuple[int, int, str]  # start_char, end_char, label


def quantize_settings(config: Dict[str, Any]) -> Dict[str, Optional[str]]:
    """Where a pipeline's long-span models take their `quantize` setting, and its value.

    config (Dict[str, Any]): A pipeline's config (`nlp.config`).
    RETURNS (Dict[str, Optional[str]]): Dotted config paths
        ("components.transformer.model.quantize") to their value as saved (None: fp32).
    """
    found: Dict[str, Optional[str]] = {}

    def walk(node: Any, path: Tuple[str, ...]) -> None:
        if isinstance(node, dict):
            if node.get("@architectures") in QUANTIZABLE:
                found[".".join(path + ("quantize",))] = node.get("quantize")
            for key, value in node.items():
                walk(value, path + (str(key),))

    walk(dict(config.get("components", {})), ("components",))
    return found


def _spans(doc) -> Dict[str, Set[SpanKey]]:
    out = {"ents": {(e.start_char, e.end_char, e.label_) for e in doc.ents}}
    for key, group in doc.spans.items():
        out[f"spans:{key}"] = {(s.start_char, s.end_char, s.label_) for s in group}
    return out


class _SpanTally:
    def __init__(self) -> None:
        self.fp32: Counter = Counter()
        self.int8: Counter = Counter()
        self.both: Counter = Counter()

    def add(self, a: Set[SpanKey], b: Set[SpanKey]) -> None:
        self.fp32.update(label for _, _, label in a)
        self.int8.update(label for _, _, label in b)
        self.both.update(label for _, _, label in a & b)

    @staticmethod
    def _scores(fp32: int, int8: int, both: int) -> Dict[str, Any]:
        return {
            "fp32": fp32,
            "int8": int8,
            "same": both,
            # The share of fp32's spans that int8 finds again, and the F1 of int8
            # against fp32 (which also counts the spans int8 adds).
            "kept": both / fp32 if fp32 else None,
            "f1": 2 * both / (fp32 + int8) if fp32 + int8 else None,
        }

    def report(self) -> Dict[str, Any]:
        labels = sorted(set(self.fp32) | set(self.int8))
        out = self._scores(sum(self.fp32.values()), sum(self.int8.values()), sum(self.both.values()))
        out["per_label"] = {
            label: self._scores(self.fp32[label], self.int8[label], self.both[label]) for label in labels
        }
        return out


def compare_docs(fp32_docs: Iterable, int8_docs: Iterable, threshold: float = 0.5) -> Dict[str, Any]:
    """Agreement of int8's docs with fp32's docs of the same notes.

    fp32_docs (Iterable[Doc]): The notes as the fp32 pipeline read them.
    int8_docs (Iterable[Doc]): The same notes, in the same order, read in int8.
    threshold (float): The score at which a category counts as assigned.
    RETURNS (Dict[str, Any]): "notes"; per span kind ("ents", "spans:KEY") the counts,
        "kept" and "f1", overall and per label; "cats" with, per label, the share of
        notes with the same decision and the largest score difference.
    """
    tallies: Dict[str, _SpanTally] = {}
    cat_same: Counter = Counter()
    cat_diff: Dict[str, float] = {}
    notes = 0
    for a, b in zip(fp32_docs, int8_docs):
        notes += 1
        spans_a, spans_b = _spans(a), _spans(b)
        for kind in sorted(set(spans_a) | set(spans_b)):
            tallies.setdefault(kind, _SpanTally()).add(spans_a.get(kind, set()), spans_b.get(kind, set()))
        for label in sorted(set(a.cats) | set(b.cats)):
            sa, sb = a.cats.get(label, 0.0), b.cats.get(label, 0.0)
            cat_same[label] += (sa >= threshold) == (sb >= threshold)
            cat_diff[label] = max(cat_diff.get(label, 0.0), abs(sa - sb))
    out: Dict[str, Any] = {"notes": notes}
    for kind, tally in sorted(tallies.items()):
        out[kind] = tally.report()
    if cat_diff:
        out["cats"] = {
            label: {"same_decision": cat_same[label] / notes, "max_score_difference": cat_diff[label]}
            for label in sorted(cat_diff)
        }
    return out


def _read(nlp, texts: Sequence[str], batch_size: int) -> Tuple[List, float]:
    nlp(texts[0])  # warm-up: the int8 copy is made on first use
    start = time.perf_counter()
    docs = list(nlp.pipe(texts, batch_size=batch_size))
    return docs, time.perf_counter() - start


def check_int8(model: Union[str, Path], texts: Sequence[str], *, batch_size: int = 8) -> Dict[str, Any]:
    """Read notes with a pipeline in fp32 and in int8 and compare the answers.

    model (Union[str, Path]): A saved pipeline (a directory or an installed package name).
    texts (Sequence[str]): The notes.
    batch_size (int): `nlp.pipe`'s batch size, the same for both.
    RETURNS (Dict[str, Any]): `compare_docs`'s report, plus "overrides" (what was
        switched to int8; a pipeline saved with int8 on is read in fp32 with it off),
        "words", words/s for each precision and the "machine" they were measured on.
    """
    import spacy

    if not texts:
        raise ValueError("no notes to compare")
    fp32 = spacy.load(model)
    saved = quantize_settings(fp32.config)
    if not saved:
        raise ValueError(
            f"{model}: no long-span model of spacy-clinlong in the pipeline, so int8 changes nothing"
        )
    if any(saved.values()):  # saved with int8 switched on: compare against fp32 all the same
        fp32 = spacy.load(model, config={path: None for path in saved})
    overrides = {path: "int8" for path in saved}
    int8 = spacy.load(model, config=overrides)
    fp32_docs, fp32_s = _read(fp32, texts, batch_size)
    int8_docs, int8_s = _read(int8, texts, batch_size)
    words = sum(len(doc) for doc in fp32_docs)
    report = compare_docs(fp32_docs, int8_docs)
    report.update(
        overrides=sorted(overrides),
        words=words,
        batch_size=batch_size,
        fp32_words_per_s=words / fp32_s,
        int8_words_per_s=words / int8_s,
        machine=machine_facts(None),
    )
    return report


def format_int8_report(report: Dict[str, Any], limit_labels: Optional[int] = 20) -> List[str]:
    """RETURNS (List[str]): The report as markdown lines: speed, then one table per span kind and cats."""

    def pct(value: Optional[float]) -> str:
        return "-" if value is None else f"{100 * value:.1f}%"

    lines = [
        f"{report['notes']} notes, {report['words']:,} words, batch size {report['batch_size']}: "
        f"fp32 {report['fp32_words_per_s']:,.0f} words/s, int8 {report['int8_words_per_s']:,.0f} words/s "
        f"({report['int8_words_per_s'] / report['fp32_words_per_s']:.2f}x) on {machine_line(report['machine'])}",
    ]
    for kind in [key for key in report if key == "ents" or key.startswith("spans:")]:
        scores = report[kind]
        lines += [
            "",
            f"| {kind} | fp32 | int8 | same | kept | F1 |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        rows = [("all", scores)] + list(scores["per_label"].items())[:limit_labels]
        for label, s in rows:
            lines.append(
                f"| {label} | {s['fp32']} | {s['int8']} | {s['same']} | {pct(s['kept'])} | {pct(s['f1'])} |"
            )
    if "cats" in report:
        lines += ["", "| category | same decision | largest score difference |", "|---|---:|---:|"]
        for label, s in list(report["cats"].items())[:limit_labels]:
            lines.append(f"| {label} | {pct(s['same_decision'])} | {s['max_score_difference']:.3f} |")
    return lines
