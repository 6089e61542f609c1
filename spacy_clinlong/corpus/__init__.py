"""Corpora: deterministic synthetic clinical notes, their writers, and converters/readers
for BRAT, i2b2 2010, SQuAD/emrQA, JSONL and CSV."""

from .readers import FORMATS, ConvertedCorpus, convert_corpus, iter_docs
from .report import ConversionReport
from .synth.export import note_to_doc, squad_json, write_corpus
from .synth.generator import generate_notes, note_cats
from .synth.templates import FINAL_MED_SECTIONS
from .synth.vocab import CAT_LABELS, CONDITION_LABELS, CONDITION_TERMS, ENTITY_LABELS

__all__ = [
    "generate_notes",
    "write_corpus",
    "note_cats",
    "note_to_doc",
    "squad_json",
    "CAT_LABELS",
    "CONDITION_LABELS",
    "CONDITION_TERMS",
    "ENTITY_LABELS",
    "FINAL_MED_SECTIONS",
    "FORMATS",
    "ConversionReport",
    "ConvertedCorpus",
    "convert_corpus",
    "iter_docs",
]
