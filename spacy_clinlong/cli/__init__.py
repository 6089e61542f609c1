"""Command-line interface: `python -m spacy_clinlong COMMAND` or `spacy clinlong COMMAND`."""
from ._app import app
from . import make_model, synth, demo  # noqa: F401  (registers the commands)


def main() -> None:
    """Run the command-line interface."""
    app()


def register_spacy_cli():
    """Add the `clinlong` command group to spaCy's own CLI (`spacy clinlong ...`).

    Registered under the `spacy_cli` entry point, which spaCy imports when its
    CLI starts.
    RETURNS (typer.Typer): The command group.
    """
    from spacy.cli._util import app as spacy_app

    if not any(group.name == "clinlong" for group in spacy_app.registered_groups):
        spacy_app.add_typer(app, name="clinlong")
    return app


__all__ = ["app", "main", "register_spacy_cli"]
