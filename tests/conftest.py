"""Shared fixtures and the opt-in --slow / --gpu markers.

The default suite runs offline on CPU: every model it uses is a tiny
random-weight model that the package builds itself (`tiny_models`).
"""
import os
from pathlib import Path
from typing import Callable, Dict

import pytest

# Nothing in the default suite may reach the network: a hub id must fail fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", default=False, help="also run tests marked slow")
    parser.addoption("--gpu", action="store_true", default=False, help="also run tests marked gpu (needs CUDA)")


def pytest_collection_modifyitems(config, items):
    for marker in ("slow", "gpu"):
        if config.getoption(f"--{marker}"):
            continue
        skip = pytest.mark.skip(reason=f"needs --{marker}")
        for item in items:
            if marker in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Callable[[str], Path]:
    """Build each tiny model (seed 0, synthetic-note tokenizer) once per session.

    RETURNS (Callable[[str], Path]): Maps an arch ("longformer", "bigbird",
        "modernbert", "bert") to its model directory. Treat it as read-only;
        copy it to change it.
    """
    from spacy_clinlong.models.make_model import build_model

    built: Dict[str, Path] = {}

    def get(arch: str) -> Path:
        if arch not in built:
            output_dir = tmp_path_factory.mktemp(f"tiny-{arch}")
            built[arch] = build_model(arch=arch, size="tiny", output_dir=output_dir, seed=0)
        return built[arch]

    return get


@pytest.fixture(scope="session")
def trf_nlp() -> Callable[..., "spacy.Language"]:
    """Make a blank English pipeline with the long-span transformer, initialized.

    RETURNS (Callable[..., Language]): Called with a model directory (or hub
        id) and LongTransformerModel settings as keyword arguments.
    """
    import spacy

    def make(model_dir, **model_cfg):
        nlp = spacy.blank("en")
        config = {
            "model": {
                "@architectures": "spacy-clinlong.LongTransformerModel.v1",
                "name": str(model_dir),
                **model_cfg,
            }
        }
        nlp.add_pipe("transformer", config=config)
        nlp.initialize()
        return nlp

    return make
