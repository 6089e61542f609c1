"""`pretrain` and `extend`: continued masked-LM pretraining, and long models from short ones."""

import os
import shutil
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from ._app import app, fail


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


class Attention(str, Enum):
    longformer = "longformer"
    bigbird = "bigbird"


@app.command("pretrain")
def pretrain_cli(
    model: str = typer.Argument(..., help="Hub id or local model directory to continue from"),
    corpus: Path = typer.Argument(
        ..., exists=True, help="Notes: a directory of .txt, a .jsonl, .csv or .parquet"
    ),
    output_dir: Path = typer.Argument(
        ..., help="Where the pretrained model, checkpoints/ and metrics.json go"
    ),
    max_steps: int = typer.Option(1000, "--max-steps", help="Optimizer steps"),
    max_length: int = typer.Option(
        0, "--max-length", help="Wordpieces per packed sequence; 0: the model's budget"
    ),
    batch_size: int = typer.Option(8, "--batch-size", help="Sequences per device per forward pass"),
    gradient_accumulation_steps: int = typer.Option(
        1, "--gradient-accumulation-steps", help="Passes per step"
    ),
    learning_rate: float = typer.Option(
        3e-5, "--learning-rate", help="Peak learning rate (Clinical-Longformer: 3e-5)"
    ),
    warmup_ratio: float = typer.Option(0.06, "--warmup-ratio", help="Share of steps warming up"),
    mlm_probability: float = typer.Option(
        0.15, "--mlm-probability", help="Share of wordpieces (or words) masked"
    ),
    whole_word_mask: bool = typer.Option(
        False, "--whole-word-mask", help="Mask all wordpieces of a chosen word"
    ),
    text_field: str = typer.Option(
        "text", "--text-field", help="JSONL key or CSV/Parquet column of the note"
    ),
    eval_corpus: Optional[Path] = typer.Option(
        None, "--eval-corpus", exists=True, help="Held-out notes (default: a share of CORPUS)"
    ),
    eval_fraction: float = typer.Option(0.02, "--eval-fraction", help="Share of CORPUS held out"),
    max_eval_notes: int = typer.Option(200, "--max-eval-notes", help="At most this many held-out notes"),
    save_steps: int = typer.Option(500, "--save-steps", help="Checkpoint every N steps"),
    logging_steps: int = typer.Option(50, "--logging-steps", help="Log the loss every N steps"),
    precision: Precision = typer.Option(
        Precision.auto, "--precision", help="auto: bf16 (or fp16) on GPU, fp32 on CPU"
    ),
    gradient_checkpointing: Optional[bool] = typer.Option(
        None, "--gradient-checkpointing/--no-gradient-checkpointing", help="Default: on when training on GPU"
    ),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from the last checkpoint"),
    gpu_id: Optional[int] = typer.Option(
        None,
        "--gpu-id",
        help="-1: CPU; N: that GPU; default: every visible GPU (under torchrun: one per process)",
    ),
    metrics_copy: Optional[Path] = typer.Option(None, "--metrics", help="Also write metrics.json here"),
    seed: int = typer.Option(0, "--seed", help="Seed of masking, split and new weights"),
    report_to: Optional[List[str]] = typer.Option(
        None, "--report-to", help="Experiment tracker (wandb, tensorboard ...); none unless given"
    ),
) -> None:
    """Continue masked-LM pretraining of MODEL on clinical notes.

    Notes are streamed and packed into --max-length sequences. The held-out
    masked-LM loss and perplexity before and after go to OUTPUT_DIR/metrics.json;
    OUTPUT_DIR is a Hugging Face model that every config takes as `name`.
    Run again with the same arguments to resume after an interruption. On
    several GPUs or machines, launch the same command through torchrun or
    accelerate: `torchrun --nproc_per_node 4 -m spacy_clinlong pretrain ...`.
    """
    if gpu_id is not None and gpu_id >= 0:
        if "LOCAL_RANK" in os.environ:
            fail("--gpu-id picks one GPU; under torchrun or accelerate leave it out.")
        # Before torch initializes CUDA, so the Trainer's cuda:0 is that GPU.
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu_id)
    from ..models.hf_loading import ModelLoadError
    from ..pretraining.notes import CorpusError
    from ..pretraining.train import PretrainSettings, run_pretraining

    settings = PretrainSettings(
        max_steps=max_steps,
        max_length=max_length or None,
        batch_size=batch_size,
        gradient_accumulation_steps=gradient_accumulation_steps,
        learning_rate=learning_rate,
        warmup_ratio=warmup_ratio,
        mlm_probability=mlm_probability,
        whole_word_mask=whole_word_mask,
        text_field=text_field,
        eval_corpus=eval_corpus,
        eval_fraction=eval_fraction,
        max_eval_notes=max_eval_notes,
        save_steps=save_steps,
        logging_steps=logging_steps,
        precision=precision.value,
        gradient_checkpointing=gradient_checkpointing,
        resume=resume,
        use_cpu=gpu_id is not None and gpu_id < 0,
        seed=seed,
        report_to=tuple(report_to or ()),
    )
    try:
        metrics = run_pretraining(model, corpus, output_dir, settings)
    except (ValueError, CorpusError, ModelLoadError) as err:
        fail(str(err))
    if int(os.environ.get("RANK", "0")) != 0:
        return  # under torchrun or accelerate, the first process reports
    if metrics_copy is not None:
        metrics_copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(output_dir / "metrics.json", metrics_copy)
    before, after = metrics["heldout"]["before"], metrics["heldout"]["after"]
    typer.echo(
        f"Trained {metrics['steps']} steps on {metrics['max_length']}-wordpiece sequences"
        + (f" (resumed from {metrics['resumed_from']})" if metrics["resumed_from"] else "")
    )
    typer.echo(
        f"Held-out masked-LM loss {before['loss']:.3f} -> {after['loss']:.3f} "
        f"(perplexity {before['perplexity']:.1f} -> {after['perplexity']:.1f}, "
        f"{after['masked_wordpieces']} masked wordpieces in {metrics['heldout_notes']} notes)"
    )
    if metrics["skipped_notes"]:
        typer.echo(f"Skipped notes: {metrics['skipped_notes']}")
    typer.echo(f"Model: {output_dir.resolve()}  Metrics: {(output_dir / 'metrics.json').resolve()}")


@app.command("extend")
def extend_cli(
    source: str = typer.Argument(..., help="Hub id or local directory of a BERT or RoBERTa checkpoint"),
    output_dir: Path = typer.Argument(..., help="Where the long model goes"),
    max_length: int = typer.Option(4096, "--max-length", help="Wordpieces the long model takes"),
    attention: Attention = typer.Option(Attention.longformer, "--attention", help="longformer or bigbird"),
    attention_window: int = typer.Option(512, "--attention-window", help="Longformer's sliding window"),
    block_size: int = typer.Option(64, "--block-size", help="BigBird's block size"),
) -> None:
    """Make a long model from a short BERT or RoBERTa one, the Longformer way.

    The learned position embeddings are copied across the new length and the
    attention becomes Longformer's (global projections start from the local
    ones) or BigBird's; all other weights are copied. Continue with
    `pretrain` so the model learns its new positions.
    """
    from ..models.hf_loading import ModelLoadError
    from ..pretraining.extend import extend_model

    try:
        record = extend_model(
            source,
            output_dir,
            max_length=max_length,
            attention=attention.value,
            attention_window=attention_window,
            block_size=block_size,
        )
    except (ValueError, ModelLoadError) as err:
        fail(str(err))
    typer.echo(
        f"Wrote a {record['attention']} model of {record['max_length']} wordpieces from "
        f"{record['source_type']} ({record['source_positions']} positions) to {output_dir.resolve()}"
    )
    typer.echo(
        "Masked-LM head: "
        + (
            "copied"
            if record["mlm_head_copied"]
            else "new (the source has none): run pretrain before using it for masked LM"
        )
    )
    if record["left_initialized"]:
        typer.echo(f"Newly initialized: {', '.join(record['left_initialized'])}")
