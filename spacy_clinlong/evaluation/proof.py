"""Does long context pay? Every proof pipeline and baseline scored on the same held-out notes.

The proof workflow trains the same real weights twice, on whole notes and
through strided windows, plus spaCy's own baselines; `proof_report` scores
them on one gold test set and checks the targets: what a reader gains from
seeing a list item's section header hundreds of wordpieces up.
"""

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.training import Example

from .long_range import long_range_scores
from .qa_baselines import (
    BASELINES,
    pipeline_answers,
    question_scores,
    scores_by_distance,
    summarize,
)

# (name, description, the check on the report)
TARGETS = (
    (
        "allergen_far_recall",
        "ALLERGEN recall > 128 tokens from the header: long - strided >= 0.20",
        lambda r: _diff(
            r, ("long", "longrange", "ALLERGEN far", "r"), ("strided", "longrange", "ALLERGEN far", "r")
        ),
        0.20,
    ),
    (
        "allergen_f1",
        "ALLERGEN F1: long - strided >= 0.10",
        lambda r: _diff(
            r, ("long", "ents_per_type", "ALLERGEN", "f"), ("strided", "ents_per_type", "ALLERGEN", "f")
        ),
        0.10,
    ),
    (
        "allergy_conflict_auc",
        "ALLERGY_CONFLICT AUC (long) >= 0.80",
        lambda r: _get(r, ("long", "cats_auc_per_type", "ALLERGY_CONFLICT")),
        0.80,
    ),
    (
        "macro_auc_vs_bow",
        "textcat macro AUC: long - bag-of-words >= 0.05",
        lambda r: _diff(r, ("long", "cats_macro_auc"), ("bow", "cats_macro_auc")),
        0.05,
    ),
    (
        "qa_far_f1",
        "QA F1 on answers > 128 tokens below their header: long - strided >= 0.10",
        lambda r: _diff(
            r, ("qa_long", "by_distance", "far", "qa_f1"), ("qa_strided", "by_distance", "far", "qa_f1")
        ),
        0.10,
    ),
)


def load_gold(path: Path, nlp: Language) -> List[Doc]:
    """RETURNS (List[Doc]): The gold docs of a .spacy file, in nlp's vocab (user data kept)."""
    return list(DocBin(store_user_data=True).from_disk(path).get_docs(nlp.vocab))


def score_tagger_pipeline(nlp: Language, gold: Sequence[Doc]) -> Dict[str, Any]:
    """ner and textcat scores of one pipeline, and ner recall by distance from the header.

    nlp (Language): A pipeline with ner and/or textcat_multilabel.
    gold (Sequence[Doc]): Gold docs (entities, cats, labelled sections).
    RETURNS (Dict[str, Any]): spaCy's scores (ents_*, cats_*), plus "longrange"
        (`long_range_scores`' per-bucket recall) where the pipeline sets entities.
    """
    examples = [Example(nlp.make_doc(doc.text), doc) for doc in gold]
    scores = nlp.evaluate(examples)
    keep = (
        "ents_f",
        "ents_p",
        "ents_r",
        "ents_per_type",
        "cats_macro_auc",
        "cats_auc_per_type",
        "cats_macro_f",
        "cats_f_per_type",
    )
    out = {k: scores[k] for k in keep if scores.get(k) is not None}
    if "ents_per_type" in out:
        out["longrange"] = long_range_scores(nlp, gold)["longrange_per_bucket"]
    return out


def score_qa_pipeline(nlp: Language, gold: Sequence[Doc]) -> Dict[str, Any]:
    """SQuAD 2.0 EM/F1 of a clinlong_qa pipeline, overall and by the answer's header distance.

    RETURNS (Dict[str, Any]): qa_exact, qa_f1 and "by_distance" (spaCy tokens).
    """
    rows = question_scores(gold, answers=pipeline_answers(nlp, gold))
    return {**summarize(rows), "n": len(rows), "by_distance": scores_by_distance(rows)}


def score_qa_baselines(gold: Sequence[Doc]) -> Dict[str, Any]:
    """RETURNS (Dict[str, Any]): Per trivial baseline, what `score_qa_pipeline` gives."""
    out = {}
    for name, answer in BASELINES.items():
        rows = question_scores(gold, answer_fn=answer)
        out[name] = {**summarize(rows), "n": len(rows), "by_distance": scores_by_distance(rows)}
    return out


def check_targets(report: Dict[str, Any]) -> List[Dict[str, Any]]:
    """RETURNS (List[Dict[str, Any]]): Per target its value, bound and whether it holds (None: not measured)."""
    rows = []
    for name, about, measure, bound in TARGETS:
        value = measure(report)
        rows.append(
            {
                "name": name,
                "about": about,
                "value": value,
                "bound": bound,
                "holds": None if value is None else value >= bound,
            }
        )
    return rows


def machine(gpu_id: int = -1) -> Dict[str, Any]:
    """RETURNS (Dict[str, Any]): CPU, cores, library versions and the device, as the benchmark reports them."""
    from .bench import machine_facts

    return machine_facts(gpu_id if gpu_id >= 0 else None)


def _get(report: Dict[str, Any], path: Sequence[str]) -> Optional[float]:
    node: Any = report
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return float(node) if isinstance(node, (int, float)) else None


def _diff(report: Dict[str, Any], a: Sequence[str], b: Sequence[str]) -> Optional[float]:
    x, y = _get(report, a), _get(report, b)
    return None if x is None or y is None else x - y


def _fmt(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:.3f}"


def _label_table(
    report: Dict[str, Any],
    systems: List[str],
    title: str,
    overall: Sequence[str],
    per_key: str,
    field: Sequence[str],
) -> List[str]:
    """Markdown lines: one row for the overall score, then one per label, a column per system."""
    labels = sorted({label for s in systems for label in report[s][per_key]})
    lines = [
        "",
        f"## {title}",
        "",
        "| label | " + " | ".join(systems) + " |",
        "|---|" + "---|" * len(systems),
    ]
    lines.append(f"| {overall[0]} | " + " | ".join(_fmt(report[s].get(overall[1])) for s in systems) + " |")
    for label in labels:
        cells = [_fmt(_get(report, (s, per_key, label, *field))) for s in systems]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def render_markdown(report: Dict[str, Any]) -> str:
    """The report as markdown tables: targets, ner, textcat, long range, QA.

    report (Dict[str, Any]): What `proof-report` writes to proof.json.
    RETURNS (str): Markdown.
    """
    systems = [s for s in ("long", "strided", "ner_cpu", "bow") if s in report]
    lines = ["# Does long context pay?", ""]
    info = report.get("machine", {})
    lines += [
        f"Test notes: {report.get('test_notes')}. Machine: {info.get('cpu')}, {info.get('cpu_count')} cores, "
        f"torch {info.get('torch')}, spaCy {info.get('spacy')}, device {info.get('device')}.",
        "",
    ]
    lines += ["## Targets", "", "| target | value | bound | holds |", "|---|---|---|---|"]
    for row in report.get("targets", []):
        holds = "not measured" if row["holds"] is None else ("yes" if row["holds"] else "no")
        lines.append(f"| {row['about']} | {_fmt(row['value'])} | {row['bound']:.2f} | {holds} |")
    ner = [s for s in systems if "ents_per_type" in report[s]]
    if ner:
        lines += _label_table(report, ner, "ner F1 per label", ("all", "ents_f"), "ents_per_type", ("f",))
        buckets = sorted({b for s in ner for b in report[s].get("longrange", {})})
        lines += [
            "",
            "## ner recall by distance from the section header (spaCy tokens)",
            "",
            "| label, bucket | n | " + " | ".join(ner) + " |",
            "|---|---|" + "---|" * len(ner),
        ]
        for bucket in buckets:
            n = next(
                report[s]["longrange"][bucket]["n"] for s in ner if bucket in report[s].get("longrange", {})
            )
            cells = [_fmt(_get(report, (s, "longrange", bucket, "r"))) for s in ner]
            lines.append(f"| {bucket} | {n} | " + " | ".join(cells) + " |")
    cats = [s for s in systems if "cats_auc_per_type" in report[s]]
    if cats:
        lines += _label_table(
            report,
            cats,
            "textcat_multilabel AUC per label",
            ("macro", "cats_macro_auc"),
            "cats_auc_per_type",
            (),
        )
    qa = [s for s in ("qa_long", "qa_strided") if s in report] + sorted(report.get("qa_baselines", {}))
    if qa:

        def node(name):
            return report[name] if name in report else report["qa_baselines"][name]

        buckets = sorted({b for name in qa for b in node(name).get("by_distance", {})})
        lines += [
            "",
            "## QA exact match / F1 by the answer's distance from its section header (spaCy tokens)",
            "",
            "| questions | n | " + " | ".join(qa) + " |",
            "|---|---|" + "---|" * len(qa),
        ]
        first = node(qa[0])
        lines.append(
            f"| all | {first.get('n')} | "
            + " | ".join(f"{_fmt(node(q).get('qa_exact'))} / {_fmt(node(q).get('qa_f1'))}" for q in qa)
            + " |"
        )
        for bucket in buckets:
            n = next(node(q)["by_distance"][bucket]["n"] for q in qa if bucket in node(q)["by_distance"])
            cells = []
            for q in qa:
                part = node(q)["by_distance"].get(bucket, {})
                cells.append(f"{_fmt(part.get('qa_exact'))} / {_fmt(part.get('qa_f1'))}")
            lines.append(f"| {bucket} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
