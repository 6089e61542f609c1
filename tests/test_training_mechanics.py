"""Gradients reach the encoder through listeners; checkpointing is honoured."""

import logging

import numpy
import pytest
import spacy
from spacy.training import Example
from thinc.api import SGD

from spacy_clinlong.corpus import generate_notes, note_to_doc


def _nlp(model_dir, *, grad_factor=1.0, **model_cfg):
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "transformer",
        config={
            "model": {
                "@architectures": "spacy-clinlong.LongTransformerModel.v1",
                "name": str(model_dir),
                **model_cfg,
            }
        },
    )
    nlp.add_pipe(
        "ner",
        config={
            "model": {
                "@architectures": "spacy.TransitionBasedParser.v2",
                "state_type": "ner",
                "hidden_width": 32,
                "maxout_pieces": 2,
                "use_upper": False,
                "tok2vec": {
                    "@architectures": "spacy-transformers.TransformerListener.v1",
                    "grad_factor": grad_factor,
                    "pooling": {"@layers": "reduce_mean.v1"},
                },
            }
        },
    )
    return nlp


def _examples(nlp, notes):
    return [Example(nlp.make_doc(note["text"]), note_to_doc(nlp, note)) for note in notes]


def _encoder_weights(nlp):
    trf = nlp.get_pipe("transformer").model.transformer
    return {k: v.detach().clone().numpy() for k, v in trf.named_parameters()}


@pytest.mark.parametrize("grad_factor,checkpointing", [(1.0, False), (1.0, True), (0.0, False)])
def test_listener_gradients_reach_the_encoder(tiny_models, grad_factor, checkpointing):
    nlp = _nlp(
        tiny_models("longformer"),
        grad_factor=grad_factor,
        gradient_checkpointing=checkpointing,
        max_length=512,
    )
    notes = sorted(generate_notes(8, seed=5), key=lambda n: len(n["text"]))[:2]
    examples = _examples(nlp, notes)
    nlp.initialize(lambda: examples)
    # No weight decay: with it, even zero gradients move the weights.
    optimizer = SGD(0.05, L2=0.0, grad_clip=0.0)
    before = _encoder_weights(nlp)
    losses = {}
    for _ in range(2):
        nlp.update(examples, sgd=optimizer, losses=losses)
    after = _encoder_weights(nlp)
    changed = [k for k in before if not numpy.array_equal(before[k], after[k])]
    trf = nlp.get_pipe("transformer").model.transformer
    assert trf.is_gradient_checkpointing == checkpointing
    if grad_factor:
        assert losses["transformer"] > 0
        # Embeddings, attention and feed-forward layers of every block move.
        assert any("embeddings" in k for k in changed)
        assert all(any(f"layer.{i}." in k for k in changed) for i in range(2))
    else:
        assert changed == []
    assert losses["ner"] > 0


def test_long_note_logs_no_truncation_warning(tiny_models, trf_nlp, caplog):
    nlp = trf_nlp(tiny_models("bert"))
    text = "\n\n".join(n["text"] for n in generate_notes(3, seed=1))
    with caplog.at_level(logging.INFO):
        doc = nlp(text)
    assert doc._.trf_data.model_output.last_hidden_state.shape[0] > 1
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert not noisy, [r.getMessage()[:80] for r in noisy]


def test_replace_listeners_gives_a_loadable_own_copy(tiny_models, tmp_path):
    nlp = _nlp(tiny_models("longformer"), max_length=512)
    notes = sorted(generate_notes(8, seed=5), key=lambda n: len(n["text"]))[:2]
    examples = _examples(nlp, notes)
    optimizer = nlp.initialize(lambda: examples)
    nlp.update(examples, sgd=optimizer)
    nlp.replace_listeners("transformer", "ner", ["model.tok2vec"])
    tok2vec_cfg = nlp.config["components"]["ner"]["model"]["tok2vec"]
    assert tok2vec_cfg["@architectures"] == "spacy-clinlong.Tok2VecLongTransformer.v1"
    losses = {}
    nlp.update(examples, sgd=optimizer, losses=losses)
    assert losses["ner"] > 0
    nlp.remove_pipe("transformer")
    texts = [n["text"] for n in notes]
    before = [[(e.start, e.end, e.label_) for e in d.ents] for d in nlp.pipe(texts)]
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    assert loaded.pipe_names == ["ner"]
    after = [[(e.start, e.end, e.label_) for e in d.ents] for d in loaded.pipe(texts)]
    assert after == before
