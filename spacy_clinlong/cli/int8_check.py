"""`check-int8`: what `quantize = "int8"` changes in a pipeline's answers, on the user's notes."""

import json
from pathlib import Path
from typing import Optional

import typer

from ._app import app, fail


@app.command("check-int8")
def check_int8_cli(
    model: str = typer.Argument(..., help="A saved pipeline: a directory or an installed package"),
    notes: Path = typer.Argument(
        ..., exists=True, help="Notes: a directory of .txt, a .jsonl, .csv or .parquet"
    ),
    text_field: str = typer.Option("text", "--text-field", help="JSONL key or column with the text"),
    limit: int = typer.Option(200, "--limit", help="Read at most this many notes"),
    batch_size: int = typer.Option(8, "--batch-size", help="nlp.pipe batch size, the same for both"),
    output: Optional[Path] = typer.Option(None, "--json", help="Also write the report as JSON"),
) -> None:
    """Read notes in fp32 and in int8 (CPU) and report how many of fp32's entities,
    spans and category decisions int8 keeps, per label, and both words/s."""
    if limit < 1 or batch_size < 1:
        raise typer.BadParameter("--limit and --batch-size must be at least 1")
    if output is not None and not output.parent.is_dir():
        raise typer.BadParameter(f"--json: folder {str(output.parent)!r} does not exist")
    from ..evaluation.int8_check import check_int8, format_int8_report
    from ..pretraining.notes import CorpusError, NoteSource, read_all

    try:
        source = NoteSource(notes, text_field=text_field, follow_symlinks=False)
        texts = read_all(source, limit)
    except CorpusError as err:
        fail(str(err))
    if sum(source.skipped.values()):
        skipped = ", ".join(f"{reason} {n}" for reason, n in sorted(source.skipped.items()))
        typer.echo(f"Skipped notes: {skipped}", err=True)
    if not texts:
        fail(f"{notes}: no readable note")
    try:
        report = check_int8(model, texts, batch_size=batch_size)
    except (OSError, ValueError) as err:
        fail(str(err).splitlines()[0])
    typer.echo("\n".join(format_int8_report(report)))
    if output is not None:
        output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf8")
