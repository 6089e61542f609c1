"""Trainable components spaCy lacks: extractive QA over long notes."""
from .extensions import install_extensions
from .qa import LongQA, make_clinlong_qa
from .qa_model import LongQAModel, QAQuery, create_long_qa_model_v1
from .qa_scoring import make_qa_scorer, qa_score

__all__ = [
    "install_extensions",
    "LongQA",
    "make_clinlong_qa",
    "LongQAModel",
    "QAQuery",
    "create_long_qa_model_v1",
    "make_qa_scorer",
    "qa_score",
]
