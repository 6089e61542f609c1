"""`spacy clinlong ...`: spaCy imports this module through the `spacy_cli`
entry point when its CLI starts, and importing it adds our command group."""

from spacy.cli._util import app as spacy_app

from . import app

if not any(group.name == "clinlong" for group in spacy_app.registered_groups):
    spacy_app.add_typer(app, name="clinlong")

__all__ = ["app"]
