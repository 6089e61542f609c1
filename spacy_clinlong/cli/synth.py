"""`synth`: write the deterministic synthetic clinical corpus."""

from collections import Counter
from pathlib import Path

import typer

from ._app import app


@app.command("synth")
def synth_cli(
    output_dir: Path = typer.Argument(..., help="Directory to write (created if missing)", file_okay=False),
    n: int = typer.Option(200, "--n", "-n", min=1, help="Number of notes (>= 1)"),
    seed: int = typer.Option(0, "--seed", help="Corpus seed; note i depends only on (seed, i)"),
    qa_excerpts: bool = typer.Option(
        False,
        "--qa-excerpts",
        help="Also write train/dev_qa_excerpts.spacy: answer lines and their headers, QA gold only",
    ),
) -> None:
    """Generate synthetic discharge summaries and progress notes and write
    train/dev/test as spaCy DocBin (.spacy), JSONL and SQuAD v2.0 JSON.

    Prints counts only, never note text.
    """
    from ..corpus.synth import generate_notes, write_corpus

    notes = generate_notes(n, seed=seed)
    counts = write_corpus(notes, output_dir, qa_excerpts=qa_excerpts)
    words = [len(note["text"].split()) for note in notes]
    labels = Counter(ent["label"] for note in notes for ent in note["entities"])
    cats = Counter(label for note in notes for label, value in note["cats"].items() if value)
    qas = [qa for note in notes for qa in note["qas"]]
    typer.echo(f"Wrote {len(notes)} notes (seed {seed}) to {output_dir.resolve()}")
    typer.echo("Splits: " + ", ".join(f"{name} {count}" for name, count in counts.items()))
    typer.echo(
        f"Length in words: min {min(words)}, median {sorted(words)[len(words) // 2]}, max {max(words)}"
    )
    typer.echo("Entities: " + ", ".join(f"{label} {labels[label]}" for label in sorted(labels)))
    typer.echo(
        "Positive notes per label: "
        + ", ".join(f"{label} {cats[label]}" for label in sorted(notes[0]["cats"]))
    )
    typer.echo(f"QA pairs: {len(qas)} ({sum(qa['is_impossible'] for qa in qas)} unanswerable)")
