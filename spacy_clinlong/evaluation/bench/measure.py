"""Timing and memory: runs, repeats, RSS sampling, machine facts, the corpus memory run."""

import itertools
import os
import platform
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

from .report import check_targets
from .systems import (
    BASELINE,
    SYSTEM_KEYS,
    SYSTEMS,
    SYSTEMS_BY_KEY,
    System,
    build_pipeline,
    count_wordpieces,
    ensure_models,
    fits_whole,
)


class NoteTooLong(ValueError):
    """No note fits the whole-note system's budget."""


class RssSampler:
    """The peak resident set size of this process while it runs (a thread
    sampling every `interval` seconds)."""

    def __init__(self, interval: float = 0.02):
        import psutil

        self._process = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.start = self._process.memory_info().rss
        self.peak = self.start
        self._window = self.start
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            rss = self._process.memory_info().rss
            self.peak = max(self.peak, rss)
            self._window = max(self._window, rss)

    def window_peak(self) -> int:
        """The peak since the last call (or the start), and start a new window."""
        rss = self._process.memory_info().rss
        peak, self._window = max(self._window, rss), rss
        return peak

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


def _sync(gpu: bool) -> None:
    if gpu:
        import torch

        torch.cuda.synchronize()


def run_once(nlp, texts: Sequence[str], batch_size: int, gpu: bool) -> List[float]:
    """Time one pass over the notes.

    RETURNS (List[float]): Per note, the seconds of the batch that held it.
    """
    latencies: List[float] = []
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        began = time.perf_counter()
        for doc in nlp.pipe(batch, batch_size=batch_size):
            del doc
        _sync(gpu)
        latencies.extend([time.perf_counter() - began] * len(batch))
    return latencies


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100.0
    low, high = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass
class Measured:
    """What one system measured."""

    system: System
    words_per_s: List[float] = field(default_factory=list)
    wordpieces_per_s: List[float] = field(default_factory=list)
    latencies: List[float] = field(default_factory=list)
    peak_rss: int = 0
    working_rss: int = 0
    cuda_max_allocated: Optional[int] = None

    def summary(self, baseline: Optional["Measured"]) -> Dict[str, Any]:
        mean = statistics.fmean(self.words_per_s)
        out = {
            "key": self.system.key,
            "label": self.system.label,
            "words_per_s": mean,
            "words_per_s_min": min(self.words_per_s),
            "words_per_s_max": max(self.words_per_s),
            "words_per_s_stdev": statistics.stdev(self.words_per_s) if len(self.words_per_s) > 1 else 0.0,
            "words_per_s_repeats": list(self.words_per_s),
            "wordpieces_per_s": statistics.fmean(self.wordpieces_per_s),
            "latency_p50_s": _percentile(self.latencies, 50),
            "latency_p95_s": _percentile(self.latencies, 95),
            "peak_rss_mb": self.peak_rss / 2**20,
            "working_rss_mb": self.working_rss / 2**20,
            "cuda_max_allocated_mb": None
            if self.cuda_max_allocated is None
            else self.cuda_max_allocated / 2**20,
        }
        if baseline is not None:
            out["ratio_to_strided"] = mean / statistics.fmean(baseline.words_per_s)
        return out


# Variables that make torch, MKL, oneDNN and fbgemm use fewer instructions than
# the CPU has (e.g. AVX2 code on an AVX-512 machine); a report names those set.
ISA_VARIABLES = (
    "ATEN_CPU_CAPABILITY",
    "MKL_ENABLE_INSTRUCTIONS",
    "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA",
    "FBGEMM_ENABLE_INSTRUCTIONS",
)


def machine_facts(gpu_id: Optional[int]) -> Dict[str, Any]:
    """CPU, core count, threads, library versions and the GPU, if any. `isa_limits`
    holds the ISA_VARIABLES set in the environment (empty: each library picks the
    CPU's best)."""
    from importlib.metadata import version

    import spacy
    import torch
    import transformers

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    facts = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        # What torch's CPU kernels use: AVX2 and AVX-512 machines differ in speed and int8 gain.
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "isa_limits": {name: os.environ[name] for name in ISA_VARIABLES if os.environ.get(name)},
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "spacy": spacy.__version__,
        "spacy_transformers": version("spacy-transformers"),
        "device": "cpu",
        "dtype": "float32",
    }
    if gpu_id is not None:
        facts["device"] = torch.cuda.get_device_name(gpu_id)
        facts["dtype"] = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return facts


def run_benchmark(
    texts: Sequence[str],
    *,
    size: str = "base",
    systems: Sequence[str] = SYSTEM_KEYS,
    models_dir: Path,
    model_dirs: Optional[Dict[str, Path]] = None,
    gpu_id: Optional[int] = None,
    batch_size: Optional[int] = None,
    repeats: int = 3,
    warmup: int = 2,
    progress: Callable[[str], None] = lambda msg: None,
    clinical: Optional[str] = None,
) -> Dict[str, Any]:
    """Run the systems over the notes and return the report (JSON-ready).

    texts (Sequence[str]): The notes.
    size (str): "base" (real shapes, for speed) or "tiny" (mechanics only).
    systems (Sequence[str]): Keys of SYSTEMS to run.
    models_dir (Path): Where stand-in models are built or found.
    model_dirs (Optional[Dict[str, Path]]): Arch -> model directory or hub id,
        overriding the stand-ins.
    gpu_id (Optional[int]): GPU to run on; None for CPU.
    batch_size (Optional[int]): Notes per batch; default 1 on CPU, 16 on GPU.
    repeats (int): Timed passes over all notes per system.
    warmup (int): Notes read once per system before timing.
    progress (Callable[[str], None]): Receives one line per step (no text).
    clinical (Optional[str]): None: the transformer alone; "fast" or "before": the
        full clinical pipeline after it (see `build_pipeline`).
    RETURNS (Dict[str, Any]): machine, settings, notes, systems, targets.
    """
    import spacy
    import torch

    unknown = sorted(set(systems) - set(SYSTEM_KEYS))
    if unknown:
        raise ValueError(f"Unknown systems {unknown}; expected some of {SYSTEM_KEYS}")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    if not texts:
        raise ValueError("No notes to benchmark")
    if not systems:
        raise ValueError("No systems to run")
    gpu = gpu_id is not None
    on_gpu_int8 = [k for k in systems if SYSTEMS_BY_KEY[k].quantize and gpu]
    if on_gpu_int8:
        raise ValueError(f"{', '.join(on_gpu_int8)} run on CPU only (int8); leave them out with --gpu-id")
    if gpu:
        spacy.require_gpu(gpu_id)
    batch_size = batch_size or (16 if gpu else 1)
    chosen = [s for s in SYSTEMS if s.key in systems]
    dirs = ensure_models({s.arch for s in chosen if s.arch not in (model_dirs or {})}, size, models_dir)
    dirs.update(model_dirs or {})
    skipped = 0
    if any(s.kind == "whole" for s in chosen):
        keep = fits_whole(dirs["longformer"], texts)
        skipped = keep.count(False)
        texts = [t for t, k in zip(texts, keep) if k]
        if not texts:
            raise NoteTooLong("No note fits Longformer's 4,094 wordpieces whole, which system (c) needs")
    tokenizer = spacy.blank("en").tokenizer
    n_words = sum(len(tokenizer(t)) for t in texts)
    wordpieces = {s.arch: sum(count_wordpieces(dirs[s.arch], texts)) for s in chosen}
    measured = {s.key: Measured(s) for s in chosen}
    pipelines = {}
    for system in chosen:
        progress(f"loading {system.key} from {dirs[system.arch]}")
        pipelines[system.key] = build_pipeline(system, dirs[system.arch], gpu=gpu, clinical=clinical)
        with RssSampler() as rss:
            run_once(pipelines[system.key], texts[:warmup], batch_size, gpu)
        measured[system.key].peak_rss = rss.peak
    for repeat in range(repeats):
        # Alternate the order, so drift of the machine falls on every system.
        order = chosen[repeat % len(chosen) :] + chosen[: repeat % len(chosen)]
        for system in order:
            result = measured[system.key]
            if gpu:
                torch.cuda.reset_peak_memory_stats(gpu_id)
            with RssSampler() as rss:
                began = time.perf_counter()
                latencies = run_once(pipelines[system.key], texts, batch_size, gpu)
                seconds = time.perf_counter() - began
            result.peak_rss = max(result.peak_rss, rss.peak)
            result.working_rss = max(result.working_rss, rss.peak - rss.start)
            if gpu:
                peak = torch.cuda.max_memory_allocated(gpu_id)
                result.cuda_max_allocated = max(result.cuda_max_allocated or 0, peak)
            result.latencies.extend(latencies)
            result.words_per_s.append(n_words / seconds)
            result.wordpieces_per_s.append(wordpieces[system.arch] / seconds)
            progress(f"repeat {repeat + 1}/{repeats} {system.key}: {n_words / seconds:,.0f} words/s")
    baseline = measured.get(BASELINE)
    summaries = [measured[s.key].summary(baseline) for s in chosen]
    return {
        "machine": machine_facts(gpu_id),
        "settings": {
            "size": size,
            "batch_size": batch_size,
            "repeats": repeats,
            "warmup_notes": warmup,
            "clinical": clinical,
            "models": {arch: str(path) for arch, path in dirs.items()},
        },
        "notes": {
            "count": len(texts),
            "words": n_words,
            "words_per_note": n_words / len(texts),
            "wordpieces_per_note": {arch: n / len(texts) for arch, n in wordpieces.items()},
            "skipped_over_longformer_budget": skipped,
        },
        "systems": summaries,
        "targets": check_targets(summaries, gpu=gpu),
    }


def run_groups(
    groups: Dict[str, Sequence[str]],
    *,
    batch_sizes: Sequence[int],
    systems: Sequence[str],
    progress: Callable[[str], None] = lambda msg: None,
    **settings: Any,
) -> Dict[str, Any]:
    """`run_benchmark` once per group of notes and batch size: the figures of notes
    that need one, two and three windows, read one at a time and in batches.

    groups (Dict[str, Sequence[str]]): Notes per group name.
    batch_sizes (Sequence[int]): Notes per batch, each run in turn.
    systems (Sequence[str]): Keys of SYSTEMS; a whole-note system (c) is left out of
        a group none of whose notes fits its budget, and the run says so.
    progress (Callable[[str], None]): Receives one line per step (no text).
    settings: The other arguments of `run_benchmark`.
    RETURNS (Dict[str, Any]): machine, and runs: each a `run_benchmark` report with
        its group and batch_size.
    """
    runs = []
    for batch_size in batch_sizes:
        for group, texts in groups.items():
            chosen, dropped = list(systems), []
            progress(f"{group}, batch size {batch_size}")
            try:
                report = run_benchmark(
                    texts, systems=chosen, batch_size=batch_size, progress=progress, **settings
                )
            except NoteTooLong:
                # Raised before any pipeline is built: only the whole-note system (c) needs it.
                dropped = [k for k in chosen if SYSTEMS_BY_KEY[k].kind == "whole"]
                chosen = [k for k in chosen if k not in dropped]
                report = run_benchmark(
                    texts, systems=chosen, batch_size=batch_size, progress=progress, **settings
                )
            report["group"] = group
            report["dropped_systems"] = dropped
            runs.append(report)
    return {"machine": runs[0]["machine"], "runs": runs}


def synthetic_stream(n: int, *, seed: int = 0, chunk: int = 200) -> Iterable[str]:
    """n synthetic notes, generated a chunk at a time (never all in memory)."""
    from ...corpus.synth import generate_notes

    made = 0
    part = 0
    while made < n:
        take = min(chunk, n - made)
        for note in generate_notes(take, seed=seed * 100003 + part):
            yield note["text"]
        made += take
        part += 1


def corpus_memory(
    nlp,
    texts: Iterable[str],
    *,
    n: int,
    shard_size: int = 500,
    samples: int = 20,
    warmup_fraction: float = 0.1,
    progress: Callable[[str], None] = lambda msg: None,
) -> Dict[str, Any]:
    """Peak RSS, segment by segment, while a pipeline annotates a stream of
    notes the way `annotate` does: docs gathered into DocBin shards of
    `shard_size`, each shard serialized and let go.

    nlp (Language): The pipeline.
    texts (Iterable[str]): The notes (at least n).
    n (int): Notes to annotate.
    shard_size (int): Docs held before a shard is serialized.
    samples (int): Segments of the run; each reports its peak RSS.
    warmup_fraction (float): Growth is measured from the first segment that
        ends after this fraction of n.
    RETURNS (Dict[str, Any]): notes, seconds, per segment (notes done, peak
        RSS MB in the segment), the peak after warm-up and in the last
        segment, growth between them (fraction), and whether trf_data was left
        on any doc.
    """
    from spacy.tokens import DocBin

    every = max(1, n // samples)
    warm = max(1, int(n * warmup_fraction))
    series = []
    shard = DocBin(store_user_data=False)
    shard_bytes = 0
    held_trf = False
    done = 0
    began = time.perf_counter()
    with RssSampler() as rss:
        for doc in nlp.pipe(itertools.islice(texts, n), batch_size=8):
            if doc.has_extension("trf_data") and doc._.get("trf_data") is not None:
                held_trf = True
            shard.add(doc)
            done += 1
            if len(shard) >= shard_size:
                shard_bytes += len(shard.to_bytes())
                shard = DocBin(store_user_data=False)
            if done % every == 0 or done == n:
                series.append((done, rss.window_peak() / 2**20))
                progress(f"{done}/{n} notes, peak RSS {series[-1][1]:,.0f} MB")
        if len(shard):
            shard_bytes += len(shard.to_bytes())
    after_warmup = next((mb for notes, mb in series if notes >= warm), series[-1][1])
    last = series[-1][1]
    return {
        "notes": done,
        "seconds": time.perf_counter() - began,
        "shard_size": shard_size,
        "serialized_mb": shard_bytes / 2**20,
        "segment_peak_rss_mb": series,
        "peak_rss_after_warmup_mb": after_warmup,
        "peak_rss_last_segment_mb": last,
        "peak_rss_mb": rss.peak / 2**20,
        "growth_after_warmup": (last - after_warmup) / after_warmup,
        "trf_data_left_on_docs": held_trf,
    }
