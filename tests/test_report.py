"""The metrics summary: overall table and long vs strided per label."""

import pytest
import srsly
from typer.testing import CliRunner

from spacy_clinlong.cli import app
from spacy_clinlong.evaluation.summary import compare_labels, summarize


@pytest.fixture
def metrics_dir(tmp_path):
    srsly.write_json(
        tmp_path / "ner_long.json",
        {
            "ents_f": 0.8,
            "ents_p": 0.8,
            "ents_r": 0.8,
            "ents_per_type": {
                "ALLERGEN": {"p": 0.7, "r": 0.7, "f": 0.7},
                "TEST": {"p": 0.9, "r": 0.9, "f": 0.9},
            },
        },
    )
    srsly.write_json(
        tmp_path / "ner_strided.json",
        {
            "ents_f": 0.7,
            "ents_p": 0.7,
            "ents_r": 0.7,
            "ents_per_type": {
                "ALLERGEN": {"p": 0.2, "r": 0.2, "f": 0.25},
                "TEST": {"p": 0.9, "r": 0.9, "f": 0.9},
            },
        },
    )
    srsly.write_json(
        tmp_path / "textcat_multilabel_long.json",
        {
            "cats_macro_auc": 0.75,
            "cats_macro_f": 0.5,
            "cats_micro_f": 0.6,
            "cats_f_per_type": {"CKD": {"p": 1, "r": 0.5, "f": 0.667}},
        },
    )
    return tmp_path


def test_summary_tables(metrics_dir):
    text = summarize(metrics_dir)
    assert "| ner | long | ents_f | 0.800 |" in text
    assert "| ner | strided | ents_f | 0.700 |" in text
    assert "| textcat_multilabel | long | cats_macro_auc | 0.750 |" in text
    assert "| ALLERGEN | 0.700 | 0.250 | +0.450 |" in text
    assert "| CKD | 0.667 |" in text
    assert compare_labels(metrics_dir, "ner", "long", "strided")["ALLERGEN"] == pytest.approx(0.45)


def test_summarize_cli(metrics_dir, tmp_path):
    out = tmp_path / "out" / "summary.md"
    result = CliRunner().invoke(app, ["summarize", str(metrics_dir), str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text() == summarize(metrics_dir)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(app, ["summarize", str(empty), str(out)])
    assert result.exit_code == 1
