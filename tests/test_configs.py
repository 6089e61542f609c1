"""Every config in configs/ is complete, current, and builds a pipeline."""

from pathlib import Path

import pytest
from spacy.util import load_config, load_model_from_config

from spacy_clinlong.configs import BASELINES, MODELS, TASKS, render, render_baseline

CONFIG_DIR = Path(__file__).parent.parent / "configs"
GENERATED = [(task, model) for task in TASKS for model in MODELS]


@pytest.mark.parametrize("task,model", GENERATED)
def test_config_files_match_the_generator(task, model):
    path = CONFIG_DIR / f"{task}_{model}.cfg"
    assert path.exists(), "run: python -m spacy_clinlong configs configs"
    assert path.read_text() == render(task, model)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baseline_configs_are_spacys_own(name):
    path = CONFIG_DIR / f"{name}.cfg"
    assert path.read_text() == render_baseline(name)
    nlp = load_model_from_config(load_config(path), auto_fill=True, validate=True)
    assert nlp.pipe_names[-1] == BASELINES[name]
    assert "spacy-transformers" not in path.read_text() and "clinlong" not in nlp.config.to_str()


@pytest.mark.parametrize(
    "path",
    sorted(p for p in CONFIG_DIR.glob("*.cfg") if not p.stem.startswith("baseline")),
    ids=lambda p: p.name,
)
def test_config_builds_a_pipeline(path):
    config = load_config(path)
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    model_cfg = config["components"][nlp.pipe_names[0]]["model"]
    task = next(t for t in sorted(TASKS, key=len, reverse=True) if path.stem.startswith(t + "_"))
    model = path.stem[len(task) + 1 :]
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
    if task == "ner_textcat":
        assert nlp.pipe_names == ["transformer", "ner", "textcat_multilabel", "clinlong_drop_trf_data"]


def test_every_task_and_model_has_a_config():
    names = {p.name for p in CONFIG_DIR.glob("*.cfg")}
    expected = {f"{task}_{model}.cfg" for task in TASKS for model in MODELS}
    assert names == expected | {f"{name}.cfg" for name in BASELINES}


@pytest.mark.parametrize(
    "path",
    sorted(p for p in CONFIG_DIR.glob("*.cfg") if not p.stem.startswith("baseline")),
    ids=lambda p: p.name,
)
def test_one_max_steps_override_gives_a_whole_warmup_and_decay(path):
    """`--training.max_steps 200` alone: the rate rises, peaks, and reaches 0 at step 200."""
    from itertools import islice

    from spacy.util import registry

    config = load_config(path, overrides={"training.max_steps": 200}, interpolate=True)
    learn_rate = config["training"]["optimizer"]["learn_rate"]
    peak = learn_rate["initial_rate"]
    rates = list(islice(registry.resolve({"lr": learn_rate})["lr"], 201))
    assert 0 < rates[0] < rates[10] < rates[19] <= peak
    assert max(rates) == pytest.approx(peak)
    assert rates.index(max(rates)) == 20  # 10% warm-up
    assert rates[100] == pytest.approx(peak * 100 / 180, rel=1e-6)
    assert rates[200] == 0.0 and rates[199] > 0


def test_schedule_without_max_steps_keeps_the_peak_rate():
    from itertools import islice

    from spacy_clinlong.training.schedules import warmup_linear_v1

    assert list(islice(warmup_linear_v1(0.1, 0, 0.1), 3)) == [0.1, 0.1, 0.1]
    with pytest.raises(ValueError, match="warmup_fraction"):
        next(warmup_linear_v1(0.1, 100, 1.5))
