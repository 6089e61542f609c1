"""The typer application behind `python -m spacy_clinlong` and `spacy clinlong`."""
import typer

COMMAND = "python -m spacy_clinlong"

app = typer.Typer(
    name="clinlong",
    help="spacy-clinlong: long-context clinical transformers in spaCy.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _group() -> None:
    """spacy-clinlong: long-context clinical transformers in spaCy."""
