"""`long-range`: entity recall by distance from the section header."""

from pathlib import Path

import typer

from ._app import app, fail


@app.command("long-range")
def long_range_cli(
    model: Path = typer.Argument(
        ..., help="A trained pipeline with ner (e.g. training/ner/model-best)", exists=True
    ),
    data: Path = typer.Argument(
        ..., help="Gold .spacy file with doc.spans['sections'] (synth writes them)", exists=True
    ),
    output: Path = typer.Argument(
        ..., help="JSON file to write (name it longrange_<system>.json for summarize)"
    ),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="GPU to use; -1 for CPU"),
) -> None:
    """Recall of ALLERGEN and TREATMENT list items by distance from their header.

    Near (<= 64 tokens), mid (65-128) and far (> 128): far items sit beyond any
    128-wordpiece window that starts at their header.
    """
    import spacy
    import srsly
    from spacy.tokens import DocBin
    from thinc.api import require_gpu

    from ..evaluation.long_range import long_range_scores

    if gpu_id >= 0:
        require_gpu(gpu_id)
    nlp = spacy.load(model)
    try:
        scores = long_range_scores(nlp, list(DocBin().from_disk(data).get_docs(nlp.vocab)))
    except ValueError as err:
        fail(str(err))
    output.parent.mkdir(parents=True, exist_ok=True)
    srsly.write_json(output, scores)
    for key, value in scores["longrange_per_bucket"].items():
        typer.echo(f"{key:16} recall {value['r']:.3f}  n={value['n']}")
