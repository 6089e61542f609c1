"""Continued masked-LM pretraining on clinical notes, and long models made from short ones."""

from .notes import CorpusError, NoteSource
from .packing import PackedNotes, WholeWordMaskCollator, mask_batch, pack_notes
from .train import PretrainSettings, run_pretraining

__all__ = [
    "CorpusError",
    "NoteSource",
    "PackedNotes",
    "WholeWordMaskCollator",
    "mask_batch",
    "pack_notes",
    "PretrainSettings",
    "run_pretraining",
]
