"""A packaged pipeline installs into a fresh virtual environment, offline, and loads by name
with no project folder around (slow: the environment installs torch and spaCy; run with --slow)."""

import subprocess
import sys
from pathlib import Path

import pytest
import spacy

from spacy_clinlong.integrations.medspacy import add_medspacy

ROOT = Path(__file__).parent.parent


def _run(cmd, **kwargs):
    result = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=1200, **kwargs)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result


@pytest.mark.slow
def test_wheel_installs_and_loads_in_a_fresh_venv(tiny_models, tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "transformer",
        config={
            "model": {
                "@architectures": "spacy-clinlong.LongTransformerModel.v1",
                "name": str(tiny_models("longformer")),
            }
        },
    )
    ruler = nlp.add_pipe("entity_ruler")
    nlp.initialize()
    ruler.add_patterns([{"label": "PROBLEM", "pattern": "chest pain"}])
    add_medspacy(nlp)
    nlp.meta["name"] = "clinlong_venvtest"
    nlp.meta["version"] = "0.0.1"
    nlp.to_disk(tmp_path / "pipeline")
    (tmp_path / "packages").mkdir()
    _run(
        [
            sys.executable,
            "-m",
            "spacy",
            "package",
            tmp_path / "pipeline",
            tmp_path / "packages",
            "--build",
            "wheel",
            "--force",
        ]
    )
    pipeline_wheel = next((tmp_path / "packages").glob("*/dist/*.whl"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", ROOT, "-w", tmp_path / "wheels"])
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv])
    python = venv / "bin" / "python"
    _run(
        [
            python,
            "-m",
            "pip",
            "install",
            "-q",
            "torch==2.13.0",
            "--find-links",
            tmp_path / "wheels",
            pipeline_wheel,
        ]
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = (
        "import spacy; nlp = spacy.load('en_clinlong_venvtest'); "
        "doc = nlp('HISTORY OF PRESENT ILLNESS: Denies chest pain.'); "
        "print([(e.text, e._.is_negated, e._.section_category) for e in doc.ents])"
    )
    result = _run([python, "-c", script], cwd=elsewhere, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert "('chest pain', True, 'history_of_present_illness')" in result.stdout
    assert "DEBUG" not in result.stderr
