"""project.yml runs with `spacy project run`, offline, from a copy of the project."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import srsly
from spacy.tokens import DocBin

ROOT = Path(__file__).parent.parent


def _run(project_dir, *args):
    cmd = [sys.executable, "-m", "spacy", "project", "run", *args, str(project_dir)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def test_project_yml_declares_help_and_outputs():
    project = srsly.read_yaml(ROOT / "project.yml")
    assert project["vars"]["gpu_id"] == -1
    for command in project["commands"]:
        assert command.get("help") and (command.get("outputs") or command.get("outputs_no_cache")), command[
            "name"
        ]
        for dep in command.get("deps", []):
            for key, value in project["vars"].items():
                dep = dep.replace("${vars.%s}" % key, str(value))
            if dep.startswith("configs/"):
                assert (ROOT / dep).exists(), dep
    names = {c["name"] for c in project["commands"]}
    assert set(project["workflows"]["all"]) <= names and set(project["workflows"]["proof"]) <= names
    # The proof is not part of the default run: it installs real weights and takes an hour on CPU.
    assert not set(project["workflows"]["proof"]) & set(project["workflows"]["all"])
    assert all("url" not in asset for asset in project["assets"]), "licensed corpora have no URL"


def test_model_and_corpus_steps_run(tmp_path):
    project_dir = tmp_path / "project"
    project_dir.mkdir()
    shutil.copy(ROOT / "project.yml", project_dir)
    shutil.copytree(ROOT / "configs", project_dir / "configs")
    result = _run(project_dir, "make-model")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (project_dir / "models" / "longformer-tiny" / "config.json").exists()
    result = subprocess.run(
        [sys.executable, "-m", "spacy", "project", "run", "synth", str(project_dir), "--vars.n_notes", "10"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    docs = DocBin().from_disk(project_dir / "corpus" / "synth" / "train.spacy")
    assert len(docs) == 8


@pytest.mark.slow
def test_offline_workflow_end_to_end(tmp_path):
    """`spacy project run all` offline: model, corpus, heads, evaluation, summary.

    Small settings keep it to a few minutes; the full-size run is what the
    README reports.
    """
    project_dir = tmp_path / "project"
    project_dir.mkdir()
    shutil.copy(ROOT / "project.yml", project_dir)
    shutil.copytree(ROOT / "configs", project_dir / "configs")
    overrides = {
        "n_notes": 40,
        "ner_steps": 30,
        "textcat_steps": 30,
        "qa_steps": 10,
        "eval_frequency": 15,
        "batch_words": 1500,
        "pretrain_steps": 30,
        "pretrain_length": 256,
        "bow_steps": 30,
    }
    args = [f"--vars.{k}={v}" for k, v in overrides.items()]
    result = subprocess.run(
        [sys.executable, "-m", "spacy", "project", "run", "all", str(project_dir), *args],
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    metrics = project_dir / "metrics"
    for name in (
        "ner_long",
        "ner_strided",
        "textcat_multilabel_long",
        "textcat_multilabel_strided",
        "textcat_multilabel_bow",
        "qa_long",
    ):
        scores = srsly.read_json(metrics / f"{name}.json")
        assert scores, name
    assert 0.0 <= srsly.read_json(metrics / "qa_long.json")["qa_f1"] <= 1.0
    summary = (metrics / "summary.md").read_text()
    assert "| ner | long | ents_f |" in summary and "| ner | strided | ents_f |" in summary
    assert "| textcat_multilabel | long | cats_macro_auc |" in summary
    assert "| textcat_multilabel | strided | cats_macro_auc |" in summary
    # spaCy's bag of words, the baseline a textcat is read against, on the same notes
    assert "| textcat_multilabel | bow | cats_macro_auc |" in summary
    assert "| qa | long | qa_f1 |" in summary
    # long and strided side by side per label, for every entity and note label
    assert "| ALLERGEN |" in summary and "| ALLERGY_CONFLICT |" in summary
    assert "## longrange: longrange_per_bucket (r)" in summary and "| all near |" in summary
    # The heads train from the continued-pretrained model, whose held-out loss fell.
    pretrain = srsly.read_json(metrics / "pretrain_mlm.json")
    assert pretrain["steps"] == 30 and pretrain["heldout_loss_after"] < pretrain["heldout_loss_before"]
    assert "| pretrain | mlm | heldout_loss_after |" in summary
    assert (project_dir / "models" / "pretrained" / "model.safetensors").exists()
    ner_cfg = (project_dir / "training" / "ner" / "model-best" / "config.cfg").read_text()
    assert 'name = "models/pretrained"' in ner_cfg
    # The installed packages score as model-best did, and load by name away from the project.
    for task, key in (("ner", "ents_f"), ("textcat_multilabel", "cats_macro_auc"), ("qa", "qa_f1")):
        long, package = (srsly.read_json(metrics / f"{task}_{s}.json") for s in ("long", "package"))
        assert package[key] == long[key], task
    assert "| ner | package | ents_f |" in summary
    # The installed package annotated every held-out note by name, with ConText flags.
    test_ids = [note["id"] for note in srsly.read_jsonl(project_dir / "corpus" / "synth" / "test.jsonl")]
    views = list(srsly.read_jsonl(project_dir / "annotations" / "test.jsonl"))
    assert [view["id"] for view in views] == test_ids
    assert all("negated" in ent for view in views for ent in view["entities"])
    assert (project_dir / "annotations" / "test.errors.jsonl").read_text() == ""
    wheel = project_dir / "packages" / "en_clinlong_ner_medspacy-0.1.0" / "dist"
    with zipfile.ZipFile(next(wheel.glob("*.whl"))) as archive:
        metadata = archive.read("en_clinlong_ner_medspacy-0.1.0.dist-info/METADATA").decode()
    assert "Requires-Dist: spacy-clinlong" in metadata and "Requires-Dist: medspacy" in metadata
    script = (
        "import spacy; ner = spacy.load('en_clinlong_ner'); med = spacy.load('en_clinlong_ner_medspacy'); "
        "doc = med('HPI: Denies chest pain. Reports cough.'); "
        "print(ner.pipe_names, med.pipe_names, all(e.has_extension('is_negated') for e in doc.ents))"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=elsewhere, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "'medspacy_context'" in result.stdout and result.stdout.strip().endswith("True")
