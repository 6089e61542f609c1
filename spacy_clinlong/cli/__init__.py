"""Command-line interface: `python -m spacy_clinlong COMMAND` or `spacy clinlong COMMAND`."""

from . import (  # noqa: F401  (registers the commands)
    add_medspacy,
    annotate,
    benchmark,
    configs,
    convert,
    demo,
    int8_check,
    long_range,
    make_model,
    pretrain,
    proof,
    summarize,
    synth,
)
from ._app import app


def main() -> None:
    """Run the command-line interface."""
    app()


__all__ = ["app", "main"]
