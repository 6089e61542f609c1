"""Every config in configs/ is complete, current, and builds a pipeline."""
from pathlib import Path

import pytest
from spacy.util import load_config, load_model_from_config

from spacy_clinlong.configs import MODELS, TASKS, render

CONFIG_DIR = Path(__file__).parent.parent / "configs"
GENERATED = [(task, model) for task in TASKS for model in MODELS]


@pytest.mark.parametrize("task,model", GENERATED)
def test_config_files_match_the_generator(task, model):
    path = CONFIG_DIR / f"{task}_{model}.cfg"
    assert path.exists(), "run: python -m spacy_clinlong configs configs"
    assert path.read_text() == render(task, model)


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.cfg")), ids=lambda p: p.name)
def test_config_builds_a_pipeline(path):
    config = load_config(path)
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    model_cfg = config["components"][nlp.pipe_names[0]]["model"]
    task, model = path.stem.split("_", 1) if not path.stem.startswith("textcat") else (
        "textcat_multilabel",
        path.stem[len("textcat_multilabel_") :],
    )
    assert model in MODELS, path.name
    spec = MODELS[model]
    if "name" in model_cfg:
        assert model_cfg["name"] == spec.hub_id
    if task == "qa":
        # The QA baseline reads BERT's 384-wordpiece pairs (run_qa); the long
        # models read up to their own budget.
        assert model_cfg["@architectures"] == "spacy-clinlong.LongQAModel.v1"
        assert model_cfg["max_length"] == (384 if spec.strided else None)
        assert config["training"]["score_weights"]["qa_f1"] == 1.0
    elif spec.strided:
        assert model_cfg["@architectures"] == "spacy-transformers.TransformerModel.v3"
        assert (model_cfg["get_spans"]["window"], model_cfg["get_spans"]["stride"]) == (128, 96)
    else:
        assert model_cfg["@architectures"] == "spacy-clinlong.LongTransformerModel.v1"


def test_every_task_and_model_has_a_config():
    names = {p.name for p in CONFIG_DIR.glob("*.cfg")}
    assert names == {f"{task}_{model}.cfg" for task in TASKS for model in MODELS}
