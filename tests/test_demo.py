"""The offline demo, as the README's first command runs it."""
import json

from typer.testing import CliRunner

from spacy_clinlong.cli import app


def test_demo_runs_offline_and_reports(tmp_path):
    result = CliRunner().invoke(app, ["demo", str(tmp_path / "demo"), "--n-notes", "6"])
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
