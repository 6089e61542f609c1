"""`configs`: write the training configs (one per task and model)."""

from pathlib import Path

import typer

from ._app import app


@app.command("configs")
def configs_cli(
    output_dir: Path = typer.Argument(
        Path("configs"), help="Directory to write the .cfg files to", file_okay=False
    ),
) -> None:
    """Write one complete `spacy train` config per task and model."""
    from ..configs import write_configs

    for path in write_configs(output_dir):
        typer.echo(f"Wrote {path}")
