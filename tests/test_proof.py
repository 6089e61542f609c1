"""The proof report: every pipeline and baseline scored on the same gold notes, targets checked."""

import spacy
import srsly
from spacy.tokens import DocBin
from typer.testing import CliRunner

from spacy_clinlong.cli import app
from spacy_clinlong.corpus import generate_notes, note_to_doc
from spacy_clinlong.evaluation.proof import check_targets, render_markdown

SECRET = "Zyxwarfarinq"


def _gold(tmp_path):
    nlp = spacy.blank("en")
    docs = [note_to_doc(nlp, note) for note in generate_notes(3, seed=4)]
    path = tmp_path / "test.spacy"
    DocBin(docs=docs, store_user_data=True).to_disk(path)
    return path, docs


def _ruler_pipeline(tmp_path, docs):
    """A reader without context that knows every drug name: all are ALLERGEN."""
    nlp = spacy.blank("en")
    names = sorted({e.text for d in docs for e in d.ents if e.label_ in ("ALLERGEN", "TREATMENT")})
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "ALLERGEN", "pattern": n} for n in names])
    path = tmp_path / "ruler"
    nlp.to_disk(path)
    return path


def test_report_scores_pipelines_and_qa_baselines_and_checks_targets(tmp_path):
    data, docs = _gold(tmp_path)
    ruler = _ruler_pipeline(tmp_path, docs)
    out_json, out_md = tmp_path / "proof.json", tmp_path / "proof.md"
    result = CliRunner().invoke(
        app,
        [
            "proof-report",
            str(data),
            str(out_json),
            str(out_md),
            "--long",
            str(ruler),
            "--strided",
            str(ruler),
        ],
    )
    assert result.exit_code == 0, result.output
    report = srsly.read_json(out_json)
    assert report["test_notes"] == 3 and report["machine"]["cpu_count"] >= 1
    # The ruler finds every ALLERGEN, far from its header or not.
    assert report["long"]["ents_per_type"]["ALLERGEN"]["r"] == 1.0
    assert report["long"]["longrange"]["ALLERGEN far"]["r"] == 1.0
    # Same pipeline twice: no gain; textcat and QA pipelines missing: not measured.
    targets = {t["name"]: t for t in report["targets"]}
    assert targets["allergen_far_recall"]["value"] == 0.0 and targets["allergen_far_recall"]["holds"] is False
    assert targets["macro_auc_vs_bow"]["holds"] is None and targets["qa_far_f1"]["holds"] is None
    # Trivial QA answers are scored on the same questions.
    baselines = report["qa_baselines"]
    n_questions = sum(len(d.user_data["clinlong_qa"]) for d in docs)
    assert all(b["n"] == n_questions for b in baselines.values())
    impossible = sum(qa.get("is_impossible", False) for d in docs for qa in d.user_data["clinlong_qa"])
    no_answer = next(b for name, b in baselines.items() if "no" in name)
    assert abs(no_answer["qa_exact"] - impossible / n_questions) < 1e-9
    markdown = out_md.read_text()
    assert "| ALLERGEN far |" in markdown and "## Targets" in markdown and "not measured" in markdown


def test_report_refuses_a_path_that_is_no_pipeline(tmp_path):
    data, _ = _gold(tmp_path)
    result = CliRunner().invoke(
        app,
        [
            "proof-report",
            str(data),
            str(tmp_path / "a.json"),
            str(tmp_path / "a.md"),
            "--long",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 1 and "no config.cfg" in result.output
    assert not (tmp_path / "a.json").exists()


def test_targets_read_the_report():
    report = {
        "long": {
            "longrange": {"ALLERGEN far": {"r": 0.9, "n": 10}},
            "ents_per_type": {"ALLERGEN": {"f": 0.8}},
            "cats_auc_per_type": {"ALLERGY_CONFLICT": 0.85},
            "cats_macro_auc": 0.9,
        },
        "strided": {
            "longrange": {"ALLERGEN far": {"r": 0.5, "n": 10}},
            "ents_per_type": {"ALLERGEN": {"f": 0.75}},
        },
        "bow": {"cats_macro_auc": 0.8},
    }
    holds = {t["name"]: t["holds"] for t in check_targets(report)}
    assert holds == {
        "allergen_far_recall": True,
        "allergen_f1": False,
        "allergy_conflict_auc": True,
        "macro_auc_vs_bow": True,
        "qa_far_f1": None,
    }
    assert "| ALLERGEN far | 10 | 0.900 | 0.500 |" in render_markdown(report)
