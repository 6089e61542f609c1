"""Evaluation beyond a component's own scorer: trivial QA baselines, scores by
distance from the section header (`long_range`, QA by distance), the proof
tables (`proof`), the workflow summary (`summary`) and the speed benchmark
(`bench`)."""

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
