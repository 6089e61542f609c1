"""A job whose OUTPUT is a database: NOTE_NLP rows, with the job's identity, plan and manifest in
tables beside them (`io.omop_output`).

A shard's rows, note results, bad records and manifest row are committed in one
transaction by the process that annotated it, so a job killed at any moment and run
again leaves every note's rows in the database once. Nothing is kept on local disk:
any process that reaches the database can resume the job, and several may run it at
once (each skips the shards already written when it comes to them; a shard two
processes annotate at the same moment is written by the first to commit).
"""

from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

from ..about import __version__
from .job import JobError, JobSpec, plan_counts
from .records import shard_plan


class DatabaseJob:
    """Plan, resume and finish an annotation job whose OUTPUT is a database URL.

    spec (JobSpec): What the job does (`spec.to_database`).
    RAISES (OutputError): When the database cannot be reached or its tables are not usable.
    """

    #: Workers keep no files: there is no work directory.
    worker_dir = None

    def __init__(self, spec: JobSpec) -> None:
        from ..io.omop_output import NoteNlpWriter

        self.spec = spec
        self.key = spec.job_key
        self.source = spec.open_input()
        self.writer = NoteNlpWriter(spec.output, schema=spec.output_schema)
        self.shards: List[Dict[str, Any]] = []
        self.done: Dict[int, Dict[str, Any]] = {}
        self.row: Optional[Dict[str, Any]] = None

    def __enter__(self) -> "DatabaseJob":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the job's database connections."""
        self.writer.close()

    @property
    def planned(self) -> bool:
        """RETURNS (bool): Whether the job (and so its plan) is in the database."""
        return self.writer.job(self.key) is not None

    def discard(self) -> None:
        """Remove the job and all it wrote (NOTE_NLP rows, results, bad records), to start afresh."""
        self.writer.discard_job(self.key)

    def prepare(self) -> None:
        """Start the job, or pick it up where it stopped.

        RAISES (JobError): When the job in the database was run with other settings, or the
            input changed since it started.
        """
        row = self.writer.job(self.key)
        started = False
        if row is None:
            plan = list(
                shard_plan(
                    self.source,
                    shard_size=self.spec.shard_size,
                    max_chars=self.spec.max_chars,
                    integer_ids=True,
                )
            )
            identity = {"spacy_clinlong": __version__, "job": self.spec.identity()}
            started = self.writer.start_job(self.key, identity, self.source.fingerprint(), plan)
            # Ours as stored, or the one another process started meanwhile (to be checked).
            row = self.writer.job(self.key)
        if row is not None and not started:
            self._check_same(row)
        self.row = row
        self.shards = self.writer.plan(self.key)
        self.done = self.writer.manifest(self.key)

    def _check_same(self, row: Dict[str, Any]) -> None:
        ours = self.spec.identity()
        theirs = (row.get("identity") or {}).get("job", {})
        changed = sorted(key for key in set(ours) | set(theirs) if theirs.get(key) != ours.get(key))
        where = f"job {self.key!r} in {self.spec.output_name}"
        if changed:
            raise JobError(
                f"{where} was started with other settings ({', '.join(changed)}); resume it with the same "
                "arguments, start afresh with --restart, or name another job with --job-name."
            )
        if row.get("completed_at") is None and self.source.fingerprint() != row.get("input"):
            raise JobError(
                f"The input {self.spec.input_name!r} changed since {where} started; "
                "annotate it afresh with --restart or another --job-name."
            )

    @property
    def complete(self) -> bool:
        """RETURNS (bool): Whether the job was finished (its summary is in the database)."""
        return self.row is not None and self.row.get("completed_at") is not None

    def pending(self) -> List[Dict[str, Any]]:
        """RETURNS (List[Dict[str, Any]]): The shards still to annotate, in order."""
        return [shard for shard in self.shards if shard["shard"] not in self.done]

    def counts(self) -> Dict[str, int]:
        """RETURNS (Dict[str, int]): records, notes, bad, shards, shards_done, notes_done."""
        return plan_counts(self.shards, self.done)

    def record(self, entry: Dict[str, Any]) -> None:
        """Note a shard as done: a worker committed it (with its manifest row) already."""
        self.done[entry["shard"]] = entry

    def finish(self) -> Dict[str, Any]:
        """Write the summary into the job's row once every shard is written.

        RETURNS (Dict[str, Any]): The summary: output (the URL, redacted), job, errors_file
            (the errors table), records, shards, notes, errors, errors_by_reason, note_nlp_rows.
        RAISES (JobError): When shards are still to annotate (by any process).
        """
        if self.complete:
            return dict(self.row["summary"])
        self.done = self.writer.manifest(self.key)
        if self.pending():
            raise JobError(f"{len(self.pending())} shards are not annotated yet.")
        schema = f"{self.spec.output_schema}." if self.spec.output_schema else ""
        entries = self.done.values()
        summary = {
            "complete": True,
            "output": self.spec.output_name,
            "job": self.key,
            "errors_file": f"{schema}clinlong_errors (job_key {self.key!r})",
            "records": self.counts()["records"],
            "shards": len(self.shards),
            "notes": sum(entry["notes"] for entry in entries),
            "errors": sum(entry["errors"] for entry in entries),
            "errors_by_reason": self.writer.error_reasons(self.key),
            "note_nlp_rows": sum(entry["note_nlp_rows"] for entry in entries),
        }
        self.writer.complete_job(self.key, summary)
        self.row = self.writer.job(self.key)
        return summary


class NoteNlpOutput:
    """A worker's way to write shards into the database: NOTE_NLP rows and the rest, one
    transaction per shard (`ShardFiles`'s counterpart).

    spec (JobSpec): The job (`spec.to_database`).
    meta (Dict[str, Any]): The pipeline's meta, for nlp_system.
    """

    def __init__(self, spec: JobSpec, meta: Dict[str, Any]) -> None:
        from ..io.omop_mapping import nlp_system_name
        from ..io.omop_output import NoteNlpWriter

        self.key = spec.job_key
        self.writer = NoteNlpWriter(spec.output, schema=spec.output_schema)
        self.section_concepts, self.concepts = spec.concept_maps()
        self.nlp_system = nlp_system_name(meta)

    def written(self, shard: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """RETURNS (Optional[Dict[str, Any]]): The shard's manifest row if a process wrote it already."""
        row = self.writer.written_shard(self.key, shard["shard"])
        return None if row is None else dict(_entry(row), written=False)

    def start(self) -> "_ShardRows":
        """RETURNS (_ShardRows): A shard's rows, collected until `commit`."""
        return _ShardRows(self)

    def close(self) -> None:
        self.writer.close()


class _ShardRows:
    def __init__(self, output: NoteNlpOutput) -> None:
        self.output = output
        self.when = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
        self.rows: List[Dict[str, Any]] = []
        self.results: List[Dict[str, Any]] = []

    def add(self, note_id: Any, text: str, doc) -> None:
        from ..integrations.medspacy.doc_json import doc_to_json
        from ..io import integer_id
        from ..io.omop_mapping import note_nlp_rows, note_result_rows

        out = self.output
        number = integer_id(note_id)  # the plan let only integer ids through
        view = doc_to_json(doc, number)
        self.rows += note_nlp_rows(
            view,
            number,
            nlp_system=out.nlp_system,
            nlp_date=self.when.date(),
            nlp_datetime=self.when,
            section_concepts=out.section_concepts,
            concepts=out.concepts,
            text=text,
        )
        self.results += note_result_rows(view, number)

    def commit(self, shard: int, errors: List[Dict[str, Any]], counts: Dict[str, int]) -> Dict[str, Any]:
        out = self.output
        written = out.writer.write_shard(out.key, shard, self.rows, self.results, errors, counts)
        if not written:  # another process committed it first: its row is the one that counts
            return dict(_entry(out.writer.written_shard(out.key, shard)), written=False)
        return {"shard": shard, **counts, "note_nlp_rows": len(self.rows), "written": True}


def _entry(row: Dict[str, Any]) -> Dict[str, Any]:
    keys = ("shard", "notes", "failed", "errors", "note_nlp_rows")
    return {key: row[key] for key in keys}
