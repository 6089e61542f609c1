"""Evaluation beyond a component's own scorer: trivial QA baselines and QA
scores by the answer's distance from its section header."""

from .qa_baselines import (
    BASELINES,
    baseline_scores,
    header_distance,
    no_answer,
    note_sentences,
    pipeline_answers,
    question_scores,
    scores_by_distance,
    sentence_overlap,
    summarize,
)

__all__ = [
    "BASELINES",
    "baseline_scores",
    "header_distance",
    "no_answer",
    "note_sentences",
    "pipeline_answers",
    "question_scores",
    "scores_by_distance",
    "sentence_overlap",
    "summarize",
]
