"""The offline demo, as the README's first command runs it."""

import json

from typer.testing import CliRunner

from spacy_clinlong.cli import app


def test_demo_runs_offline_and_reports(tmp_path):
    result = CliRunner().invoke(app, ["demo", str(tmp_path / "demo"), "--n-notes", "6", "--train-steps", "0"])
    assert result.exit_code == 0, result.output
    assert "Every token aligned to at least one wordpiece: yes" in result.output
    rows = json.loads((tmp_path / "demo" / "demo_output.json").read_text())
    assert len(rows) == 7
    assert all(r["tokens_aligned"] == r["tokens"] for r in rows)
    fits = [r for r in rows if r["wordpieces"] + 2 <= r["budget"]]
    assert fits and all(r["spans"] == 1 for r in fits)
    joined = rows[-1]
    assert joined["wordpieces"] > joined["budget"] and joined["spans"] > 1
    assert (tmp_path / "demo" / "pipeline" / "transformer" / "model").exists()
    assert (tmp_path / "demo" / "corpus" / "train.spacy").exists()


def test_demo_rejects_unknown_arch(tmp_path):
    result = CliRunner().invoke(app, ["demo", str(tmp_path), "--arch", "gpt2"])
    assert result.exit_code != 0
    assert "--arch" in result.output


def test_demo_leaves_a_trained_pipeline_that_annotates_and_answers(tmp_path):
    """The demo's trained pipeline: ner, clinlong_qa and medspaCy, loadable by path."""
    import spacy

    result = CliRunner().invoke(
        app, ["demo", str(tmp_path / "demo"), "--n-notes", "12", "--train-steps", "6"]
    )
    assert result.exit_code == 0, result.output
    assert "[6/6]" in result.output and "Held-out notes:" in result.output and "Q: " in result.output
    nlp = spacy.load(tmp_path / "demo" / "trained")
    assert {"ner", "clinlong_qa", "medspacy_context", "medspacy_sectionizer"} <= set(nlp.pipe_names)
    doc = nlp.make_doc("ALLERGIES: penicillin.\nHPI: Denies chest pain.")
    doc._.questions = ["What is the patient allergic to?"]
    doc = nlp(doc)
    assert len(doc._.answers) == 1
    assert all(e.has_extension("is_negated") for e in doc.ents)
