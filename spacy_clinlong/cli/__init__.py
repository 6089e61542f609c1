"""Command-line interface: `python -m spacy_clinlong COMMAND` or `spacy clinlong COMMAND`."""
from ._app import app
from . import make_model, synth, demo  # noqa: F401  (registers the commands)


def main() -> None:
    """Run the command-line interface."""
    app()


__all__ = ["app", "main"]
