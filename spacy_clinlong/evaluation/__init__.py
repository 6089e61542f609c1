"""Evaluation beyond a component's own scorer: trivial QA baselines, scores by
distance from the section header (`long_range`, QA by distance), the proof
tables (`proof`), the workflow summary (`summary`) and the speed benchmark
(`bench`)."""

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


def __getattr__(name):
    # Re-exported lazily: `qa_baselines` imports spaCy (and so torch), which
    # `summarize` (`evaluation.summary`, JSON in, markdown out) does not need.
    if name in __all__:
        from . import qa_baselines

        return getattr(qa_baselines, name)
    raise AttributeError(f"module 'spacy_clinlong.evaluation' has no attribute {name!r}")
