"""`add-medspacy`: a trained pipeline with medspaCy's sections and ConText after its model."""

from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from ._app import app, fail


class Sentences(str, Enum):
    fast = "fast"
    pyrush = "pyrush"
    own = "own"


@app.command("add-medspacy")
def add_medspacy_cli(
    model: Path = typer.Argument(..., help="A trained pipeline (e.g. training/ner/model-best)", exists=True),
    output_dir: Path = typer.Argument(..., help="Where the pipeline with medspaCy's components goes"),
    sentences: Sentences = typer.Option(
        Sentences.fast,
        "--sentences",
        help="fast: PyRuSH's rules at regex speed (clinlong_sentences); pyrush: PyRuSH itself (quiet); "
        "either only where the pipeline sets no sentences; own: keep the pipeline's",
    ),
    target_rules: Optional[Path] = typer.Option(
        None, "--target-rules", exists=True, help="medspaCy TargetRule JSON whose matches add to the entities"
    ),
) -> None:
    """Add medspaCy's sentence splitter, sectionizer, ConText and doc consumer after the
    model, keeping the pipeline's tokenizer, and save the result (ready for `spacy package`)."""
    import spacy

    from ..integrations.medspacy import add_medspacy

    nlp = spacy.load(model)
    try:
        add_medspacy(nlp, sentences=sentences.value, target_rules=target_rules)
    except ValueError as err:
        fail(str(err))
    nlp.to_disk(output_dir)
    typer.echo(f"Saved {', '.join(nlp.pipe_names)} to {output_dir.resolve()}")
