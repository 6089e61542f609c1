"""Domain-adaptive masked-LM pretraining of any supported encoder with Hugging Face's Trainer.

`run_pretraining` continues a checkpoint (a hub id or a local directory) on a
user's notes, as Clinical-Longformer continued longformer-base on MIMIC-III:
notes streamed and packed into `max_length` sequences, 15% masking (per
wordpiece with Hugging Face's collator, or whole words), AdamW with linear
warm-up and decay, bf16/fp16 and gradient checkpointing on GPU, checkpoints
every `save_steps` and resumption from the last one. Held-out masked-LM loss
and perplexity are measured on the same masked positions before and after
training and written to `OUTPUT_DIR/metrics.json`; `OUTPUT_DIR` itself is a
Hugging Face model directory (config, weights, tokenizer) that every config
takes as `name`.

Under `torchrun` or `accelerate launch` the same call runs data parallel over
every process: the Trainer wraps the model, the first process reads the
stream and hands each process its share of every batch.
"""

import hashlib
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import torch

from ..models.hf_loading import load_hf, model_facts
from .notes import CorpusError, NoteSource, read_all, split_held_out
from .packing import PackedNotes, make_collator, mask_batch, pack_notes, pad_batch

CHECKPOINT_DIR = "checkpoints"
METRICS_FILE = "metrics.json"
BEFORE_FILE = "heldout_before.json"
RUN_FILE = "run.json"
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass
class PretrainSettings:
    """Settings of one pretraining run (the CLI's options).

    max_steps (int): Optimizer steps.
    max_length (Optional[int]): Wordpieces per packed sequence; None for the model's budget.
    batch_size (int): Sequences per device per forward pass.
    gradient_accumulation_steps (int): Forward passes per optimizer step.
    learning_rate (float): Peak learning rate (Clinical-Longformer used 3e-5).
    warmup_ratio (float): Share of steps of linear warm-up.
    weight_decay (float): AdamW weight decay.
    mlm_probability (float): Share of wordpieces (or words) masked.
    whole_word_mask (bool): Mask every wordpiece of a chosen word together.
    text_field (str): JSONL key or CSV column of the note text.
    eval_corpus (Optional[Path]): Held-out notes; None holds out `eval_fraction` of the corpus.
    eval_fraction (float): Share of the corpus held out when there is no eval corpus.
    max_eval_notes (int): At most this many held-out notes.
    save_steps (int): Checkpoint every this many steps (the last two are kept).
    logging_steps (int): Log the training loss every this many steps.
    precision (str): auto (bf16 where the GPU has it, else fp16; fp32 on CPU), fp32, bf16 or fp16.
    gradient_checkpointing (Optional[bool]): None turns it on when training on GPU.
    resume (bool): Continue from the last checkpoint in OUTPUT_DIR/checkpoints.
    use_cpu (bool): Train on CPU even when a GPU is there.
    seed (int): Seed of the run (masking, held-out split, initialization of a new head).
    report_to (Sequence[str]): Experiment trackers ("wandb", "tensorboard" ...); none by default.
    """

    max_steps: int = 1000
    max_length: Optional[int] = None
    batch_size: int = 8
    gradient_accumulation_steps: int = 1
    learning_rate: float = 3e-5
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    mlm_probability: float = 0.15
    whole_word_mask: bool = False
    text_field: str = "text"
    eval_corpus: Optional[Path] = None
    eval_fraction: float = 0.02
    max_eval_notes: int = 200
    save_steps: int = 500
    logging_steps: int = 50
    precision: str = "auto"
    gradient_checkpointing: Optional[bool] = None
    resume: bool = True
    use_cpu: bool = False
    seed: int = 0
    report_to: Sequence[str] = field(default_factory=tuple)

    def check(self) -> None:
        """Raise ValueError naming the first setting out of range."""
        problems = [
            (self.max_steps < 1, f"max_steps must be at least 1, not {self.max_steps}"),
            (self.batch_size < 1, f"batch_size must be at least 1, not {self.batch_size}"),
            (
                self.gradient_accumulation_steps < 1,
                f"gradient_accumulation_steps must be at least 1, not {self.gradient_accumulation_steps}",
            ),
            (
                not 0 < self.mlm_probability < 1,
                f"mlm_probability must be in (0, 1), not {self.mlm_probability}",
            ),
            (not 0 <= self.eval_fraction < 1, f"eval_fraction must be in [0, 1), not {self.eval_fraction}"),
            (
                self.precision not in PRECISIONS,
                f"precision must be one of {PRECISIONS}, not {self.precision!r}",
            ),
            (self.learning_rate <= 0, f"learning_rate must be positive, not {self.learning_rate}"),
            (self.save_steps < 1, f"save_steps must be at least 1, not {self.save_steps}"),
            (self.seed < 0, f"seed must not be negative, not {self.seed}"),
        ]
        for bad, message in problems:
            if bad:
                raise ValueError(message)


def resolve_precision(precision: str, on_gpu: bool) -> str:
    """RETURNS (str): fp32, bf16 or fp16: what `precision` means on this device."""
    if not on_gpu:
        if precision in ("bf16", "fp16"):
            raise ValueError(f"precision {precision} needs a GPU; on CPU use fp32 (or auto)")
        return "fp32"
    if precision == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return precision


def heldout_batches(
    texts: List[str], tokenizer, max_length: int, settings: PretrainSettings, batch_size: int
):
    """Pack and mask the held-out notes once, with a fixed seed.

    The same positions are scored before and after training, so the two
    losses differ only by what the model learned.
    RETURNS (List[Dict[str, torch.Tensor]]): Masked batches.
    """
    sequences = list(pack_notes(texts, tokenizer, max_length))
    generator = torch.Generator().manual_seed(settings.seed + 7919)
    batches = []
    for start in range(0, len(sequences), batch_size):
        padded = pad_batch(sequences[start : start + batch_size], tokenizer.pad_token_id)
        groups = padded["word_groups"] if settings.whole_word_mask else None
        batches.append(
            mask_batch(
                padded["input_ids"],
                groups,
                tokenizer=tokenizer,
                mlm_probability=settings.mlm_probability,
                generator=generator,
            )
        )
    return batches


def heldout_loss(model, batches, device: torch.device, dtype: Optional[torch.dtype]) -> Dict[str, Any]:
    """Masked-LM loss over the held-out batches, averaged per masked wordpiece.

    RETURNS (Dict[str, Any]): loss, perplexity, masked_wordpieces, sequences.
    """
    was_training = model.training
    model.eval()
    total, count, sequences = 0.0, 0, 0
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        for batch in batches:
            n = int((batch["labels"] != -100).sum())
            if not n:
                continue
            out = model(**{k: v.to(device) for k, v in batch.items()})
            total += float(out.loss) * n
            count += n
            sequences += len(batch["input_ids"])
    model.train(was_training)
    loss = total / count if count else float("nan")
    return {
        "loss": loss,
        "perplexity": math.exp(min(loss, 50.0)) if count else float("nan"),
        "masked_wordpieces": count,
        "sequences": sequences,
    }


def training_arguments(
    settings: PretrainSettings, ckpt_dir: Path, precision: str, checkpointing: bool, on_gpu: bool
):
    """Hugging Face TrainingArguments for a pretraining run.

    Nothing is reported to an experiment tracker unless `settings.report_to`
    names one (the Trainer's own default is every tracker installed).
    RETURNS (TrainingArguments): The arguments.
    """
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(ckpt_dir),
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        learning_rate=settings.learning_rate,
        warmup_ratio=settings.warmup_ratio,
        weight_decay=settings.weight_decay,
        lr_scheduler_type="linear",
        logging_steps=settings.logging_steps,
        save_strategy="steps",
        save_steps=settings.save_steps,
        save_total_limit=2,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        gradient_checkpointing=checkpointing,
        report_to=list(settings.report_to) or "none",
        seed=settings.seed,
        data_seed=settings.seed,
        use_cpu=settings.use_cpu,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        dataloader_pin_memory=on_gpu,
    )


def last_logged_loss(history: List[Dict[str, Any]], fallback: float) -> float:
    """The last training loss the Trainer logged.

    After a resume, the Trainer's own `training_loss` averages only the steps of
    this process over all steps, so the logged value is the one to report.
    RETURNS (float): The loss.
    """
    logged = [entry["loss"] for entry in history if "loss" in entry]
    return float(logged[-1]) if logged else fallback


def corpus_stamp(path: Path) -> Dict[str, Any]:
    """What identifies a corpus's contents cheaply: sizes and modification times, not the text.

    RETURNS (Dict[str, Any]): path, file count, total bytes and a hash of names, sizes and times.
    """
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256()
    total = 0
    for file in files:
        stat = file.stat()
        total += stat.st_size
        digest.update(
            f"{file.relative_to(path) if path.is_dir() else file.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode()
        )
    return {
        "path": str(path.resolve()),
        "files": len(files),
        "bytes": total,
        "sha256": digest.hexdigest()[:16],
    }


def run_identity(model: str, corpus: Path, settings: PretrainSettings) -> Dict[str, Any]:
    """RETURNS (Dict[str, Any]): What a checkpoint must share with a run that resumes from it."""
    keep = (
        "max_length",
        "batch_size",
        "gradient_accumulation_steps",
        "mlm_probability",
        "whole_word_mask",
        "text_field",
        "eval_fraction",
        "max_eval_notes",
        "seed",
    )
    return {
        "model": str(model),
        "corpus": corpus_stamp(corpus),
        "eval_corpus": corpus_stamp(settings.eval_corpus) if settings.eval_corpus else None,
        **{k: getattr(settings, k) for k in keep},
    }


def check_resumable(ckpt_dir: Path, identity: Dict[str, Any], resume: bool, main: bool) -> None:
    """Refuse to resume from checkpoints of another run; start over cleanly without --resume.

    ckpt_dir (Path): OUTPUT_DIR/checkpoints.
    identity (Dict[str, Any]): This run's `run_identity`.
    resume (bool): Whether resuming was asked for.
    main (bool): Whether this is the first process (the one that writes).
    """
    path = ckpt_dir / RUN_FILE
    identity = json.loads(json.dumps(identity))  # as it reads back from the file
    if resume and path.exists():
        stored = json.loads(path.read_text(encoding="utf8"))
        if stored != identity:
            changed = sorted(k for k in set(stored) | set(identity) if stored.get(k) != identity.get(k))
            raise ValueError(
                f"The checkpoints in {str(ckpt_dir)!r} come from a different run (changed: {', '.join(changed)}). "
                "Use another OUTPUT_DIR, or --no-resume to start over there."
            )
    if not main:
        return
    if not resume and ckpt_dir.exists():
        shutil.rmtree(ckpt_dir)
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(identity, indent=2), encoding="utf8")


def run_pretraining(model: str, corpus: Path, output_dir: Path, settings: PretrainSettings) -> Dict[str, Any]:
    """Continue masked-LM pretraining of `model` on `corpus`; write the model and metrics.

    model (str): A hub id or a local model directory (with or without an MLM head:
        a missing head is newly initialized).
    corpus (Path): A directory of .txt, a .jsonl, a .csv or a .parquet of notes.
    output_dir (Path): Where the trained model, checkpoints/ and metrics.json go.
    settings (PretrainSettings): The run's settings.
    RETURNS (Dict[str, Any]): The metrics written to metrics.json.
    """
    from transformers import Trainer, set_seed
    from transformers.trainer_utils import get_last_checkpoint

    settings.check()
    output_dir = Path(output_dir)
    started = time.time()
    source = NoteSource(corpus, text_field=settings.text_field)
    set_seed(settings.seed)
    tokenizer, mlm_model = load_hf(model, {"use_fast": True}, {}, auto_cls="AutoModelForMaskedLM")
    if tokenizer.mask_token_id is None:
        raise ValueError(f"The tokenizer of {model!r} has no mask token; masked-LM pretraining needs one.")
    max_length = model_facts(tokenizer, mlm_model, settings.max_length).max_length

    if settings.eval_corpus is not None:
        eval_texts, skip = (
            read_all(
                NoteSource(settings.eval_corpus, text_field=settings.text_field), settings.max_eval_notes
            ),
            set(),
        )
    else:
        eval_texts, skip = split_held_out(
            source, fraction=settings.eval_fraction, max_notes=settings.max_eval_notes, seed=settings.seed
        )
        if not eval_texts:
            first = read_all(source, limit=2)
            if len(first) < 2:
                raise CorpusError(
                    "The corpus has fewer than two good notes: nothing to hold out and train on."
                )
            eval_texts, skip = first[:1], {0}
    if next(iter(pack_notes(source, tokenizer, max_length, skip=skip)), None) is None:
        raise CorpusError(f"Corpus {str(corpus)!r} has no note to train on after the held-out split.")

    on_gpu = torch.cuda.is_available() and not settings.use_cpu
    precision = resolve_precision(settings.precision, on_gpu)
    checkpointing = on_gpu if settings.gradient_checkpointing is None else settings.gradient_checkpointing
    ckpt_dir = output_dir / CHECKPOINT_DIR
    args = training_arguments(settings, ckpt_dir, precision, checkpointing, on_gpu)
    trainer = Trainer(
        model=mlm_model,
        args=args,
        train_dataset=PackedNotes(source, tokenizer, max_length, skip=skip),
        data_collator=make_collator(
            tokenizer,
            mlm_probability=settings.mlm_probability,
            whole_word=settings.whole_word_mask,
            seed=settings.seed + 1,
        ),
        processing_class=tokenizer,
    )
    main = trainer.is_world_process_zero()
    # The first process checks, clears and stamps the checkpoint folder before the others look.
    with args.main_process_first(desc="checkpoint folder"):
        check_resumable(ckpt_dir, run_identity(model, corpus, settings), settings.resume, main)
    eval_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    batches = heldout_batches(eval_texts, tokenizer, max_length, settings, settings.batch_size)
    last = get_last_checkpoint(str(ckpt_dir)) if settings.resume and ckpt_dir.is_dir() else None
    before_path = ckpt_dir / BEFORE_FILE
    if last is not None and before_path.exists():
        before = json.loads(before_path.read_text(encoding="utf8"))
    else:
        before = heldout_loss(trainer.model, batches, args.device, eval_dtype)
        if main:  # check_resumable made the folder
            before_path.write_text(json.dumps(before, indent=2), encoding="utf8")
    result = trainer.train(resume_from_checkpoint=last)
    after = heldout_loss(trainer.model, batches, args.device, eval_dtype)
    trainer.save_model(str(output_dir))
    world = args.world_size * settings.batch_size * settings.gradient_accumulation_steps
    metrics = {
        "model": str(model),
        "corpus": str(corpus),
        "steps": int(trainer.state.global_step),
        "max_length": max_length,
        "sequences_per_step": world,
        "processes": args.world_size,
        "learning_rate": settings.learning_rate,
        "whole_word_mask": settings.whole_word_mask,
        "precision": precision,
        "gradient_checkpointing": checkpointing,
        "resumed_from": Path(last).name if last else None,
        "train_loss": last_logged_loss(trainer.state.log_history, float(result.training_loss)),
        "heldout_notes": len(eval_texts),
        "heldout_loss_before": before["loss"],
        "heldout_loss_after": after["loss"],
        "heldout_perplexity_before": before["perplexity"],
        "heldout_perplexity_after": after["perplexity"],
        "heldout": {"before": before, "after": after},
        "skipped_notes": dict(source.skipped),
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(settings).items()},
        "seconds": round(time.time() - started, 1),
    }
    if main:
        (output_dir / METRICS_FILE).write_text(json.dumps(metrics, indent=2, default=list), encoding="utf8")
    return metrics
