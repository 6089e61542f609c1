"""Shared fixtures and the opt-in --slow / --gpu markers.

The default suite runs offline on CPU: every model it uses is a tiny
random-weight model that the package builds itself (`tiny_models`).
"""

import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict

import pytest

if TYPE_CHECKING:
    import spacy

# Nothing in the default suite may reach the network: a hub id must fail fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", default=False, help="also run tests marked slow")
    parser.addoption(
        "--gpu", action="store_true", default=False, help="also run tests marked gpu (needs CUDA)"
    )


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
    from spacy_clinlong.standins.make_model import build_model

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


@pytest.fixture(scope="session")
def annotate_pipeline(tiny_models, tmp_path_factory) -> Path:
    """A saved pipeline for corpus annotation: tiny Longformer, ner, multilabel textcat
    (random heads, so every note gets entities and scores), sentencizer, medspaCy's
    sectionizer and ConText, and the trf_data release. RETURNS (Path): Its directory."""
    import spacy
    from spacy.training import Example

    from spacy_clinlong.corpus.synth.export import note_to_doc
    from spacy_clinlong.corpus.synth.generator import generate_notes
    from spacy_clinlong.integrations.medspacy import add_medspacy

    spacy.util.fix_random_seed(0)
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
    listener = {
        "@architectures": "spacy-transformers.TransformerListener.v1",
        "grad_factor": 1.0,
        "pooling": {"@layers": "reduce_mean.v1"},
    }
    nlp.add_pipe(
        "ner",
        config={
            "model": {
                "@architectures": "spacy.TransitionBasedParser.v2",
                "state_type": "ner",
                "hidden_width": 32,
                "maxout_pieces": 2,
                "use_upper": False,
                "tok2vec": listener,
            }
        },
    )
    nlp.add_pipe(
        "textcat_multilabel",
        config={
            "model": {
                "@architectures": "spacy-clinlong.WholeNoteTextCat.v1",
                "exclusive_classes": False,
                "doc_encoder": {"@architectures": "spacy-clinlong.DocPoolingListener.v1"},
            }
        },
    )
    examples = [Example(nlp.make_doc(n["text"]), note_to_doc(nlp, n)) for n in generate_notes(4, seed=1)]
    nlp.initialize(lambda: examples)
    nlp.add_pipe("sentencizer")
    add_medspacy(nlp, sentences="own", doc_consumer=False)
    nlp.add_pipe("clinlong_drop_trf_data")
    path = tmp_path_factory.mktemp("annotate") / "pipeline"
    nlp.to_disk(path)
    return path


@pytest.fixture(scope="session")
def short_notes() -> Callable[[int], list]:
    """RETURNS (Callable[[int], list]): n synthetic notes as {"id", "text"}: paragraphs of
    synthetic notes under 500 characters, cycled (ids differ)."""
    from spacy_clinlong.corpus.synth.generator import generate_notes

    paragraphs = [
        p
        for note in generate_notes(30, seed=2)
        for p in note["text"].split("\n\n")
        if p.strip() and len(p) < 500
    ]

    def make(n: int) -> list:
        return [{"id": f"note-{i:05d}", "text": paragraphs[i % len(paragraphs)]} for i in range(n)]

    return make
