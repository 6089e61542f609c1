"""`convert`: BRAT, i2b2, SQuAD/emrQA, JSONL or CSV to a spaCy DocBin."""

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from ._app import app, fail


# Kept in step with spacy_clinlong.corpus.readers.FORMATS by a test.
class Format(str, Enum):
    brat = "brat"
    i2b2 = "i2b2"
    squad = "squad"
    jsonl = "jsonl"
    csv = "csv"


@app.command("convert")
def convert_cli(
    input_path: Path = typer.Argument(..., help="Input file or directory"),
    output_path: Path = typer.Argument(..., help="DocBin (.spacy) file to write", dir_okay=False),
    fmt: Format = typer.Option(..., "--format", "-f", help="Input format", case_sensitive=False),
    lang: str = typer.Option("en", "--lang", help="Language of the blank tokenizer"),
    text_field: Optional[str] = typer.Option(
        None, "--text-field", help="jsonl/csv: text key or column (default: text)"
    ),
    labels_field: Optional[str] = typer.Option(
        None,
        "--labels-field",
        help="jsonl/csv: labels key or column (default: cats/labels/label, or csv 0/1 columns)",
    ),
    id_field: Optional[str] = typer.Option(None, "--id-field", help="csv: id column (default: id)"),
    labels: Optional[str] = typer.Option(
        None, "--labels", help="jsonl/csv: comma-separated label set for doc.cats (default: all labels seen)"
    ),
    span_key: Optional[str] = typer.Option(
        None, "--span-key", help="brat/i2b2/jsonl: span group for all spans (default: brat, i2b2, sc)"
    ),
) -> None:
    """Convert an annotated corpus to a DocBin, keeping user_data.

    Malformed items are skipped and reported by file and line (never by text),
    with annotate's reason names where it has one; the rest converts. Exits 1,
    with one line, if the input is missing or unreadable or nothing converted.
    """
    from ..corpus.readers import convert_corpus
    from ..io import InputError

    if not input_path.exists():
        fail(f"Input path does not exist: {input_path}")
    options = {}
    if fmt in (Format.jsonl, Format.csv):
        options.update(
            text_field=text_field,
            labels_field=labels_field,
            labels=[lab.strip() for lab in labels.split(",") if lab.strip()] if labels else None,
        )
        if fmt == Format.csv:
            options["id_field"] = id_field
    elif text_field or labels_field or id_field or labels:
        fail(f"--text-field/--labels-field/--id-field/--labels do not apply to {fmt.value}")
    if fmt in (Format.brat, Format.i2b2, Format.jsonl):
        options["span_key"] = span_key
    try:
        report = convert_corpus(fmt.value, input_path, output_path, lang=lang, **options)
    except InputError as err:
        fail(f"convert: {err}")
    typer.echo(report.summary())
    if not report.n_docs:
        fail(f"Nothing converted from {input_path} as {fmt.value}; no output written.")
    typer.echo(f"Wrote {report.n_docs} docs to {output_path}")
