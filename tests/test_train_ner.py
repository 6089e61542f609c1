"""`ner` trained with `spacy train` through a listener on the long-span model learns."""
from pathlib import Path

import spacy
from spacy.cli.train import train
from spacy.tokens import DocBin

from spacy_clinlong.corpus import generate_notes, note_to_doc

CONFIG = Path(__file__).parent.parent / "configs" / "ner_longformer.cfg"


def _docbin(nlp, notes) -> DocBin:
    return DocBin(docs=[note_to_doc(nlp, note) for note in notes])


def test_ner_learns_through_the_listener(tiny_models, tmp_path):
    nlp = spacy.blank("en")
    # The shortest synthetic notes keep the test to about a minute on 2 CPU cores
    # (dev F1 about 0.70 after 240 steps).
    notes = sorted(generate_notes(60, seed=11), key=lambda n: len(n["text"]))[:30]
    _docbin(nlp, notes[:22]).to_disk(tmp_path / "train.spacy")
    _docbin(nlp, notes[22:]).to_disk(tmp_path / "dev.spacy")
    overrides = {
        "paths.train": str(tmp_path / "train.spacy"),
        "paths.dev": str(tmp_path / "dev.spacy"),
        "components.transformer.model.name": str(tiny_models("longformer")),
        "training.max_steps": 240,
        "training.eval_frequency": 80,
        "training.optimizer.learn_rate.initial_rate": 0.002,
        "training.batcher.size.start": 1000,
        "training.batcher.size.stop": 1000,
    }
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
