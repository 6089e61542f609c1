"""The synthetic clinical note generator behind the offline demo, the tests and the proof."""

from .export import note_to_doc, squad_json, write_corpus
from .generator import generate_notes, note_cats

__all__ = ["generate_notes", "note_cats", "note_to_doc", "squad_json", "write_corpus"]
