"""Annotate one shard: read its notes back, run the pipeline, write the result atomically.

Both engines call `annotate_shard` with a pipeline from `load_pipeline`, so a
shard's file is the same whichever engine (or which run of a resumed job)
wrote it: same notes, same batches, same order.
"""

import hashlib
import json
import os
import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from ..io import NoteInput, RawRecord
from .records import error_entry, read_shard

FORMATS = ("jsonl", "docbin")
SUFFIX = {"jsonl": ".jsonl", "docbin": ".spacy"}


def notes_file(shard: int, fmt: str) -> str:
    """RETURNS (str): The file name of a shard's annotations."""
    return f"notes-{shard:06d}{SUFFIX[fmt]}"


def errors_file(shard: int) -> str:
    """RETURNS (str): The file name of a shard's bad records."""
    return f"errors-{shard:06d}.jsonl"


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file so that it is either absent or whole, even after `kill -9` or a power cut."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename in a directory durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def load_pipeline(model: str, *, gpu_id: int = -1, threads: Optional[int] = None, max_chars: int = 1_000_000):
    """Load the pipeline a worker annotates with.

    model (str): An installed pipeline's name or a path.
    gpu_id (int): GPU to use, -1 for CPU.
    threads (Optional[int]): Torch threads on CPU (None keeps torch's default).
    max_chars (int): Longest text the job lets through (raises nlp.max_length).
    RETURNS (Language): The pipeline.
    """
    import spacy
    import torch

    from ..pipes.extensions import install_extensions

    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    if threads:
        torch.set_num_threads(threads)
    install_extensions()
    nlp = spacy.load(model)
    nlp.max_length = max(nlp.max_length, max_chars + 1)
    return nlp


class NoteTimeout(Exception):
    """The pipeline ran past the per-note time limit (raised by its alarm)."""


def can_time_out() -> bool:
    """RETURNS (bool): Whether a time limit can interrupt the pipeline here: SIGALRM
    exists (POSIX) and this is the main thread, where Python runs signal handlers."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextmanager
def time_limit(seconds: Optional[float]):
    """Raise NoteTimeout in the block once `seconds` have passed (None or 0: no limit).

    The alarm interrupts Python code (rule components such as ConText) at once,
    and a long native call (a matrix product) when it returns. Where another
    alarm is pending (a test runner's timeout, say), it is left alone and no
    limit is set; the handler in place before is put back, and an alarm of ours
    that fires during that is dropped.
    """
    if not seconds or not can_time_out() or signal.getitimer(signal.ITIMER_REAL)[0] > 0:
        yield
        return

    def alarm(signum, frame):
        raise NoteTimeout()

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        try:
            signal.setitimer(signal.ITIMER_REAL, 0)
            if signal.SIGALRM in signal.sigpending():
                signal.sigtimedwait({signal.SIGALRM}, 0)  # ours, fired just now: not for `previous`
            signal.signal(signal.SIGALRM, previous)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})


def run_pipeline(
    nlp,
    notes: List[Tuple[Any, str, int, str]],
    *,
    batch_size: int,
    questions: Optional[List[str]],
    on_notes: Optional[Callable[[int], None]] = None,
    note_timeout: Optional[float] = None,
) -> Iterator[Tuple[Tuple[Any, str, int, str], Any, Optional[str]]]:
    """Annotate notes in batches; a batch that raises (or runs past its notes' time
    limits) is redone note by note.

    note_timeout (Optional[float]): Seconds a note may take; None or 0 for no limit.
        A batch gets that times its size, then its notes are retried one by one, each
        with the limit: a note that hangs costs about (batch size + 1) limits.
    YIELDS (Tuple[note, Optional[Doc], Optional[str]]): Each note with its doc,
        or None and the exception's type name (never its message, which may
        quote the text); "NoteTimeout" for a note past its time limit.
    """
    from spacy.util import minibatch

    def make(text):
        doc = nlp.make_doc(text)
        if questions:
            doc._.questions = list(questions)
        return doc

    for chunk in minibatch(notes, size=batch_size):
        try:
            with time_limit(note_timeout and note_timeout * len(chunk)):
                docs = list(nlp.pipe([make(text) for _, text, _, _ in chunk], batch_size=batch_size))
        except Exception:
            for note in chunk:
                try:
                    with time_limit(note_timeout):
                        doc = nlp(make(note[1]))
                except Exception as err:
                    yield note, None, type(err).__name__
                else:
                    yield note, doc, None
        else:
            yield from ((note, doc, None) for note, doc in zip(chunk, docs))
        if on_notes is not None:
            on_notes(len(chunk))


def _is_plain(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(item) for item in value)
    if isinstance(value, dict):
        return all(_is_plain(k) and _is_plain(v) for k, v in value.items())
    return False


def _plain_user_data(doc) -> None:
    """Keep the plain data in doc.user_data (ConText flags, section names, answers, the note
    id) and drop rule objects (ConText's graph and modifiers, medspaCy's sections): medspaCy
    packs some of them into msgpack, but they do not load back."""
    if doc.has_extension("trf_data"):
        doc._.trf_data = None
    for key in list(doc.user_data):
        if not (_is_plain(key) and _is_plain(doc.user_data[key])):
            del doc.user_data[key]


class ShardFiles:
    """A shard's output as files in the work directory: its notes (JSON lines or a DocBin) and
    its bad records, each written atomically; the manifest line is the job's to append.

    work_dir (Path): Where shard files go.
    fmt (str): "jsonl" (the JSON view of each doc) or "docbin".
    """

    def __init__(self, work_dir: Path, fmt: str) -> None:
        self.work_dir = Path(work_dir)
        self.fmt = fmt

    def written(self, shard: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """RETURNS (Optional[Dict[str, Any]]): None: the job's manifest says which shards are done."""
        return None

    def start(self) -> "_ShardFile":
        """RETURNS (_ShardFile): A shard's notes, collected until `commit`."""
        return _ShardFile(self.work_dir, self.fmt)


class _ShardFile:
    def __init__(self, work_dir: Path, fmt: str) -> None:
        from spacy.tokens import DocBin

        self.work_dir, self.fmt = work_dir, fmt
        self.lines: List[bytes] = []
        self.docbin = DocBin(store_user_data=True) if fmt == "docbin" else None

    def add(self, note_id: Any, text: str, doc) -> None:
        from ..integrations.medspacy.doc_json import doc_to_json

        if self.docbin is not None:
            doc._.note_id = note_id
            _plain_user_data(doc)
            self.docbin.add(doc)
        else:
            self.lines.append(
                json.dumps(doc_to_json(doc, note_id), ensure_ascii=False).encode("utf-8") + b"\n"
            )

    def commit(self, shard: int, errors: List[Dict[str, Any]], counts: Dict[str, int]) -> Dict[str, Any]:
        error_data = b"".join(json.dumps(e).encode("utf-8") + b"\n" for e in errors)
        if errors:
            write_atomic(self.work_dir / errors_file(shard), error_data)
        data = self.docbin.to_bytes() if self.docbin is not None else b"".join(self.lines)
        write_atomic(self.work_dir / notes_file(shard, self.fmt), data)
        return {
            "shard": shard,
            **counts,
            "file": notes_file(shard, self.fmt),
            "bytes": len(data),
            "errors_bytes": len(error_data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }


def annotate_shard(
    nlp,
    source: NoteInput,
    shard: Dict[str, Any],
    *,
    output,
    batch_size: int,
    max_chars: int,
    questions: Optional[List[str]] = None,
    on_notes: Optional[Callable[[int], None]] = None,
    note_timeout: Optional[float] = None,
    integer_ids: bool = False,
) -> Dict[str, Any]:
    """Annotate a shard and write its notes and its bad records (files atomically, or rows in
    one transaction).

    nlp (Language): The pipeline.
    source (NoteInput): The job's input.
    shard (Dict[str, Any]): The shard, as planned.
    output (Union[ShardFiles, NoteNlpOutput]): Where the shard goes.
    batch_size (int): Notes per nlp.pipe batch.
    max_chars (int): Longest text annotated.
    questions (Optional[List[str]]): Asked of every note (for clinlong_qa).
    on_notes (Optional[Callable[[int], None]]): Told how many notes each batch finished.
    note_timeout (Optional[float]): Seconds a note may take; past it the note is a
        `timeout` error. None or 0: no limit.
    integer_ids (bool): Ids must be integers (as in the plan).
    RETURNS (Dict[str, Any]): The manifest entry: shard, notes (written), failed (raised in
        the pipeline or timed out), errors (all bad records), and the output's own keys
        (file, bytes, errors_bytes, sha256 for files).
    """
    notes, bad = read_shard(source, shard, max_chars=max_chars, integer_ids=integer_ids)
    out = output.start()
    failed: List[Dict[str, Any]] = []
    for (note_id, text, index, where), doc, error in run_pipeline(
        nlp, notes, batch_size=batch_size, questions=questions, on_notes=on_notes, note_timeout=note_timeout
    ):
        if doc is None:
            record = RawRecord(index, note_id, text, where)
            if error == NoteTimeout.__name__:
                failed.append(error_entry(record, "timeout", detail=f"{note_timeout:g} s"))
            else:
                failed.append(error_entry(record, "pipeline_error", detail=error))
        else:
            out.add(note_id, text, doc)
    errors = sorted(bad + failed, key=lambda entry: entry["index"])
    counts = {"notes": len(notes) - len(failed), "failed": len(failed), "errors": len(errors)}
    return out.commit(shard["shard"], errors, counts)
