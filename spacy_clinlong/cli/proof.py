"""`proof-report`: long vs strided vs baselines on the same held-out notes."""

from pathlib import Path
from typing import Optional

import typer

from ._app import app, fail


@app.command("proof-report")
def proof_report_cli(
    data: Path = typer.Argument(
        ..., help="Gold .spacy test notes (sections, entities, cats, QA gold)", exists=True
    ),
    output_json: Path = typer.Argument(..., help="Report to write (metrics/proof.json)"),
    output_md: Path = typer.Argument(..., help="Markdown tables to write (metrics/proof.md)"),
    long: Optional[Path] = typer.Option(None, "--long", help="ner + textcat pipeline on whole notes"),
    strided: Optional[Path] = typer.Option(None, "--strided", help="The same through strided windows"),
    bow: Optional[Path] = typer.Option(None, "--bow", help="spaCy's bag-of-words textcat_multilabel"),
    ner_cpu: Optional[Path] = typer.Option(None, "--ner-cpu", help="spaCy's CPU ner"),
    qa_long: Optional[Path] = typer.Option(None, "--qa-long", help="clinlong_qa on whole notes"),
    qa_strided: Optional[Path] = typer.Option(
        None, "--qa-strided", help="clinlong_qa through 384/128 windows"
    ),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="GPU to use; -1 for CPU"),
) -> None:
    """Score every proof pipeline and baseline on the same notes and check the targets.

    Each pipeline is optional; a target whose pipelines are missing is
    reported as not measured. QA is also scored for the trivial answers
    (always no answer; the sentence with most words of the question).
    """
    import time

    import spacy
    import srsly
    from thinc.api import require_gpu

    from ..evaluation.proof import (
        check_targets,
        load_gold,
        machine,
        render_markdown,
        score_qa_baselines,
        score_qa_pipeline,
        score_tagger_pipeline,
    )

    pipelines = {
        "long": long,
        "strided": strided,
        "bow": bow,
        "ner_cpu": ner_cpu,
        "qa_long": qa_long,
        "qa_strided": qa_strided,
    }
    missing = [
        f"--{name.replace('_', '-')} {path}"
        for name, path in pipelines.items()
        if path is not None and not (path / "config.cfg").exists()
    ]
    if missing:
        fail(f"Not a pipeline directory (no config.cfg): {', '.join(missing)}")
    if gpu_id >= 0:
        require_gpu(gpu_id)
    report = {"machine": machine(gpu_id), "seconds": {}}
    gold_docs = None
    for name, path in pipelines.items():
        if path is None:
            continue
        start = time.perf_counter()
        nlp = spacy.load(path)
        gold = load_gold(data, nlp)
        gold_docs = gold
        report[name] = (
            score_qa_pipeline(nlp, gold) if name.startswith("qa") else score_tagger_pipeline(nlp, gold)
        )
        report["seconds"][name] = round(time.perf_counter() - start, 1)
        typer.echo(f"Scored {name} ({path}) in {report['seconds'][name]} s")
    if gold_docs is None:
        gold_docs = load_gold(data, spacy.blank("en"))
    report["test_notes"] = len(gold_docs)
    report["qa_baselines"] = score_qa_baselines(gold_docs)
    report["targets"] = check_targets(report)
    output_json.parent.mkdir(parents=True, exist_ok=True)
    srsly.write_json(output_json, report)
    output_md.parent.mkdir(parents=True, exist_ok=True)
    markdown = render_markdown(report)
    output_md.write_text(markdown, encoding="utf8")
    typer.echo(markdown)
