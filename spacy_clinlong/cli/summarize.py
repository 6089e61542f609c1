"""`summarize`: one markdown table from the workflow's metrics JSON files."""

from pathlib import Path

import typer

from ._app import app, fail


@app.command("summarize")
def summarize_cli(
    metrics_dir: Path = typer.Argument(
        ..., help="Folder of <task>_<system>.json files (spacy evaluate output)", exists=True, file_okay=False
    ),
    output: Path = typer.Argument(..., help="Markdown file to write"),
) -> None:
    """Summarize metrics: overall per task and system, and per label side by side."""
    from ..evaluation.summary import write_summary

    try:
        lines = write_summary(metrics_dir, output)
    except ValueError as err:
        fail(str(err))
    typer.echo("\n".join(lines))
