"""Commands and pipelines that run no model start without importing transformers.

Each check runs in a fresh interpreter and reads `sys.modules` after the
command. Importing spaCy imports torch (thinc looks for it), so torch is
checked only where spaCy is not needed at all; spacy-transformers' own
`transformer` factory entry point imports transformers in every `Language()`,
so for pipelines the check is that none of *our* entry points does.
"""

import json
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from spacy_clinlong.cli import app

HEAVY = ("torch", "transformers", "spacy_transformers", "medspacy", "spacy_clinlong.models")
# The entry point groups spaCy loads whole: every `Language()` (factories), every
# `spacy` command (cli), and `get_all()` of the training registries.
EAGER_GROUPS = ("spacy_factories", "spacy_cli", "spacy_readers", "spacy_scorers", "spacy_callbacks")
REPORT = f"""
import json, sys
print("\\nIMPORTED=" + json.dumps([m for m in {HEAVY!r} if m in sys.modules]))
"""


def _imported(code: str, cwd=None) -> set:
    """Run code in a fresh interpreter; the heavy modules it imported."""
    result = subprocess.run(
        [sys.executable, "-c", code + REPORT], capture_output=True, text=True, cwd=cwd, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    line = [ln for ln in result.stdout.splitlines() if ln.startswith("IMPORTED=")][-1]
    return set(json.loads(line.split("=", 1)[1]))


def _run_module(module: str, *args: str) -> str:
    """Code that runs `python -m module args...` in-process, then reports."""
    return (
        "import runpy, sys\n"
        f"sys.argv = [{module!r}, *{list(args)!r}]\n"
        "try:\n"
        f"    runpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n"
        "except SystemExit as err:\n"
        "    assert not err.code, err.code\n"
    )


def test_import_package_imports_no_spacy_or_torch():
    assert not _imported("import spacy_clinlong") & {"torch", "transformers"}


@pytest.mark.parametrize(
    "command", [None] + sorted(c.name for c in app.registered_commands), ids=lambda c: c or "app"
)
def test_help_imports_nothing_heavy(command):
    args = ["--help"] if command is None else [command, "--help"]
    assert not _imported(_run_module("spacy_clinlong", *args)) & set(HEAVY)


def test_spacy_clinlong_group_help_imports_no_transformers():
    # `spacy clinlong --help`: spaCy itself imports torch.
    assert not _imported(_run_module("spacy", "clinlong", "--help")) & {
        "transformers",
        "spacy_clinlong.models",
    }


def test_convert_brat_imports_no_model(tmp_path):
    (tmp_path / "a.txt").write_text("Patient denies chest pain.\n", encoding="utf-8")
    (tmp_path / "a.ann").write_text("T1\tSign_symptom 15 25\tchest pain\n", encoding="utf-8")
    out = tmp_path / "out.spacy"
    code = _run_module("spacy_clinlong", "convert", str(tmp_path), str(out), "-f", "brat")
    code += (
        "from spacy.tokens import DocBin\n"
        "from spacy.vocab import Vocab\n"
        f"[doc] = DocBin().from_disk({str(out)!r}).get_docs(Vocab())\n"
        "assert [(e.text, e.label_) for e in doc.ents] == [('chest pain', 'Sign_symptom')]\n"
    )
    assert not _imported(code) & {"transformers", "spacy_transformers", "medspacy", "spacy_clinlong.models"}


def test_synth_imports_no_model(tmp_path):
    code = _run_module("spacy_clinlong", "synth", str(tmp_path / "synth"), "-n", "3")
    assert not _imported(code) & {"transformers", "spacy_transformers", "medspacy", "spacy_clinlong.models"}
    assert (tmp_path / "synth" / "train.spacy").exists()


def test_configs_imports_no_model(tmp_path):
    code = _run_module("spacy_clinlong", "configs", str(tmp_path))
    assert not _imported(code) & {"transformers", "spacy_transformers", "medspacy", "spacy_clinlong.models"}
    assert (tmp_path / "baseline_ner_cpu.cfg").exists()


def test_summarize_imports_no_spacy_or_torch(tmp_path):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    per_type = {"PROBLEM": {"p": 0.5, "r": 0.5, "f": 0.5}}
    (metrics / "ner_long.json").write_text(
        json.dumps({"ents_f": 0.5, "ents_p": 0.5, "ents_r": 0.5, "ents_per_type": per_type})
    )
    code = _run_module("spacy_clinlong", "summarize", str(metrics), str(tmp_path / "summary.md"))
    assert not _imported(code) & {"torch", "transformers"}
    assert "PROBLEM" in (tmp_path / "summary.md").read_text()


def test_entry_points_and_blank_pipeline_import_no_model():
    groups = {
        group: [ep.name for ep in entry_points(group=group) if ep.dist and ep.dist.name == "spacy-clinlong"]
        for group in EAGER_GROUPS
    }
    assert all(groups.values())
    # Our eagerly loaded entry points, in turn (the first that imports a model is named),
    # then a blank pipeline: it also loads spacy-transformers' `transformer` factory,
    # which imports transformers, but must not import our models.
    code = (
        "import sys\n"
        "from importlib.metadata import entry_points\n"
        f"for group, names in {groups!r}.items():\n"
        "    for ep in entry_points(group=group):\n"
        "        if ep.name in names:\n"
        "            ep.load()\n"
        "            heavy = [m for m in ('transformers', 'spacy_transformers', 'spacy_clinlong.models')"
        " if m in sys.modules]\n"
        "            assert not heavy, (group, ep.name, heavy)\n"
        "import spacy\n"
        "nlp = spacy.blank('en')\n"
        "factories = spacy.registry.factories.get_all()\n"
        "assert {'clinlong_qa', 'clinlong_drop_trf_data', 'medspacy_context'} <= set(factories)\n"
    )
    assert "spacy_clinlong.models" not in _imported(code)
