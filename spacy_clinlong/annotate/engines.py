"""The two engines that annotate a job's pending shards: local (this process, or a pool of
worker processes on this machine) and Ray Data (an actor pool, on one machine or a cluster).

Both load the pipeline the same way (`load_pipeline`) and annotate a shard the
same way (`annotate_shard`): only who runs which shard differs, so the output
is the same, byte for byte, where each pipeline runs on the same kind of
device with the same number of torch threads (a different thread count can
change a score in its last bit: matrix products add up in another order).
"""

import json
import logging
import os
import signal
import sys
import threading
import time
from typing import Any, Callable, Dict, List, Optional

from .job import WORKERS_LOCK, Job, JobError, JobSpec, open_job
from .shard import ShardFiles, annotate_shard, can_time_out, load_pipeline

ENGINES = ("local", "ray")
BAR_FORMAT = "{desc}{percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} notes [{elapsed}<{remaining}, {rate_fmt}]"


def progress_bar(total: int, initial: int, *, enabled: bool = True):
    """RETURNS (tqdm): A bar counting notes, with notes/s and the time left."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit="notes",
        bar_format=BAR_FORMAT,
        disable=not enabled,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=1.0,
        smoothing=0.05,
    )


def default_threads(workers: int) -> int:
    """RETURNS (int): Torch threads per worker: the machine's cores shared among the workers."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def run_local(
    job: Job, *, gpu_id: int, threads: Optional[int], workers: int, bar, note_timeout: Optional[float] = None
) -> None:
    """Annotate the pending shards in this process, in order, or in `workers` processes
    (spawned, one pipeline each), whose shards are recorded as they finish.

    The workers exit when this process dies (even by kill -9), and when it is
    interrupted it stops them before it lets go of the job.
    """
    spec = job.spec
    if workers == 1:
        worker = ShardWorker(_fields(spec), _dir(job), gpu_id, threads, note_timeout)
        check_pipeline(worker.nlp, spec)
        for shard in job.pending():
            job.record(worker.annotate(shard, on_notes=bar.update))
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    check_questions(spec)
    args = (
        _fields(spec),
        _dir(job),
        gpu_id,
        threads or default_threads(workers),
        note_timeout,
        os.getpid(),
    )
    shards = iter(job.pending())
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=args,
    )
    running = set()
    try:
        while True:
            # Two shards per worker in flight: none waits, and a kill loses little.
            for shard in shards:
                running.add(pool.submit(_work, json.dumps(shard)))
                if len(running) >= 2 * workers:
                    break
            if not running:
                break
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                _record(job, bar, future.result())
    except BrokenProcessPool:
        _stop_workers(pool)
        raise JobError(
            "A worker process died (killed, or out of memory) while annotating; the finished shards "
            "are kept. Run the same command to resume, with fewer --workers or a smaller --batch-size "
            "if memory ran out."
        ) from None
    except BaseException:
        _stop_workers(pool)
        raise
    pool.shutdown()


def _stop_workers(pool) -> None:
    """Terminate a pool's workers and wait for them (the job's lock is still held)."""
    # The executor keeps its processes in a private dict (CPython 3.8 to 3.13).
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(10)
    # Let the executor's manager thread see its dead workers and close its wakeup pipe
    # now: at interpreter exit, concurrent.futures wakes every manager thread through
    # that pipe, and a close racing that wakeup printed a traceback after SIGTERM.
    # Taken before shutdown(), which forgets it.
    manager = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False, cancel_futures=True)
    if manager is not None:
        manager.join(10)


def _record(job: Job, bar, entry: str) -> None:
    """Record a shard a worker finished (its manifest entry as JSON) and move the bar."""
    done = json.loads(entry)
    job.record(done)
    bar.update(done["notes"] + done["failed"])


_WORKER: Optional["ShardWorker"] = None
_WORKERS_LOCK = None


def _dir(job, *, absolute: bool = False) -> Optional[str]:
    """RETURNS (Optional[str]): The job's work directory for its workers (None: a database OUTPUT)."""
    if job.worker_dir is None:
        return None
    return str(job.worker_dir.resolve() if absolute else job.worker_dir)


def _start_worker(
    spec: Dict[str, Any],
    work_dir: Optional[str],
    gpu_id: int,
    threads: int,
    note_timeout: Optional[float],
    parent: int,
) -> None:
    global _WORKER, _WORKERS_LOCK
    _die_with_parent(parent)
    # Held shared until this process ends: a new run of the job waits for it. (A database
    # OUTPUT has no files a late worker could overwrite: its shards are transactions.)
    if work_dir is not None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            fcntl = None
        if fcntl is not None:
            _WORKERS_LOCK = open(os.path.join(work_dir, WORKERS_LOCK), "a")
            fcntl.flock(_WORKERS_LOCK, fcntl.LOCK_SH)
    _WORKER = ShardWorker(spec, work_dir, gpu_id, threads, note_timeout)


def _die_with_parent(parent: int) -> None:
    """Make a local worker exit when the job's process dies, however it dies.

    Linux kills it with the parent (PR_SET_PDEATHSIG); elsewhere, and for a
    parent that died before that was set, a thread checks every second.
    Ctrl-C reaches the whole process group: the parent stops the workers.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):  # pragma: no cover - no prctl
            pass

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="clinlong-parent-watch", daemon=True).start()


def _work(shard: str) -> str:
    assert _WORKER is not None
    return _WORKER({"shard": [shard]})["entry"][0]


def check_questions(spec: JobSpec) -> None:
    """Before workers start: refuse questions for a pipeline that cannot answer them
    (loads the pipeline here only when there are questions)."""
    if spec.questions:
        check_pipeline(load_pipeline(spec.model, max_chars=spec.max_chars), spec)


def check_pipeline(nlp, spec: JobSpec) -> None:
    """Refuse questions for a pipeline that cannot answer them."""
    if spec.questions and not any(factory == "clinlong_qa" for factory in _factories(nlp)):
        raise ValueError(
            "--questions needs a pipeline with a clinlong_qa component; "
            f"this one has: {', '.join(nlp.pipe_names) or 'no components'}."
        )


def _factories(nlp) -> List[str]:
    return [nlp.get_pipe_meta(name).factory for name in nlp.pipe_names]


class ShardWorker:
    """One pipeline annotating whole shards: a Ray Data actor, or a local worker process.

    spec (Dict[str, Any]): The JobSpec's fields.
    work_dir (Optional[str]): The job's work directory (on storage every node can reach), or
        None when OUTPUT is a database (each worker writes its shards there).
    gpu_id (int): The GPU to use, -1 for CPU.
    threads (int): Torch threads on CPU.
    note_timeout (Optional[float]): Seconds a note may take (None: no limit).
    """

    def __init__(
        self,
        spec: Dict[str, Any],
        work_dir: Optional[str],
        gpu_id: int,
        threads: int,
        note_timeout: Optional[float] = None,
    ) -> None:
        from pathlib import Path

        self.spec = JobSpec(**spec)
        self.note_timeout = note_timeout
        self.source = self.spec.open_input()
        self.nlp = load_pipeline(
            self.spec.model,
            gpu_id=gpu_id,
            threads=None if gpu_id >= 0 else threads,
            max_chars=self.spec.max_chars,
        )
        if self.spec.to_database:
            from .database_job import NoteNlpOutput

            self.output = NoteNlpOutput(self.spec, self.nlp.meta)
        else:
            self.output = ShardFiles(Path(work_dir), self.spec.fmt)

    def annotate(
        self, shard: Dict[str, Any], on_notes: Optional[Callable[[int], None]] = None
    ) -> Dict[str, Any]:
        """RETURNS (Dict[str, Any]): The manifest entry of the shard, annotated and written."""
        if self.note_timeout and not can_time_out():
            import warnings

            warnings.warn(
                "--note-timeout is not applied here: this worker does not run the pipeline in its "
                "main thread, where the time limit's alarm is delivered.",
                RuntimeWarning,
                stacklevel=2,
            )
            self.note_timeout = None
        spec = self.spec
        written = self.output.written(shard)  # by another process running the same job
        if written is not None:
            if on_notes is not None:
                on_notes(written["notes"] + written["failed"])
            return written
        return annotate_shard(
            self.nlp,
            self.source,
            shard,
            output=self.output,
            integer_ids=spec.to_database,
            batch_size=spec.batch_size,
            max_chars=spec.max_chars,
            questions=spec.questions or None,
            on_notes=on_notes,
            note_timeout=self.note_timeout,
        )

    def __call__(self, batch: Dict[str, Any]) -> Dict[str, List[str]]:
        """Ray Data's call: a batch of shards (as JSON) to their manifest entries (as JSON)."""
        return {"entry": [json.dumps(self.annotate(json.loads(item))) for item in batch["shard"]]}


def run_ray(
    job: Job,
    *,
    workers: Optional[int],
    gpu_id: int,
    threads: Optional[int],
    bar,
    address: Optional[str] = None,
    note_timeout: Optional[float] = None,
) -> None:
    """Annotate the pending shards with a Ray Data actor pool, one pipeline per worker.

    On one machine (no RAY_ADDRESS, no `address`, no running `ray start`)
    this starts a local Ray instance and stops it afterwards. Every node
    must have the package, the pipeline and the input at the same paths,
    and see the work directory (shared storage).
    """
    # Before Ray is imported: no usage report, so no probe of cloud metadata addresses.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
        import ray.data
    except ImportError as err:
        raise ValueError("--engine ray needs Ray Data: pip install 'spacy-clinlong[ray]'.") from err
    spec = job.spec
    pending = job.pending()
    if not pending:
        return
    started = not ray.is_initialized()
    if started:
        # ray.init installs a SIGTERM handler that exits with 15: ours says how to resume (143).
        sigterm = signal.getsignal(signal.SIGTERM)
        ray.init(
            address=address,
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=True,
            configure_logging=True,
        )
        if threading.current_thread() is threading.main_thread() and sigterm is not None:
            signal.signal(signal.SIGTERM, sigterm)
    try:
        check_questions(spec)
        gpu = gpu_id >= 0
        if workers is None:
            workers = max(1, int(ray.cluster_resources().get("GPU", 0))) if gpu else 1
        threads = threads or default_threads(workers)
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.execution_options.preserve_order = False
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        items = [{"shard": json.dumps(shard)} for shard in pending]
        dataset = ray.data.from_items(items, override_num_blocks=len(items))
        resources = {"num_gpus": 1} if gpu else {"num_cpus": threads}
        annotated = dataset.map_batches(
            ShardWorker,
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=workers),
            # Ray hides all but an actor's own GPU, so the one it was given is device 0.
            fn_constructor_kwargs={
                "spec": _fields(spec, absolute=True),
                "work_dir": _dir(job, absolute=True),
                "gpu_id": 0 if gpu else -1,
                "threads": threads,
                "note_timeout": note_timeout,
            },
            **resources,
        )
        for row in annotated.iter_rows():
            _record(job, bar, row["entry"])
    finally:
        if started:
            ray.shutdown()


def _fields(spec: JobSpec, *, absolute: bool = False) -> Dict[str, Any]:
    """RETURNS (Dict[str, Any]): The spec's fields; with `absolute`, local paths made absolute
    (a Ray worker need not start in the driver's directory)."""
    from dataclasses import asdict
    from pathlib import Path

    fields = asdict(spec)
    if absolute:
        for key in ("model", "input", "output", "section_concepts", "concepts"):
            if fields[key] is None:
                continue
            if Path(fields[key]).exists():
                fields[key] = str(Path(fields[key]).resolve())
    return fields


def annotate(
    spec: JobSpec,
    *,
    engine: str = "local",
    gpu_id: int = -1,
    workers: Optional[int] = None,
    threads: Optional[int] = None,
    progress: bool = True,
    ray_address: Optional[str] = None,
    restart: bool = False,
    note_timeout: Optional[float] = None,
    echo=print,
) -> Dict[str, Any]:
    """Run (or resume) an annotation job to the end.

    spec (JobSpec): What to annotate, with what, into where.
    engine (str): "local" (this process) or "ray" (a Ray Data actor pool).
    gpu_id (int): GPU for the local engine; with Ray, >= 0 gives each worker a GPU.
    workers (Optional[int]): Pipelines at work: local processes (default 1: this
        process), or Ray workers (default: one per GPU, or 1 on CPU).
    threads (Optional[int]): Torch threads per CPU worker (default: torch's own in
        this process, cores / workers in worker processes).
    progress (bool): Show the progress bar (on stderr).
    ray_address (Optional[str]): A Ray cluster to join (default: RAY_ADDRESS, or a local instance).
    restart (bool): Discard an earlier job in OUTPUT (its files only) and start afresh.
    note_timeout (Optional[float]): Seconds a note may take before it is reported as
        `timeout` and the job moves on (None or 0: no limit). Not part of the job's
        identity: a resumed run may set another.
    echo (Callable[[str], None]): Where status lines go.
    RETURNS (Dict[str, Any]): The job's summary (counts only).
    """
    if engine not in ENGINES:
        raise ValueError(f"--engine must be one of {', '.join(ENGINES)}, got {engine!r}.")
    with open_job(spec) as job:
        if restart:
            job.discard()
        if not job.planned:
            echo(f"Reading {spec.input_name} to plan the job ...")
        job.prepare()
        counts = job.counts()
        if job.complete:
            echo(f"Already complete: {spec.output_name}")
            return job.finish()
        resumed = counts["shards_done"] > 0
        echo(
            f"{'Resuming' if resumed else 'Planned'}: {counts['records']:,} records in {counts['shards']:,} shards; "
            f"{counts['notes']:,} notes to annotate, {counts['bad']:,} bad records"
            + (
                f"; {counts['shards_done']:,} shards ({counts['notes_done']:,} notes) already done"
                if resumed
                else ""
            )
        )
        start = time.perf_counter()
        with progress_bar(counts["notes"], counts["notes_done"], enabled=progress) as bar:
            if engine == "local":
                run_local(
                    job,
                    gpu_id=gpu_id,
                    threads=threads,
                    workers=workers or 1,
                    bar=bar,
                    note_timeout=note_timeout,
                )
            else:
                run_ray(
                    job,
                    workers=workers,
                    gpu_id=gpu_id,
                    threads=threads,
                    bar=bar,
                    address=ray_address,
                    note_timeout=note_timeout,
                )
        seconds = time.perf_counter() - start
        done = job.counts()["notes_done"] - counts["notes_done"]
        echo(f"{done:,} notes in {seconds:,.1f} s ({done / max(seconds, 1e-9):,.1f} notes/s)")
        return job.finish()
