"""The benchmark report: targets met or not, the JSON, the table and the plot."""

import json
from pathlib import Path
from typing import Any, Dict, List

from .systems import BASELINE


def machine_line(machine: Dict[str, Any]) -> str:
    """The machine of a report in one line: CPU, the instructions its kernels use
    (and any limit set on them), cores, and the device.

    machine (Dict[str, Any]): A report's `machine` (measure.machine_facts).
    RETURNS (str): E.g. "Intel Xeon (AVX512), 2 cores, cpu float32".
    """
    kernels = machine.get("cpu_capability", "?")
    limits = ", ".join(f"{name}={value}" for name, value in machine.get("isa_limits", {}).items())
    if limits:
        kernels += f", limited by {limits}"
    return (
        f"{machine['cpu']} ({kernels}), {machine['cpu_count']} cores, {machine['device']} {machine['dtype']}"
    )


def check_targets(summaries: List[Dict[str, Any]], *, gpu: bool) -> Dict[str, Any]:
    """The speed and memory targets, as met or not (None where a system did not run)."""
    by_key = {s["key"]: s for s in summaries}
    ours, strided, stock = by_key.get("longformer"), by_key.get(BASELINE), by_key.get("hf-longformer")
    int8 = by_key.get("longformer-int8")

    def ratio(a, b):
        return None if a is None or b is None else a["words_per_s"] / b["words_per_s"]

    vs_strided, vs_stock = ratio(ours, strided), ratio(ours, stock)
    if gpu:
        targets = {
            "longformer_wordpieces_per_s": None if ours is None else ours["wordpieces_per_s"],
            "longformer_at_least_1m_wordpieces_per_s": None
            if ours is None
            else ours["wordpieces_per_s"] >= 1e6,
            "longformer_vs_hf_longformer": vs_stock,
            "longformer_at_least_5x_hf_longformer": None if vs_stock is None else vs_stock >= 5,
        }
    else:
        targets = {
            "longformer_vs_strided": vs_strided,
            "longformer_at_least_1.3x_strided": None if vs_strided is None else vs_strided >= 1.3,
            "longformer_vs_hf_longformer": vs_stock,
            "longformer_at_least_2.5x_hf_longformer": None if vs_stock is None else vs_stock >= 2.5,
        }
        int8_gain = ratio(int8, ours)
        targets["longformer_int8_vs_longformer"] = int8_gain
        targets["longformer_int8_at_least_1.6x_fp32"] = None if int8_gain is None else int8_gain >= 1.6
    return targets


def _pyplot():
    """matplotlib's pyplot on the Agg backend (no display), or a one-line install hint."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError(
            "--plot needs matplotlib: pip install 'spacy-clinlong[bench]' (or matplotlib)"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot(report: Dict[str, Any], path: Path) -> Path:
    """A bar chart of words/s per system, min-max whiskers, ratio to (b).

    report (Dict[str, Any]): What run_benchmark returned.
    path (Path): The PNG to write.
    RETURNS (Path): The path.
    """
    plt = _pyplot()
    systems = report["systems"]
    names = [s["key"] for s in systems]
    means = [s["words_per_s"] for s in systems]
    low = [s["words_per_s"] - s["words_per_s_min"] for s in systems]
    high = [s["words_per_s_max"] - s["words_per_s"] for s in systems]
    colors = [
        "#2b6cb0" if s["key"] in ("longformer", "bigbird", "modernbert") else "#a0aec0" for s in systems
    ]
    fig, ax = plt.subplots(figsize=(8, 4.2), dpi=120)
    bars = ax.bar(names, means, yerr=[low, high], capsize=4, color=colors)
    for bar, s in zip(bars, systems):
        ratio = s.get("ratio_to_strided")
        if ratio is not None:
            ax.annotate(
                f"{ratio:.2f}x",
                (bar.get_x() + bar.get_width() / 2, s["words_per_s_max"]),
                ha="center",
                va="bottom",
                xytext=(0, 3),
                textcoords="offset points",
            )
    machine = report["machine"]
    notes = report["notes"]
    ax.set_ylabel("words / s (higher is better)")
    ax.set_title(
        f"{notes['count']} notes, {notes['words_per_note']:.0f} words each on average\n{machine_line(machine)}",
        fontsize=8,
    )
    ax.tick_params(axis="x", labelsize=8)
    return _save(plt, fig, path)


def write_report(report: Dict[str, Any], path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf8")
    return path


def format_table(report: Dict[str, Any]) -> str:
    """A Markdown table of the systems (what the README shows)."""
    gpu = report["machine"]["device"] != "cpu"
    head = "| system | words/s (min-max) | wordpieces/s | vs (b) | p50 / p95 s per note | RSS while reading, MB |"
    rule = "|---|---|---|---|---|---|"
    if gpu:
        head += " CUDA max MB |"
        rule += "---|"
    rows = [head, rule]
    for s in report["systems"]:
        ratio = s.get("ratio_to_strided")
        row = (
            f"| {s['label']} | {s['words_per_s']:,.0f} ({s['words_per_s_min']:,.0f}-{s['words_per_s_max']:,.0f}) "
            f"| {s['wordpieces_per_s']:,.0f} | {'-' if ratio is None else f'{ratio:.2f}x'} "
            f"| {s['latency_p50_s']:.2f} / {s['latency_p95_s']:.2f} | +{s['working_rss_mb']:,.0f} |"
        )
        if gpu:
            row += f" {s['cuda_max_allocated_mb']:,.0f} |"
        rows.append(row)
    return "\n".join(rows)


def format_groups_table(grouped: Dict[str, Any]) -> str:
    """A Markdown table of `run_groups`' runs: words/s and notes/s per group, batch size and system."""
    rows = [
        "| notes | batch | system | words/s (min-max) | notes/s | vs (b) |",
        "|---|---:|---|---|---:|---|",
    ]
    for run in grouped["runs"]:
        per_note = run["notes"]["words_per_note"]
        for s in run["systems"]:
            ratio = s.get("ratio_to_strided")
            rows.append(
                f"| {run['group']} ({run['notes']['count']} x {per_note:,.0f} words) "
                f"| {run['settings']['batch_size']} | {s['key']} "
                f"| {s['words_per_s']:,.0f} ({s['words_per_s_min']:,.0f}-{s['words_per_s_max']:,.0f}) "
                f"| {s['words_per_s'] / per_note:.2f} | {'-' if ratio is None else f'{ratio:.2f}x'} |"
            )
    return "\n".join(rows)


def plot_groups(grouped: Dict[str, Any], path: Path) -> Path:
    """Bars of words/s per system, side by side for each group of notes and batch size.

    grouped (Dict[str, Any]): What run_groups returned.
    path (Path): The PNG to write.
    RETURNS (Path): The path.
    """
    plt = _pyplot()
    runs = grouped["runs"]
    keys = list(dict.fromkeys(s["key"] for run in runs for s in run["systems"]))
    width = 0.8 / max(len(keys), 1)
    fig, ax = plt.subplots(figsize=(9, 4.2), dpi=120)
    for k, key in enumerate(keys):
        xs, ys = [], []
        for r, run in enumerate(runs):
            found = next((s for s in run["systems"] if s["key"] == key), None)
            if found is not None:
                xs.append(r + (k - (len(keys) - 1) / 2) * width)
                ys.append(found["words_per_s"])
        ax.bar(xs, ys, width=width, label=key)
    ax.set_xticks(range(len(runs)))
    ax.set_xticklabels([f"{run['group']}\nbatch {run['settings']['batch_size']}" for run in runs], fontsize=8)
    ax.set_ylabel("words / s (higher is better)")
    machine = grouped["machine"]
    ax.set_title(machine_line(machine), fontsize=8)
    ax.legend(fontsize=8)
    return _save(plt, fig, path)
