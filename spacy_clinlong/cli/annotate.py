"""`annotate`: a pipeline over a corpus of notes, resumable, locally or on Ray."""

import json
import signal
from pathlib import Path
from typing import List, Optional

import typer

from ._app import app, fail


def _read_questions(path: Optional[Path]) -> List[str]:
    if path is None:
        return []
    if not path.is_file():
        raise typer.BadParameter(f"--questions {str(path)!r} is not a file")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        questions = json.loads(text)
        if not isinstance(questions, list) or not all(isinstance(q, str) for q in questions):
            raise typer.BadParameter(f"--questions {str(path)!r} must hold a JSON list of strings")
    else:
        questions = [line.strip() for line in text.splitlines() if line.strip()]
    if not questions:
        raise typer.BadParameter(f"--questions {str(path)!r} holds no questions")
    return questions


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so the job stops as it does on Ctrl-C."""


def _on_sigterm(signum, frame) -> None:
    raise _Terminated()


@app.command("annotate")
def annotate_cli(
    model: str = typer.Argument(..., help="An installed pipeline's name, or a pipeline directory"),
    input_path: str = typer.Argument(
        ...,
        metavar="INPUT",
        help="A directory of .txt notes, a .jsonl, .csv or .parquet file, or a database URL "
        "(sqlite:///notes.db, postgresql://user:pass@host/db) with an OMOP NOTE table",
    ),
    output: str = typer.Argument(
        ...,
        help="A directory (shards), a .jsonl file (one line per note), or a database URL "
        "(sqlite:///omop.db, postgresql://user:pass@host/db) that gets OMOP NOTE_NLP rows",
    ),
    engine: str = typer.Option(
        "local", "--engine", help="local (this process) or ray (a Ray Data actor pool)"
    ),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Notes per nlp.pipe batch"),
    gpu_id: int = typer.Option(
        -1, "--gpu-id", help="GPU id, -1 for CPU; with --engine ray, >= 0 gives each worker a GPU"
    ),
    workers: Optional[int] = typer.Option(
        None,
        "--workers",
        min=1,
        help="Pipelines at work: local processes, or Ray workers (default: 1, or one per GPU on Ray)",
    ),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Torch threads per CPU worker"),
    fmt: str = typer.Option(
        "jsonl", "--format", help="jsonl (the JSON view of each note) or docbin (spaCy shards)"
    ),
    shard_size: int = typer.Option(
        1000, "--shard-size", min=1, help="Records per shard: the unit of resuming"
    ),
    max_chars: int = typer.Option(
        1_000_000, "--max-chars", min=1, help="Longer notes are reported, not annotated"
    ),
    id_field: Optional[str] = typer.Option(
        None, "--id-field", help="JSONL key or column with the note id [default: id; database: note_id]"
    ),
    text_field: Optional[str] = typer.Option(
        None, "--text-field", help="JSONL key or column with the text [default: text; database: note_text]"
    ),
    table: Optional[str] = typer.Option(
        None, "--table", help="Database INPUT: the table or view of notes, schema.table [default: note]"
    ),
    where: Optional[str] = typer.Option(
        None, "--where", help="Database INPUT: an SQL condition the notes must meet"
    ),
    output_schema: Optional[str] = typer.Option(
        None,
        "--output-schema",
        help="Database OUTPUT: the schema of NOTE_NLP and the job's tables (e.g. cdm)",
    ),
    section_concepts: Optional[Path] = typer.Option(
        None,
        "--section-concepts",
        help="Database OUTPUT: a .json, .csv or .tsv map of section names to section_concept_id",
    ),
    concepts: Optional[Path] = typer.Option(
        None,
        "--concepts",
        help="Database OUTPUT: a .json, .csv or .tsv map of terms (lowercase) or labels to note_nlp_concept_id",
    ),
    job_name: Optional[str] = typer.Option(
        None,
        "--job-name",
        help="Database OUTPUT: the job's name in its tables [default: from the input]",
    ),
    questions: Optional[Path] = typer.Option(
        None, "--questions", help="Questions for every note (one per line, or a JSON list), for clinlong_qa"
    ),
    ray_address: Optional[str] = typer.Option(
        None, "--ray-address", help="A Ray cluster to join (default: RAY_ADDRESS or a local instance)"
    ),
    restart: bool = typer.Option(
        False, "--restart", help="Discard an earlier job in OUTPUT and start afresh"
    ),
    note_timeout: float = typer.Option(
        600.0,
        "--note-timeout",
        min=0,
        help="Seconds a note may take; past it the note is reported as timeout (0: no limit). "
        "A batch gets this times its size before its notes are retried one by one",
    ),
    follow_symlinks: bool = typer.Option(
        False, "--follow-symlinks", help="Read .txt symlinks that lead outside the INPUT directory"
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar on stderr"),
) -> None:
    """Annotate every note of INPUT with the pipeline MODEL into OUTPUT.

    Killed at any moment and run again with the same arguments, the job picks
    up where it stopped; every note ends up in OUTPUT exactly once (--restart
    starts afresh instead). Bad records
    (empty, undecodable, missing or duplicate id, too long, timed out) go to
    the errors file (or table) with the reason; note text is never printed. Ctrl-C or
    SIGTERM stops it (exit 130 or 143); the finished shards are kept.
    """
    from ..annotate import annotate
    from ..annotate.job import JobError, JobSpec, describe
    from ..io import InputError, shown_name

    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        spec = JobSpec(
            model=model,
            input=input_path,
            output=output,
            fmt=fmt,
            shard_size=shard_size,
            batch_size=batch_size,
            max_chars=max_chars,
            id_field=id_field,
            text_field=text_field,
            questions=_read_questions(questions),
            follow_symlinks=follow_symlinks,
            table=table,
            where=where,
            output_schema=output_schema,
            section_concepts=None if section_concepts is None else str(section_concepts),
            concepts=None if concepts is None else str(concepts),
            job_name=job_name,
        )
        summary = annotate(
            spec,
            engine=engine,
            gpu_id=gpu_id,
            workers=workers,
            threads=threads,
            progress=progress,
            ray_address=ray_address,
            restart=restart,
            note_timeout=note_timeout or None,
            echo=typer.echo,
        )
    except (JobError, InputError, ValueError, OSError, RuntimeError) as err:
        fail(f"annotate: {err}")
    except (KeyboardInterrupt, _Terminated) as err:
        fail(
            f"annotate: stopped by {'SIGTERM' if isinstance(err, _Terminated) else 'Ctrl-C'}; the finished "
            f"shards are saved in {shown_name(output)!r}, "
            "and the same command resumes the job.",
            code=143 if isinstance(err, _Terminated) else 130,
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
    typer.echo(describe(summary))
