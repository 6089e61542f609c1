"""`ner` trained with `spacy train` through a listener on the long-span model learns."""

from pathlib import Path

import pytest
import spacy
from spacy.cli.train import train
from spacy.tokens import DocBin

from spacy_clinlong.corpus import generate_notes, note_to_doc

CONFIG = Path(__file__).parent.parent / "configs" / "ner_longformer.cfg"


def _docbin(nlp, notes) -> DocBin:
    return DocBin(docs=[note_to_doc(nlp, note) for note in notes])


def _overrides(tmp_path, model, notes, n_train: int, settings: dict) -> dict:
    """Write train/dev .spacy from the notes; RETURNS the overrides that name them and the model."""
    nlp = spacy.blank("en")
    _docbin(nlp, notes[:n_train]).to_disk(tmp_path / "train.spacy")
    _docbin(nlp, notes[n_train:]).to_disk(tmp_path / "dev.spacy")
    return {
        "paths.train": str(tmp_path / "train.spacy"),
        "paths.dev": str(tmp_path / "dev.spacy"),
        "components.transformer.model.name": str(model),
        "training.optimizer.learn_rate.initial_rate": 0.002,
        **settings,
    }


def test_ner_learns_through_the_listener(tiny_models, tmp_path):
    # The shortest synthetic notes keep the test to about a minute on 2 CPU cores
    # (dev F1 about 0.70 after 240 steps).
    notes = sorted(generate_notes(60, seed=11), key=lambda n: len(n["text"]))[:30]
    overrides = _overrides(
        tmp_path,
        tiny_models("longformer"),
        notes,
        22,
        {
            "training.max_steps": 240,
            "training.eval_frequency": 80,
            "training.batcher.size.start": 1000,
            "training.batcher.size.stop": 1000,
        },
    )
    train(CONFIG, tmp_path / "out", overrides=overrides)
    trained = spacy.load(tmp_path / "out" / "model-last")
    dev = list(DocBin().from_disk(tmp_path / "dev.spacy").get_docs(trained.vocab))
    from spacy.training import Example

    examples = [Example(trained.make_doc(d.text), d) for d in dev]
    scores = trained.evaluate(examples)
    # An untrained model scores about 0.005 here (it guesses at random).
    assert scores["ents_f"] > 0.5, scores
    found = {ent.label_ for doc in trained.pipe(d.text for d in dev) for ent in doc.ents}
    assert {"PROBLEM", "TREATMENT"} <= found


def test_heads_train_on_a_frozen_transformer(tiny_models, tmp_path):
    """The three overrides each config names: the transformer keeps its checkpoint's weights
    (its listeners read doc._.trf_data), ner learns, and the pipeline loads and predicts."""
    import numpy

    notes = sorted(generate_notes(20, seed=3), key=lambda n: len(n["text"]))[:8]
    overrides = _overrides(
        tmp_path,
        tiny_models("longformer"),
        notes,
        6,
        {
            "training.max_steps": 6,
            "training.eval_frequency": 3,
            "training.frozen_components": ["transformer"],
            "training.annotating_components": ["transformer"],
            "initialize.before_init.names": ["transformer"],
        },
    )
    from spacy.training.initialize import init_nlp
    from spacy.util import load_config

    # The same config and seed before any update: what training started from.
    start = init_nlp(load_config(CONFIG, overrides=overrides, interpolate=False))
    train(CONFIG, tmp_path / "out", overrides=overrides)
    trained = spacy.load(tmp_path / "out" / "model-last")
    before = start.get_pipe("transformer").model.transformer.state_dict()
    after = trained.get_pipe("transformer").model.transformer.state_dict()
    assert before.keys() == after.keys()
    assert all(numpy.array_equal(before[k].numpy(), after[k].numpy()) for k in before)
    ner_before = start.get_pipe("ner").model.to_bytes()
    assert trained.get_pipe("ner").model.to_bytes() != ner_before
    assert trained(notes[7]["text"]).has_annotation("ENT_IOB")


def test_a_frozen_name_must_be_a_transformer(tiny_models):
    from spacy_clinlong.training.frozen import initialize_frozen_transformers_v1

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    with pytest.raises(ValueError, match="no component named 'transformer'"):
        initialize_frozen_transformers_v1(["transformer"])(nlp)
    with pytest.raises(ValueError, match="is a Sentencizer, not a transformer"):
        initialize_frozen_transformers_v1(["sentencizer"])(nlp)
