"""A resumable annotation job: its settings, plan, manifest and final output.

The work directory (OUTPUT itself, or OUTPUT.parts for a single JSONL file):

    job.json        the settings that must not change between runs, and the input's fingerprint
    job.lock        held (flock) by the process running the job
    workers.lock    held shared by its worker processes, so a new run waits until an
                    earlier run's workers have exited
    plan.jsonl      the shards (a header line, then one line per shard), written once, atomically
    manifest.jsonl  one line per finished shard, appended and fsynced after its files are in place
    notes-NNNNNN.jsonl | .spacy, errors-NNNNNN.jsonl   each shard's files, written atomically
    errors.jsonl, summary.json                          once every shard is done

A shard counts as done only once its manifest line is whole, so a job killed
at any moment (even `kill -9`) and started again redoes at most the shards
that were in flight, overwriting any file they left; since a shard always
gets the same notes in the same batches, the output is the same as an
uninterrupted run's, with every note exactly once.
"""

import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ..about import __version__
from ..io import NoteInput
from .records import shard_plan
from .shard import FORMATS, errors_file, fsync_dir, write_atomic

JOB_FILE, PLAN_FILE, MANIFEST_FILE, SUMMARY_FILE, ERRORS_FILE, LOCK_FILE, WORKERS_LOCK = (
    "job.json",
    "plan.jsonl",
    "manifest.jsonl",
    "summary.json",
    "errors.jsonl",
    "job.lock",
    "workers.lock",
)
#: How long a new run waits for an earlier run's workers to exit (they exit within a
#: second of their parent's death; one may be finishing a write).
WORKERS_WAIT_S = 60.0


class JobError(ValueError):
    """A job that cannot start or resume as asked (the message says why and what to do)."""


@dataclass
class JobSpec:
    """What a job does. Every field but `output` must be the same when it resumes.

    model (str): An installed pipeline's name or a path.
    input (str): A directory of .txt, a .jsonl, .csv or .parquet file, or a database URL
        (`sqlite:///notes.db`, `postgresql://user:pass@host/db`).
    output (str): A directory (shards), a .jsonl file (one file at the end), or a database URL
        (OMOP NOTE_NLP rows).
    fmt (str): "jsonl" or "docbin" (DocBin needs a directory OUTPUT; a database gets rows).
    shard_size (int): Records per shard: the unit of resuming and of Ray work.
    batch_size (int): Notes per nlp.pipe batch.
    max_chars (int): Longer notes are reported as too_long.
    id_field (Optional[str]): JSONL key or column with the note id; None for "id"
        (files) or "note_id" (a database's OMOP NOTE table).
    text_field (Optional[str]): JSONL key or column with the text; None for "text"
        (files) or "note_text" (database).
    questions (List[str]): Asked of every note, for a pipeline with clinlong_qa.
    follow_symlinks (bool): Read .txt symlinks that lead outside the input directory.
    table (Optional[str]): Database input: the table or view (`schema.table`); None for "note".
    where (Optional[str]): Database input: an SQL condition the notes must meet.
    output_schema (Optional[str]): Database output: the schema of NOTE_NLP and the job's
        tables (OMOP's `cdm`); None for the default.
    section_concepts (Optional[str]): Database output: a .json/.csv/.tsv file mapping
        medspaCy section names to section_concept_id.
    concepts (Optional[str]): Database output: a file mapping terms (lowercase) or labels to
        note_nlp_concept_id.
    job_name (Optional[str]): Database output: the job's key in its tables; None for one
        made from the input (so the same input into the same database is the same job).
    """

    model: str
    input: str
    output: str
    fmt: str = "jsonl"
    shard_size: int = 1000
    batch_size: int = 16
    max_chars: int = 1_000_000
    id_field: Optional[str] = None
    text_field: Optional[str] = None
    questions: List[str] = field(default_factory=list)
    follow_symlinks: bool = False
    table: Optional[str] = None
    where: Optional[str] = None
    output_schema: Optional[str] = None
    section_concepts: Optional[str] = None
    concepts: Optional[str] = None
    job_name: Optional[str] = None

    def __post_init__(self) -> None:
        if self.fmt not in FORMATS:
            raise JobError(f"--format must be one of {', '.join(FORMATS)}, got {self.fmt!r}.")
        for name in ("shard_size", "batch_size", "max_chars"):
            if getattr(self, name) < 1:
                raise JobError(f"{name} must be >= 1, got {getattr(self, name)}.")
        from ..io.database import is_database_url, is_url, redact_url

        for name, value in (("INPUT", self.input), ("OUTPUT", self.output)):
            if is_url(value) and not is_database_url(value):
                raise JobError(
                    f"{name} {redact_url(value)!r} is a URL of a kind annotate does not know: "
                    "give a path, sqlite:///file.db or postgresql://user@host/db."
                )
        if self.single_file and self.fmt != "jsonl":
            raise JobError(f"OUTPUT {self.output!r} is a .jsonl file; DocBin shards need a directory.")
        self._check_output()
        database = self.from_database
        if not database and (self.table is not None or self.where is not None):
            raise JobError("--table and --where apply to a database INPUT (sqlite:///..., postgresql://...).")
        if self.id_field is None:
            self.id_field = "note_id" if database else "id"
        if self.text_field is None:
            self.text_field = "note_text" if database else "text"
        if database and self.table is None:
            self.table = "note"

    def _check_output(self) -> None:
        """Refuse database-output options for files, and check a database OUTPUT's URL and maps."""
        if not self.to_database:
            given = [
                flag
                for flag, value in (
                    ("--output-schema", self.output_schema),
                    ("--section-concepts", self.section_concepts),
                    ("--concepts", self.concepts),
                    ("--job-name", self.job_name),
                )
                if value is not None
            ]
            if given:
                raise JobError(
                    f"{', '.join(given)} apply to a database OUTPUT (sqlite:///..., postgresql://...)."
                )
            return
        from ..io.omop_output import database_url

        database_url(self.output)  # ValueError: not SQLite or PostgreSQL
        if self.fmt != "jsonl":
            raise JobError("--format docbin writes files; a database OUTPUT gets NOTE_NLP rows.")
        if self.job_name is not None and not 0 < len(self.job_name) <= 255:
            raise JobError("--job-name must have 1 to 255 characters.")
        self.concept_maps()

    def concept_maps(self) -> Tuple[Dict[str, int], Dict[str, int]]:
        """RETURNS (Tuple[Dict[str, int], Dict[str, int]]): The section and term concept maps
        (empty where not given), read once per spec: validation, the job's identity and the
        rows all see the same content.

        RAISES (JobError): When a map file is missing or not a map of names to integers.
        """
        paths = (self.section_concepts, self.concepts)
        # Not a dataclass field: asdict() (job.json, the workers' specs) leaves it out, and
        # keyed by the paths, so a spec whose paths were reassigned reads its new maps.
        cached = self.__dict__.get("_concept_maps")
        if cached is None or cached[0] != paths:
            cached = self._concept_maps = (paths, self._read_concept_maps())
        return cached[1]

    def _read_concept_maps(self) -> Tuple[Dict[str, int], Dict[str, int]]:
        from ..io.omop_mapping import read_concepts

        maps = []
        for flag, path in (("--section-concepts", self.section_concepts), ("--concepts", self.concepts)):
            if path is None:
                maps.append({})
                continue
            if not Path(path).is_file():
                raise JobError(f"{flag} {path!r} is not a file.")
            try:
                maps.append(read_concepts(path))
            except (ValueError, UnicodeDecodeError) as err:
                raise JobError(f"{flag}: {err}") from None
        return maps[0], maps[1]

    @property
    def to_database(self) -> bool:
        """RETURNS (bool): Whether OUTPUT is a database URL (NOTE_NLP rows) rather than a path."""
        from ..io.database import is_database_url

        return is_database_url(self.output)

    @property
    def output_name(self) -> str:
        """RETURNS (str): OUTPUT as it may be printed and stored: a URL without its password."""
        from ..io.database import shown_name

        return shown_name(self.output)

    @property
    def job_key(self) -> str:
        """RETURNS (str): A database OUTPUT's key for the job: --job-name, else the input's name
        and a digest of what selects the notes (the same notes into the same database are one job)."""
        if self.job_name is not None:
            return self.job_name
        import hashlib

        source = self.input_name if self.from_database else str(Path(self.input).resolve())
        selects = json.dumps([source, self.table, self.where, self.id_field, self.text_field])
        name = self.table if self.from_database else Path(self.input).name
        return f"{name[:200]}-{hashlib.sha256(selects.encode('utf-8')).hexdigest()[:16]}"

    @property
    def from_database(self) -> bool:
        """RETURNS (bool): Whether INPUT is a database URL rather than a path."""
        from ..io.database import is_database_url

        return is_database_url(self.input)

    @property
    def input_name(self) -> str:
        """RETURNS (str): INPUT as it may be printed and stored: a URL without its password."""
        from ..io.database import shown_name

        return shown_name(self.input)

    def open_input(self):
        """RETURNS (Union[NoteInput, DatabaseInput]): The reader of INPUT."""
        if self.from_database:
            from ..io.database import DatabaseInput

            return DatabaseInput(
                self.input,
                table=self.table,
                id_field=self.id_field,
                text_field=self.text_field,
                where=self.where,
            )
        return NoteInput(
            Path(self.input),
            id_field=self.id_field,
            text_field=self.text_field,
            follow_symlinks=self.follow_symlinks,
        )

    @property
    def single_file(self) -> bool:
        """RETURNS (bool): Whether OUTPUT is one JSONL file (merged from the shards at the end)."""
        return not self.to_database and Path(self.output).suffix.lower() in (".jsonl", ".ndjson")

    @property
    def work_dir(self) -> Path:
        """RETURNS (Path): Where the job keeps its shards, plan and manifest."""
        out = Path(self.output)
        return out.with_name(out.name + ".parts") if self.single_file else out

    @property
    def errors_path(self) -> Path:
        """RETURNS (Path): The errors file users read (one JSON line per bad record)."""
        out = Path(self.output)
        return out.with_name(out.stem + ".errors.jsonl") if self.single_file else out / ERRORS_FILE

    def identity(self) -> Dict[str, Any]:
        """RETURNS (Dict[str, Any]): What a resumed run must share with the first one,
        the files of the pipeline included (a retrained model is another job)."""
        data = asdict(self)
        for where in ("output", "output_schema", "job_name"):  # where the job is, not what it does
            data.pop(where)
        # The maps' content, not their paths: the same map elsewhere is the same job. (Files
        # have none: their job.json keeps the keys it always had.)
        for key, concepts in zip(("section_concepts", "concepts"), self.concept_maps()):
            if self.to_database:
                data[key] = _digest_map(concepts) if concepts else None
            else:
                data.pop(key)
        model = Path(self.model)
        data["model"] = str(model.resolve()) if model.exists() else self.model
        data["model_files"] = model_fingerprint(self.model)
        # A database URL is stored without its password (job.json is a plain file).
        data["input"] = self.input_name if self.from_database else str(Path(self.input).resolve())
        return data


def _digest_map(concepts: Dict[str, int]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(concepts, sort_keys=True).encode("utf-8")).hexdigest()


def model_fingerprint(model: str) -> Optional[str]:
    """A digest of the names, sizes and modification times of a pipeline's files.

    model (str): A pipeline directory or an installed pipeline package's name.
    RETURNS (Optional[str]): The digest, or None when neither is found (spacy.load
        then says why).
    """
    import hashlib

    path = Path(model)
    if not path.exists():
        try:
            import spacy.util

            path = spacy.util.get_package_path(model)
        except Exception:
            return None
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        stat = file.stat()
        digest.update(f"{file.relative_to(path).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


class Job:
    """Plan, resume and finish an annotation job in its work directory.

    spec (JobSpec): What the job does.
    """

    def __init__(self, spec: JobSpec) -> None:
        self.spec = spec
        self.dir = spec.work_dir
        #: Where workers write shard files (and hold workers.lock).
        self.worker_dir = self.dir
        self.source = spec.open_input()
        self.shards: List[Dict[str, Any]] = []
        self.done: Dict[int, Dict[str, Any]] = {}
        self._lock_handle = None

    # Starting and resuming ----------------------------------------------------

    def prepare(self) -> None:
        """Start the job, or pick it up where it stopped.

        RAISES (JobError): When OUTPUT holds something else, or a different job,
            or the input changed since the job started.
        """
        job_path = self.dir / JOB_FILE
        if job_path.exists():
            self._lock()
            self._wait_for_workers()
            self._check_same(json.loads(job_path.read_text()))
        else:
            self._check_fresh()
            self.dir.mkdir(parents=True, exist_ok=True)
            self._lock()
            info = {
                "spacy_clinlong": __version__,
                "job": self.spec.identity(),
                "input": self.source.fingerprint(),
            }
            write_atomic(job_path, json.dumps(info, indent=2).encode())
        out = Path(self.spec.output)
        stale = list(self.dir.glob("*.tmp-*"))
        if self.spec.single_file:
            stale += [
                *out.parent.glob(out.name + ".tmp-*"),
                *out.parent.glob(self.spec.errors_path.name + ".tmp-*"),
            ]
        for path in stale:
            path.unlink(missing_ok=True)
        if not (self.dir / PLAN_FILE).exists():
            self._write_plan()
        self.shards = self._read_plan()
        self.done = self._read_manifest()

    @property
    def planned(self) -> bool:
        """RETURNS (bool): Whether the job's plan is written."""
        return (self.dir / PLAN_FILE).exists()

    def _lock(self) -> None:
        """Hold the job's lock until this process ends (a kill releases it too).

        RAISES (JobError): When another process is running this job.
        """
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no lock
            return
        self.close()
        self._lock_handle = open(self.dir / LOCK_FILE, "a")
        try:
            fcntl.flock(self._lock_handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_handle.close()
            raise JobError(f"Another annotate process is running the job in {str(self.dir)!r}.") from None

    def _wait_for_workers(self) -> None:
        """Wait until no worker of an earlier run holds `workers.lock` (shared).

        RAISES (JobError): When one still does after WORKERS_WAIT_S.
        """
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            return
        path = self.dir / WORKERS_LOCK
        if not path.exists():
            return
        deadline = time.monotonic() + WORKERS_WAIT_S
        with open(path, "a") as handle:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return  # closing the file lets go
                except OSError:
                    if time.monotonic() > deadline:
                        raise JobError(
                            f"Worker processes of an earlier run still hold {str(path)!r}; "
                            "wait until they have exited, then run the command again."
                        ) from None
                    time.sleep(0.2)

    def close(self) -> None:
        """Let go of the job's lock (another process may then resume it)."""
        if self._lock_handle is not None:
            self._lock_handle.close()
            self._lock_handle = None

    def __enter__(self) -> "Job":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def discard(self) -> None:
        """Remove an earlier job's files from OUTPUT (and nothing else), to start afresh.

        RAISES (JobError): When OUTPUT holds files that no job wrote.
        """
        if not (self.dir / JOB_FILE).exists():
            self._check_fresh()
            return
        self._lock()
        self._wait_for_workers()
        patterns = (
            JOB_FILE,
            PLAN_FILE,
            MANIFEST_FILE,
            SUMMARY_FILE,
            ERRORS_FILE,
            LOCK_FILE,
            WORKERS_LOCK,
            "notes-*",
            "errors-*",
            "*.tmp-*",
        )
        for pattern in patterns:
            for path in self.dir.glob(pattern):
                path.unlink()
        if self.spec.single_file:
            Path(self.spec.output).unlink(missing_ok=True)
            self.spec.errors_path.unlink(missing_ok=True)
            if not any(self.dir.iterdir()):
                self.dir.rmdir()

    def _check_fresh(self) -> None:
        out = Path(self.spec.output)
        if self.spec.single_file and out.exists():
            raise JobError(
                f"OUTPUT {str(out)!r} exists and no job in {str(self.dir)!r} made it; "
                "choose a new OUTPUT or remove it."
            )
        if self.dir.exists() and (not self.dir.is_dir() or any(self.dir.iterdir())):
            raise JobError(
                f"OUTPUT {str(self.dir)!r} exists and is not an annotate job; "
                "choose a new OUTPUT or remove it."
            )

    def _check_same(self, info: Dict[str, Any]) -> None:
        ours = self.spec.identity()
        changed = sorted(
            key for key in set(ours) | set(info.get("job", {})) if info["job"].get(key) != ours.get(key)
        )
        if changed:
            raise JobError(
                f"{str(self.dir)!r} holds a job started with other settings ({', '.join(changed)}); "
                "resume it with the same arguments, or start afresh with --restart or a new OUTPUT."
            )
        if not (self.dir / SUMMARY_FILE).exists() and self.source.fingerprint() != info["input"]:
            raise JobError(
                f"The input {self.spec.input_name!r} changed since the job in {str(self.dir)!r} started; "
                "annotate it afresh with --restart or a new OUTPUT."
            )

    def _write_plan(self) -> None:
        header = {"kind": self.source.kind, "shard_size": self.spec.shard_size}
        lines = [json.dumps(header)]
        lines += [
            json.dumps(shard)
            for shard in shard_plan(
                self.source, shard_size=self.spec.shard_size, max_chars=self.spec.max_chars
            )
        ]
        write_atomic(self.dir / PLAN_FILE, ("\n".join(lines) + "\n").encode())

    def _read_plan(self) -> List[Dict[str, Any]]:
        with (self.dir / PLAN_FILE).open() as handle:
            next(handle)
            return [json.loads(line) for line in handle if line.strip()]

    def _read_manifest(self) -> Dict[int, Dict[str, Any]]:
        """Read finished shards; a line torn by a kill is cut off, and a shard
        whose file is missing or of the wrong size is redone."""
        path = self.dir / MANIFEST_FILE
        done: Dict[int, Dict[str, Any]] = {}
        if not path.exists():
            return done
        data = path.read_bytes()
        good = 0
        for line in data.splitlines(keepends=True):
            try:
                entry = json.loads(line)
            except ValueError:
                break
            if not line.endswith(b"\n"):
                break
            good += len(line)
            done[entry["shard"]] = entry
        if good < len(data):
            with path.open("r+b") as handle:
                handle.truncate(good)
                os.fsync(handle.fileno())
        if (self.dir / SUMMARY_FILE).exists():
            return done
        for shard, entry in list(done.items()):
            if not (
                _has_size(self.dir / entry["file"], entry["bytes"])
                and (not entry["errors"] or _has_size(self.dir / errors_file(shard), entry["errors_bytes"]))
            ):
                del done[shard]
        return done

    # Progress -----------------------------------------------------------------

    @property
    def complete(self) -> bool:
        """RETURNS (bool): Whether the final output is in place."""
        return (self.dir / SUMMARY_FILE).exists()

    def pending(self) -> List[Dict[str, Any]]:
        """RETURNS (List[Dict[str, Any]]): The shards still to annotate, in order."""
        return [shard for shard in self.shards if shard["shard"] not in self.done]

    def counts(self) -> Dict[str, int]:
        """RETURNS (Dict[str, int]): records, notes (good records), bad (found by the scan), notes_done."""
        return plan_counts(self.shards, self.done)

    def record(self, entry: Dict[str, Any]) -> None:
        """Mark a shard done (its files are already in place): append and fsync its manifest line."""
        with (self.dir / MANIFEST_FILE).open("ab") as handle:
            handle.write(json.dumps(entry).encode() + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        self.done[entry["shard"]] = entry

    # Finishing ----------------------------------------------------------------

    def finish(self) -> Dict[str, Any]:
        """Assemble the errors file (and the single JSONL file), write the summary, tidy up.

        RETURNS (Dict[str, Any]): The summary: output, errors_file, records, shards, notes
            (annotated), errors (bad records), errors_by_reason.
        """
        if not self.complete:
            if self.pending():
                raise JobError(f"{len(self.pending())} shards are not annotated yet.")
            reasons: Counter = Counter()
            errors = []
            for entry in self._entries():
                if entry["errors"]:
                    for line in (
                        (self.dir / errors_file(entry["shard"])).read_bytes().splitlines(keepends=True)
                    ):
                        reasons[json.loads(line)["reason"]] += 1
                        errors.append(line)
            self._write_joined(self.spec.errors_path, errors)
            if self.spec.single_file:
                self._write_joined(
                    Path(self.spec.output), self._files(self.dir / e["file"] for e in self._entries())
                )
            counts = self.counts()
            summary = {
                "complete": True,
                "output": self.spec.output,
                "errors_file": str(self.spec.errors_path),
                "records": counts["records"],
                "shards": counts["shards"],
                "notes": sum(e["notes"] for e in self._entries()),
                "errors": sum(e["errors"] for e in self._entries()),
                "errors_by_reason": dict(sorted(reasons.items())),
            }
            write_atomic(self.dir / SUMMARY_FILE, json.dumps(summary, indent=2).encode())
        for entry in self._entries():
            (self.dir / errors_file(entry["shard"])).unlink(missing_ok=True)
            if self.spec.single_file:
                (self.dir / entry["file"]).unlink(missing_ok=True)
        return json.loads((self.dir / SUMMARY_FILE).read_text())

    def _entries(self) -> List[Dict[str, Any]]:
        return [self.done[shard["shard"]] for shard in self.shards]

    @staticmethod
    def _files(paths: Iterator[Path]) -> Iterator[bytes]:
        for path in paths:
            with open(path, "rb") as handle:
                yield from iter(lambda: handle.read(1 << 20), b"")

    @staticmethod
    def _write_joined(path: Path, chunks) -> None:
        """Write chunks to a file atomically (streamed: the joined output can be larger than memory)."""
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        with open(tmp, "wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)


def plan_counts(shards: List[Dict[str, Any]], done: Dict[int, Any]) -> Dict[str, int]:
    """A job's progress from its plan and its finished shards.

    shards (List[Dict[str, Any]]): The plan.
    done (Dict[int, Any]): The finished shards, by number.
    RETURNS (Dict[str, int]): records, notes (good records), bad (found by the scan),
        shards, shards_done, notes_done.
    """
    return {
        "records": sum(s["records"] for s in shards),
        "notes": sum(s["notes"] for s in shards),
        "bad": sum(len(s["bad"]) for s in shards),
        "shards": len(shards),
        "shards_done": sum(1 for s in shards if s["shard"] in done),
        "notes_done": sum(s["notes"] for s in shards if s["shard"] in done),
    }


def open_job(spec: JobSpec):
    """RETURNS (Union[Job, DatabaseJob]): The job for the spec's OUTPUT: files or a database."""
    if spec.to_database:
        from .database_job import DatabaseJob

        return DatabaseJob(spec)
    return Job(spec)


def _has_size(path: Path, size: int) -> bool:
    return path.exists() and path.stat().st_size == size


def describe(summary: Optional[Dict[str, Any]]) -> str:
    """RETURNS (str): A one-line account of a finished job (counts only)."""
    if not summary:
        return ""
    reasons = ", ".join(f"{n} {reason}" for reason, n in summary["errors_by_reason"].items())
    return (
        f"{summary['notes']:,} notes annotated into {summary['output']}; {summary['errors']:,} bad records"
        + (f" ({reasons})" if reasons else "")
        + f" in {summary['errors_file']}"
    )
