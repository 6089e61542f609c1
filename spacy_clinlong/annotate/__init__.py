"""Corpus-scale annotation: a resumable batch job over a folder or a table of notes,
run in this process or on a Ray Data actor pool."""

from ..io import REASONS, InputError, NoteInput
from .engines import ENGINES, annotate
from .job import Job, JobError, JobSpec
from .shard import FORMATS

__all__ = [
    "ENGINES",
    "FORMATS",
    "REASONS",
    "InputError",
    "Job",
    "JobError",
    "JobSpec",
    "NoteInput",
    "annotate",
]
