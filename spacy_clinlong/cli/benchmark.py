"""`benchmark`: whole-note pipelines against spaCy's strided windows, in one run."""

import json
from enum import Enum
from pathlib import Path
from typing import Dict, List, Optional

import typer

from ._app import app, fail


class BenchSize(str, Enum):
    base = "base"
    tiny = "tiny"


def _default_models_dir() -> Path:
    import os

    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "spacy-clinlong" / "bench-models"


def _read_notes(path: Path, text_field: str) -> List[str]:
    texts = []
    with path.open(encoding="utf8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise typer.BadParameter(f"{path} line {number} is not JSON") from None
            text = record.get(text_field) if isinstance(record, dict) else None
            if not isinstance(text, str) or not text.strip():
                raise typer.BadParameter(f"{path} line {number} has no non-empty {text_field!r} string")
            texts.append(text)
    if not texts:
        raise typer.BadParameter(f"{path} holds no notes")
    return texts


def _parse_models(values: Optional[List[str]]) -> Dict[str, str]:
    from ..models.hf_loading import ModelLoadError, resolve_source

    found = {}
    for value in values or []:
        arch, sep, where = value.partition("=")
        if not sep or arch not in ("longformer", "bigbird", "modernbert", "bert") or not where:
            raise typer.BadParameter(
                f"--model takes ARCH=DIR_OR_HUB_ID with ARCH one of longformer, bigbird, "
                f"modernbert, bert; got {value!r}"
            )
        try:
            # A local directory or a hub id, checked as every model load checks it.
            found[arch] = resolve_source(where)
        except ModelLoadError as err:
            raise typer.BadParameter(str(err)) from None
    return found


class Clinical(str, Enum):
    none = "none"
    fast = "fast"
    before = "before"


DEFAULT_SYSTEMS = "longformer,bigbird,modernbert,strided-bert,hf-longformer"
REAL_NOTES_SYSTEMS_CPU = "longformer,longformer-int8,strided-bert"
REAL_NOTES_SYSTEMS_GPU = "longformer,strided-bert"


@app.command("benchmark")
def benchmark_cli(
    json_path: Path = typer.Option(..., "--json", help="Where to write the report (JSON)"),
    size: BenchSize = typer.Option(
        BenchSize.base, "--size", help="base: the real models' shapes; tiny: mechanics"
    ),
    notes: Optional[Path] = typer.Option(
        None, "--notes", exists=True, dir_okay=False, help='JSONL notes (one {"text": ...} per line)'
    ),
    synth: int = typer.Option(
        0, "--synth", min=0, help="Synthetic notes instead of the shipped real notes (MTSamples)"
    ),
    groups: Optional[str] = typer.Option(
        None,
        "--groups",
        help="Real notes only: comma-separated groups to run ('1 window', '2 windows', '3 windows')",
    ),
    min_words: int = typer.Option(
        0, "--min-words", min=0, help="Keep synthetic notes of at least this many words"
    ),
    text_field: str = typer.Option("text", "--text-field", help="The JSONL key of the note"),
    gpu_id: Optional[int] = typer.Option(
        None, "--gpu-id", help="GPU to run on (bf16/fp16); default or -1: CPU"
    ),
    plot_path: Optional[Path] = typer.Option(None, "--plot", help="Also draw words/s per system (PNG)"),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Timed passes over the notes per system"),
    warmup: int = typer.Option(2, "--warmup", min=0, help="Notes read once per system before timing"),
    batch_size: Optional[List[int]] = typer.Option(
        None,
        "--batch-size",
        min=1,
        help="Notes per batch, repeatable (real notes run each); default: real notes 1 and 8 on "
        "CPU, 16 on GPU; other notes 1 on CPU, 16 on GPU",
    ),
    systems: Optional[str] = typer.Option(
        None,
        "--systems",
        help=f"Comma-separated systems to run; default {DEFAULT_SYSTEMS}, or on the real notes "
        f"{REAL_NOTES_SYSTEMS_CPU} (CPU) / {REAL_NOTES_SYSTEMS_GPU} (GPU)",
    ),
    pipeline: Clinical = typer.Option(
        Clinical.none,
        "--pipeline",
        help="none: the transformer alone; fast: the full clinical pipeline (an ner head and "
        "add-medspacy's components); before: the same with PyRuSH and medspaCy's doc consumer",
    ),
    models_dir: Path = typer.Option(
        None,
        "--models-dir",
        help="Where stand-in models are built once and reused (default ~/.cache/spacy-clinlong/bench-models)",
    ),
    model: Optional[List[str]] = typer.Option(
        None, "--model", help="ARCH=DIR_OR_HUB_ID: a real model instead of a stand-in"
    ),
    corpus: int = typer.Option(
        0,
        "--corpus",
        min=0,
        help="Also annotate this many synthetic notes with the Longformer pipeline "
        "and report RSS over the run (10000 shows whether memory stays flat)",
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the synthetic notes"),
) -> None:
    """Words/s, wordpieces/s, latency and memory of (a) this package's
    whole-note pipelines (Longformer in fp32 and int8, BigBird, ModernBERT),
    (b) stock spacy-transformers with strided 128/96 windows over BERT and (c)
    stock spacy-transformers reading whole notes with Hugging Face's Longformer,
    alternating on the same notes in one run. By default the notes are real
    clinical text shipped with the package (MTSamples, CC0) that needs one, two
    and three windows, each group run at batch sizes 1 and 8. Stand-in models
    with random weights are built once (speed does not depend on the weights).
    """
    from ..evaluation import bench

    if gpu_id is not None and gpu_id < 0:
        gpu_id = None
    gpu = gpu_id is not None
    real = notes is None and not synth
    if groups is not None and not real:
        raise typer.BadParameter("--groups chooses among the shipped real notes; not with --notes or --synth")
    if min_words and not synth:
        raise typer.BadParameter("--min-words chooses among synthetic notes: give --synth N")
    if real:
        chosen_groups = [g.strip() for g in groups.split(",") if g.strip()] if groups else None
        try:
            by_group = bench.read_bench_notes(chosen_groups)
        except ValueError as err:
            raise typer.BadParameter(str(err)) from None
    elif notes is not None:
        by_group = {"notes": _read_notes(notes, text_field)}
    else:
        texts = []
        for text in bench.synthetic_stream(synth * 50 if min_words else synth, seed=seed):
            if len(text.split()) >= min_words:
                texts.append(text)
                if len(texts) == synth:
                    break
        if len(texts) < synth:
            raise typer.BadParameter(f"Fewer than {synth} synthetic notes have {min_words}+ words")
        by_group = {"synthetic": texts}
    if systems is None:
        systems = (REAL_NOTES_SYSTEMS_GPU if gpu else REAL_NOTES_SYSTEMS_CPU) if real else DEFAULT_SYSTEMS
    chosen = [s.strip() for s in systems.split(",") if s.strip()]
    sizes = list(batch_size or ([16] if gpu else [1, 8] if real else [1]))
    models_dir = models_dir or _default_models_dir()

    def say(msg: str) -> None:
        typer.echo(msg, err=True)

    settings = dict(
        size=size.value,
        models_dir=models_dir,
        model_dirs=_parse_models(model),
        gpu_id=gpu_id,
        repeats=repeats,
        warmup=warmup,
        clinical=None if pipeline == Clinical.none else pipeline.value,
    )
    try:
        if real or len(sizes) > 1:
            report = bench.run_groups(by_group, batch_sizes=sizes, systems=chosen, progress=say, **settings)
        else:
            (texts,) = by_group.values()
            report = bench.run_benchmark(texts, systems=chosen, batch_size=sizes[0], progress=say, **settings)
        if corpus:
            dirs = bench.ensure_models(["longformer"], size.value, models_dir)
            dirs.update(_parse_models(model))
            system = bench.SYSTEMS_BY_KEY["longformer"]
            nlp = bench.build_pipeline(system, dirs["longformer"], gpu=gpu)
            report["corpus_memory"] = bench.corpus_memory(
                nlp, bench.synthetic_stream(corpus, seed=seed + 1), n=corpus, progress=say
            )
    except ValueError as err:
        fail(str(err))
    bench.write_report(report, json_path)
    if "runs" in report:
        typer.echo(bench.format_groups_table(report))
        typer.echo(bench.machine_line(report["machine"]))
        if plot_path is not None:
            bench.plot_groups(report, plot_path)
    else:
        if plot_path is not None:
            bench.plot(report, plot_path)
        typer.echo(bench.format_table(report))
        for name, value in report["targets"].items():
            typer.echo(f"{name}: {value if not isinstance(value, float) else round(value, 3)}")
    if "corpus_memory" in report:
        mem = report["corpus_memory"]
        typer.echo(
            f"corpus: {mem['notes']} notes, peak RSS {mem['peak_rss_after_warmup_mb']:,.0f} MB after warm-up, "
            f"{mem['peak_rss_last_segment_mb']:,.0f} MB at the end ({100 * mem['growth_after_warmup']:+.1f}%)"
        )
    typer.echo(f"Report: {json_path}" + (f", plot: {plot_path}" if plot_path else ""))


@app.command("benchmark-omop")
def benchmark_omop_cli(
    output: str = typer.Argument(
        ..., help="The database NOTE_NLP goes into (postgresql://..., sqlite:///...)"
    ),
    schema: Optional[str] = typer.Option(None, "--output-schema", help="NOTE_NLP's schema (e.g. cdm)"),
    rows: int = typer.Option(100_000, "--rows", min=1, help="NOTE_NLP rows to insert, apart from any model"),
    model: Optional[str] = typer.Option(
        None, "--model", help="Also time a whole annotate job with this pipeline: into JSONL and into OUTPUT"
    ),
    input_path: Optional[str] = typer.Option(
        None, "--input", help="The job's notes: a file, or a database URL with a NOTE table"
    ),
    shard_size: int = typer.Option(1000, "--shard-size", min=1, help="Records per shard"),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Notes per nlp.pipe batch"),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Runs of each job, alternating"),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the figures (JSON)"),
) -> None:
    """Is writing the bottleneck? NOTE_NLP inserts per second into OUTPUT, and with --model and
    --input, the same annotate job into JSONL and into OUTPUT, alternating. Every row written
    is removed afterwards (a job key of its own), so OUTPUT may be the database in use.
    """
    from ..annotate import JobError
    from ..annotate.omop_benchmark import insert_rate, job_times
    from ..io import is_database_url, redact_url

    if not is_database_url(output):
        raise typer.BadParameter(f"OUTPUT {redact_url(output)!r} is not a sqlite:/// or postgresql:// URL")
    if (model is None) != (input_path is None):
        raise typer.BadParameter("--model and --input go together")
    report: Dict[str, object] = {"output": redact_url(output)}
    try:
        report["insert"] = rate = insert_rate(output, schema=schema, rows=rows)
        typer.echo(
            f"NOTE_NLP inserts ({rate['backend']}): {rate['rows_per_s']:,} rows/s ({rate['rows']:,} rows)"
        )
        if model is not None:
            report["job"] = job = job_times(
                model,
                input_path,
                output,
                schema=schema,
                repeats=repeats,
                echo=typer.echo,
                shard_size=shard_size,
                batch_size=batch_size,
            )
            typer.echo(
                f"annotate job: JSONL {job['jsonl_median_s']:.1f} s, database {job['database_median_s']:.1f} s "
                f"(median of {repeats}; database / JSONL {job['ratio']:.3f}); "
                f"{job['notes']:,} notes, {job['note_nlp_rows']:,} NOTE_NLP rows"
            )
    except (JobError, ValueError, RuntimeError, OSError) as err:
        fail(f"benchmark-omop: {err}")
    if json_path is not None:
        json_path.write_text(json.dumps(report, indent=2))
