"""`demo`: the offline end-to-end run a new user starts with.

Builds a tiny Longformer-shaped model and tokenizer, synthesizes clinical
notes, assembles a spaCy pipeline around the long-span transformer, saves and
reloads it, and reports what it did on the notes. Then it trains `ner` and
`clinlong_qa` on the notes for a few minutes with `spacy train` and the
package's own configs, adds medspaCy's sections and ConText, and shows what
the trained pipeline (OUTPUT_DIR/trained) finds in held-out notes: the notes
are synthetic, so their entities and answers are printed.
"""

import json
import time
from pathlib import Path

import typer

from ._app import app
from .make_model import Arch


@app.command("demo")
def demo_cli(
    output_dir: Path = typer.Argument(Path("demo"), help="Where to write models, notes and the pipeline"),
    arch_choice: Arch = typer.Option(
        Arch.longformer, "--arch", help="Architecture of the tiny model", case_sensitive=False
    ),
    n_notes: int = typer.Option(60, "--n-notes", min=2, help="Synthetic notes to generate"),
    seed: int = typer.Option(0, "--seed", help="Seed for notes and weights"),
    train_steps: int = typer.Option(
        150, "--train-steps", min=0, help="Steps to train ner and clinlong_qa (0: no training)"
    ),
) -> None:
    """Build a tiny model, synthesize notes, run a long-span pipeline over them
    and show what it produced."""
    import spacy

    from ..corpus.synth import generate_notes, write_corpus
    from ..standins.make_model import build_model

    arch = arch_choice.value
    output_dir.mkdir(parents=True, exist_ok=True)
    steps = 6 if train_steps else 4
    model_dir = output_dir / "models" / f"{arch}-tiny"
    if not (model_dir / "config.json").exists():
        typer.echo(f"[1/{steps}] Building a tiny {arch} and its tokenizer in {model_dir} ...")
        build_model(arch=arch, size="tiny", output_dir=model_dir, seed=seed)
    else:
        typer.echo(f"[1/{steps}] Reusing the tiny {arch} in {model_dir}")
    typer.echo(f"[2/{steps}] Synthesizing {n_notes} clinical notes in {output_dir / 'corpus'} ...")
    notes = generate_notes(n_notes, seed=seed)
    write_corpus(notes, output_dir / "corpus")
    typer.echo(f"[3/{steps}] Assembling the pipeline (spaCy tokenizer -> long-span transformer) ...")
    nlp = spacy.blank("en")
    nlp.max_length = 10**7
    nlp.add_pipe(
        "transformer",
        config={
            "max_batch_items": 262144,
            "model": {
                "@architectures": "spacy-clinlong.LongTransformerModel.v1",
                "name": str(model_dir),
                "global_attention": {"@misc": "spacy-clinlong.global_attention_section_headers.v1"},
            },
        },
    )
    nlp.initialize()
    pipeline_dir = output_dir / "pipeline"
    nlp.to_disk(pipeline_dir)
    nlp = spacy.load(pipeline_dir)
    model = nlp.get_pipe("transformer").model
    budget = model.facts.max_length
    # One note longer than the budget, to show the sentence-cut windows.
    long_text = "\n\n".join(n["text"] for n in notes[:6])
    texts = [n["text"] for n in notes] + [long_text]
    ids = [n["id"] for n in notes] + ["joined-0-5"]
    typer.echo(f"[4/{steps}] Running the pipeline reloaded from {pipeline_dir} over {len(texts)} notes ...")
    start = time.perf_counter()
    docs = list(nlp.pipe(texts, batch_size=8))
    seconds = time.perf_counter() - start
    rows = [_describe(note_id, doc, budget) for note_id, doc in zip(ids, docs)]
    (output_dir / "demo_output.json").write_text(json.dumps(rows, indent=2))
    _print_table(rows)
    words = sum(r["words"] for r in rows)
    typer.echo(
        f"\n{len(docs)} notes, {words:,} words in {seconds:.1f} s ({words / seconds:,.0f} words/s) "
        f"on CPU with a tiny random-weight {arch} (budget {budget} wordpieces per span)."
    )
    aligned = all(r["tokens_aligned"] == r["tokens"] for r in rows)
    typer.echo(f"Every token aligned to at least one wordpiece: {'yes' if aligned else 'NO'}")
    strided = sum(r["strided_128_96_windows"] for r in rows)
    ours = sum(r["spans"] for r in rows)
    typer.echo(
        f"Spans read: {ours} (spaCy's default strided 128/96 windows would be {strided}). "
        f"Per-note figures: {output_dir / 'demo_output.json'}"
    )
    if not aligned:
        raise typer.Exit(code=1)
    if train_steps:
        from .demo_train import show_trained, train_demo_pipeline

        typer.echo(
            f"\n[5/6] Training ner and clinlong_qa for {train_steps} steps each on the training notes ..."
        )
        trained = train_demo_pipeline(output_dir, model_dir, train_steps=train_steps, seed=seed)
        typer.echo(f"\n[6/6] The trained pipeline ({trained}) on held-out notes:")
        show_trained(trained, output_dir / "corpus" / "test.spacy")


def _describe(note_id: str, doc, budget: int) -> dict:
    """Figures about one annotated doc: lengths, spans, alignment (no text)."""
    data = doc._.trf_data
    lengths = data.align.lengths
    n_spans = len(data.wordpieces.lengths)
    return {
        "id": note_id,
        "words": sum(1 for t in doc if not t.is_space),
        "tokens": len(doc),
        "wordpieces": int(sum(data.wordpieces.lengths)),
        "spans": n_spans,
        "span_wordpieces": [int(n) for n in data.wordpieces.lengths],
        "budget": budget,
        "tokens_aligned": int((lengths >= 1).sum()),
        "strided_128_96_windows": max(1, -(-max(len(doc) - 32, 1) // 96)),
        "hidden_shape": list(data.model_output.last_hidden_state.shape),
    }


def _print_table(rows) -> None:
    header = f"{'note':<14}{'words':>7}{'wordpieces':>12}{'spans':>7}  span lengths (wordpieces)"
    typer.echo("\n" + header)
    typer.echo("-" * len(header))
    for r in rows:
        spans = ", ".join(str(n) for n in r["span_wordpieces"])
        typer.echo(f"{r['id']:<14}{r['words']:>7,}{r['wordpieces']:>12,}{r['spans']:>7}  {spans}")
