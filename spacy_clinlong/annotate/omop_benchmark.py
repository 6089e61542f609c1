"""Is writing to the database the bottleneck? NOTE_NLP insert rate apart from any model, and a whole
annotate job into the database against the same job into JSONL.

Every row this writes is removed afterwards: the rows go in under a job key of their own
(`clinlong-benchmark-...`) and `NoteNlpWriter.discard_job` takes them out again, so it can
run against the database a site annotates into.
"""

import statistics
import tempfile
import time
import uuid
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

#: Rows that look like a medspaCy pipeline's (no note text: a fixed phrase).
_ROW = {
    "section_concept_id": 0,
    "snippet": "patient denies chest pain on exertion or at rest",
    "lexical_variant": "chest pain",
    "note_nlp_concept_id": 0,
    "note_nlp_source_concept_id": 0,
    "term_exists": "n",
    "term_temporal": None,
    "term_modifiers": "negated=true,historical=false,family=false,hypothetical=false,uncertain=false,label=PROBLEM",
}


def _key(what: str) -> str:
    return f"clinlong-benchmark-{what}-{uuid.uuid4().hex[:12]}"


def insert_rate(
    url: str, *, schema: Optional[str] = None, rows: int = 100_000, shards: int = 4
) -> Dict[str, Any]:
    """Time NOTE_NLP inserts alone: `shards` transactions of rows/shards rows each, then remove them.

    url (str): The database (`postgresql://...`, `sqlite:///...`).
    schema (Optional[str]): The schema of NOTE_NLP (e.g. cdm).
    rows (int): Rows in all.
    shards (int): Transactions they are written in.
    RETURNS (Dict[str, Any]): backend, rows, seconds, rows_per_s.
    """
    from ..io.omop_output import NoteNlpWriter

    writer = NoteNlpWriter(url, schema=schema)
    key = _key("insert")
    per_shard = max(1, rows // shards)
    now = datetime.now().replace(microsecond=0)
    seconds = 0.0
    try:
        for shard in range(shards):
            batch = [
                dict(
                    _ROW,
                    note_id=shard * per_shard + i,
                    offset=str(i % 5000),
                    nlp_system="benchmark",
                    nlp_date=date.today(),
                    nlp_datetime=now,
                )  # fmt: skip
                for i in range(per_shard)
            ]
            start = time.perf_counter()
            writer.write_shard(key, shard, batch, [], [], {"notes": per_shard})
            seconds += time.perf_counter() - start
    finally:
        writer.discard_job(key)
        writer.close()
    total = per_shard * shards
    return {
        "backend": writer.url.get_backend_name(),
        "rows": total,
        "seconds": round(seconds, 3),
        "rows_per_s": round(total / seconds),
    }


def job_times(
    model: str,
    input: str,
    output: str,
    *,
    schema: Optional[str] = None,
    repeats: int = 3,
    echo: Callable[[str], None] = print,
    **spec: Any,
) -> Dict[str, Any]:
    """Run the same annotate job into JSONL and into the database, alternating, `repeats` times each.

    model (str): The pipeline.
    input (str): Its notes (a path or a database URL).
    output (str): The database to write NOTE_NLP into (each run's rows are removed after).
    schema (Optional[str]): NOTE_NLP's schema.
    repeats (int): Runs of each.
    echo (Callable[[str], None]): Where each run's time goes.
    spec: Other JobSpec settings (shard_size, batch_size, table, where ...).
    RETURNS (Dict[str, Any]): jsonl_s and database_s (each run, seconds), their medians,
        ratio (database / JSONL median), notes, note_nlp_rows.
    """
    from ..io.omop_output import NoteNlpWriter
    from .engines import annotate
    from .job import JobSpec

    times: Dict[str, List[float]] = {"jsonl": [], "database": []}
    summary: Dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(repeats):
            for kind in ("jsonl", "database") if run % 2 == 0 else ("database", "jsonl"):
                if kind == "jsonl":
                    job = JobSpec(model=model, input=input, output=str(Path(tmp) / f"run{run}.jsonl"), **spec)
                else:
                    job = JobSpec(
                        model=model,
                        input=input,
                        output=output,
                        output_schema=schema,
                        job_name=_key("job"),
                        **spec,
                    )
                start = time.perf_counter()
                result = annotate(job, progress=False, echo=lambda line: None)
                seconds = time.perf_counter() - start
                times[kind].append(round(seconds, 2))
                echo(f"{kind}: run {run + 1}, {result['notes']:,} notes in {seconds:.1f} s")
                if kind == "database":
                    summary = result
                    writer = NoteNlpWriter(output, schema=schema)
                    writer.discard_job(job.job_key)
                    writer.close()
    medians = {kind: statistics.median(values) for kind, values in times.items()}
    return {
        "jsonl_s": times["jsonl"],
        "database_s": times["database"],
        "jsonl_median_s": medians["jsonl"],
        "database_median_s": medians["database"],
        "ratio": round(medians["database"] / medians["jsonl"], 3),
        "notes": summary.get("notes"),
        "note_nlp_rows": summary.get("note_nlp_rows"),
    }
