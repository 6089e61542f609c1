"""The typer application behind `python -m spacy_clinlong` and `spacy clinlong`.

Errors: a bad argument is typer.BadParameter (usage line, exit 2); anything
else that stops a command is `fail` (one line on stderr, exit 1). Choices are
Enums, so typer lists them.
"""

from typing import NoReturn

import typer

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


def fail(message: str, code: int = 1) -> NoReturn:
    """End a command with one line on stderr (red on a terminal) and an exit code.

    message (str): What went wrong and what to do; never note text.
    code (int): The exit status.
    """
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code=code)
