"""A markdown summary of the metrics the workflow writes (spacy evaluate JSON).

Files are named `<task>_<system>.json` in one folder, e.g. `ner_long.json`,
`ner_strided.json`, `textcat_multilabel_long.json`, `qa_long.json`,
`longrange_long.json`, `pretrain_mlm.json`. The summary
has one overall table and, per task, a per-label table with every system side
by side, so long spans and strided windows can be compared label by label.
"""

from pathlib import Path
from typing import Dict, List, Optional, Tuple

import srsly

# (task, overall metric keys shown, per-label key, per-label field)
_TASKS = {
    "ner": (("ents_f", "ents_p", "ents_r"), "ents_per_type", "f"),
    "textcat_multilabel": (("cats_macro_auc", "cats_macro_f", "cats_micro_f"), "cats_f_per_type", "f"),
    "qa": (("qa_f1", "qa_exact"), None, None),
    # held-out masked-LM loss of continued pretraining (python -m spacy_clinlong pretrain)
    "pretrain": (
        (
            "heldout_loss_before",
            "heldout_loss_after",
            "heldout_perplexity_before",
            "heldout_perplexity_after",
        ),
        None,
        None,
    ),
    # entity recall by distance from the section header (python -m spacy_clinlong long-range)
    "longrange": (("longrange_far_recall",), "longrange_per_bucket", "r"),
}


def load_metrics(metrics_dir: Path) -> Dict[Tuple[str, str], Dict]:
    """Read every `<task>_<system>.json` in a folder.

    metrics_dir (Path): The folder.
    RETURNS (Dict[Tuple[str, str], Dict]): Metrics keyed by (task, system).
    """
    found: Dict[Tuple[str, str], Dict] = {}
    for path in sorted(Path(metrics_dir).glob("*.json")):
        for task in sorted(_TASKS, key=len, reverse=True):
            prefix = task + "_"
            if path.stem.startswith(prefix):
                found[(task, path.stem[len(prefix) :])] = srsly.read_json(path)
                break
    return found


def summarize(metrics_dir: Path) -> str:
    """Render the summary tables for a metrics folder.

    metrics_dir (Path): Folder of `<task>_<system>.json` files.
    RETURNS (str): Markdown.
    """
    metrics = load_metrics(metrics_dir)
    if not metrics:
        raise ValueError(f"No <task>_<system>.json metrics in {metrics_dir}")
    lines = ["# Results", "", "| task | system | metric | score |", "| --- | --- | --- | --- |"]
    for (task, system), scores in metrics.items():
        for key in _TASKS[task][0]:
            if scores.get(key) is not None:
                lines.append(f"| {task} | {system} | {key} | {_fmt(scores[key])} |")
    for task, (_, per_key, field) in _TASKS.items():
        systems = [s for (t, s) in metrics if t == task]
        if not per_key or not systems:
            continue
        labels = sorted({label for s in systems for label in (metrics[(task, s)].get(per_key) or {})})
        if not labels:
            continue
        lines += ["", f"## {task}: {per_key} ({field})", ""]
        header = "| label | " + " | ".join(systems) + " |"
        # long vs strided where both ran (other systems, such as bow, are shown beside them)
        pair = (
            ("long", "strided")
            if {"long", "strided"} <= set(systems)
            else tuple(systems)
            if len(systems) == 2
            else ()
        )
        if pair:
            header += f" {pair[0]} - {pair[1]} |"
        lines += [header, "| --- " * (header.count("|") - 1) + "|"]
        for label in labels:
            values = [_per_label(metrics[(task, s)], per_key, label, field) for s in systems]
            row = f"| {label} | " + " | ".join(_fmt(v) for v in values) + " |"
            if pair:
                first, second = (values[systems.index(name)] for name in pair)
                diff = None if first is None or second is None else first - second
                row += f" {_fmt(diff, signed=True)} |"
            lines.append(row)
    return "\n".join(lines) + "\n"


def compare_labels(metrics_dir: Path, task: str, first: str, second: str) -> Dict[str, Optional[float]]:
    """Per-label differences first - second for one task.

    metrics_dir (Path): Folder of metrics.
    task (str): "ner" or "textcat_multilabel".
    first (str): A system, e.g. "long".
    second (str): Another, e.g. "strided".
    RETURNS (Dict[str, Optional[float]]): Label to difference (None if missing).
    """
    metrics = load_metrics(metrics_dir)
    _, per_key, field = _TASKS[task]
    a, b = metrics[(task, first)], metrics[(task, second)]
    labels = sorted(set(a.get(per_key) or {}) | set(b.get(per_key) or {}))
    out: Dict[str, Optional[float]] = {}
    for label in labels:
        x, y = _per_label(a, per_key, label, field), _per_label(b, per_key, label, field)
        out[label] = None if x is None or y is None else x - y
    return out


def _per_label(scores: Dict, per_key: str, label: str, field: str) -> Optional[float]:
    value = (scores.get(per_key) or {}).get(label)
    if isinstance(value, dict):
        value = value.get(field)
    return None if value is None else float(value)


def _fmt(value, signed: bool = False) -> str:
    if value is None:
        return "n/a"
    value = float(value)
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def write_summary(metrics_dir: Path, output: Path) -> List[str]:
    """Write the summary markdown; return its lines."""
    text = summarize(metrics_dir)
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_text(text)
    return text.splitlines()
