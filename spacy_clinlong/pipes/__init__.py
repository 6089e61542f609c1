"""Components spaCy lacks: extractive QA over long notes; freeing the
transformer output after the heads."""

from .extensions import install_extensions
from .qa import LongQA, make_clinlong_qa
from .qa_scoring import make_qa_scorer, qa_score
from .release import DropTrfData, make_drop_trf_data

__all__ = [
    "DropTrfData",
    "make_drop_trf_data",
    "install_extensions",
    "LongQA",
    "make_clinlong_qa",
    "make_qa_scorer",
    "qa_score",
]
