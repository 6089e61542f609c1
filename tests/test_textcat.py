"""Whole-note pooling for doc-level heads, and textcat_multilabel on top of it."""

import numpy
import pytest
import spacy
from spacy.training import Example
from thinc.api import Adam

from spacy_clinlong.corpus import CAT_LABELS, generate_notes, note_to_doc
from spacy_clinlong.models.doc_pooling import doc_pooling


@pytest.fixture(scope="module")
def windowed_doc(tiny_models, trf_nlp):
    nlp = trf_nlp(tiny_models("longformer"), max_length=512)
    doc = nlp(generate_notes(1, seed=8)[0]["text"])
    assert doc._.trf_data.model_output.last_hidden_state.shape[0] > 1
    return doc


def test_cls_pooling_averages_the_first_token_of_each_window(windowed_doc):
    data = windowed_doc._.trf_data
    hidden = data.model_output.last_hidden_state
    out, backprop = doc_pooling("cls", 1.0)([data], is_train=True)
    assert numpy.allclose(out[0], hidden[:, 0].mean(axis=0), atol=1e-6)
    (grad,) = backprop(numpy.ones_like(out))
    d = grad.model_output.last_hidden_state
    assert d.shape == hidden.shape
    assert numpy.allclose(d[:, 0], 1.0 / hidden.shape[0]) and d[:, 1:].sum() == 0


def test_mean_pooling_counts_each_wordpiece_of_the_note_once(windowed_doc):
    data = windowed_doc._.trf_data
    hidden = data.model_output.last_hidden_state
    flat = hidden.reshape(-1, hidden.shape[-1])
    rows = numpy.unique(data.align.dataXd)
    out, backprop = doc_pooling("mean", 0.5)([data], is_train=True)
    assert numpy.allclose(out[0], flat[rows].mean(axis=0), atol=1e-6)
    (grad,) = backprop(numpy.ones_like(out))
    d = grad.model_output.last_hidden_state.reshape(flat.shape)
    assert numpy.allclose(d[rows], 0.5 / rows.size)
    mask = numpy.ones(flat.shape[0], dtype=bool)
    mask[rows] = False
    assert d[mask].sum() == 0


def test_unknown_pooling_is_refused():
    with pytest.raises(ValueError, match="pooling"):
        doc_pooling("max", 1.0)


def _textcat_nlp(model_dir, pooling):
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "transformer",
        config={
            "max_batch_items": 262144,
            "model": {
                "@architectures": "spacy-clinlong.LongTransformerModel.v1",
                "name": str(model_dir),
                "max_length": 1024,
            },
        },
    )
    nlp.add_pipe(
        "textcat_multilabel",
        config={
            "model": {
                "@architectures": "spacy-clinlong.WholeNoteTextCat.v1",
                "exclusive_classes": False,
                "doc_encoder": {"@architectures": "spacy-clinlong.DocPoolingListener.v1", "pooling": pooling},
            }
        },
    )
    return nlp


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_textcat_multilabel_learns_and_reports_auc_and_f1(tiny_models, pooling):
    # Seeded: weight initialization must not depend on which tests ran before.
    spacy.util.fix_random_seed(0)
    nlp = _textcat_nlp(tiny_models("longformer"), pooling)
    notes = sorted(generate_notes(20, seed=6), key=lambda n: len(n["text"]))[:8]
    examples = [Example(nlp.make_doc(n["text"]), note_to_doc(nlp, n)) for n in notes]
    nlp.initialize(lambda: examples)
    before = nlp.evaluate(examples)
    optimizer = Adam(0.003)
    for _ in range(30):
        nlp.update(examples, sgd=optimizer)
    scores = nlp.evaluate(examples)
    assert set(scores["cats_auc_per_type"]) == set(CAT_LABELS)
    assert set(scores["cats_f_per_type"]) == set(CAT_LABELS)
    assert "cats_macro_auc" in scores and "cats_macro_f" in scores
    # Fitting its training notes shows the signal flows through the pooling.
    assert scores["cats_macro_auc"] > max(0.75, before["cats_macro_auc"] + 0.25), scores["cats_macro_auc"]


def test_empty_note_in_a_batch(tiny_models):
    nlp = _textcat_nlp(tiny_models("longformer"), "cls")
    notes = generate_notes(2, seed=6)
    examples = [Example(nlp.make_doc(n["text"]), note_to_doc(nlp, n)) for n in notes]
    empty = nlp.make_doc("")
    empty_ref = nlp.make_doc("")
    empty_ref.cats = {label: 0.0 for label in CAT_LABELS}
    examples.append(Example(empty, empty_ref))
    optimizer = nlp.initialize(lambda: examples)
    nlp.update(examples, sgd=optimizer)
    docs = list(nlp.pipe(["", notes[0]["text"], "   "]))
    assert all(set(d.cats) == set(CAT_LABELS) for d in docs)


def _ensemble_nlp(model_dir):
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "transformer",
        config={
            "model": {"@architectures": "spacy-clinlong.LongTransformerModel.v1", "name": str(model_dir)}
        },
    )
    nlp.add_pipe(
        "textcat_multilabel",
        config={
            "model": {
                "@architectures": "spacy-clinlong.WholeNoteTextCatEnsemble.v1",
                "doc_encoder": {"@architectures": "spacy-clinlong.DocPoolingListener.v1", "pooling": "cls"},
                # As in the configs: the bag of words learns 20 times as fast as the transformer.
                "linear_scale": 20.0,
                "linear_model": {
                    "@architectures": "spacy.TextCatBOW.v3",
                    "exclusive_classes": False,
                    "ngram_size": 1,
                    "no_output_layer": True,
                    "length": 262144,
                },
            }
        },
    )
    return nlp


def test_ensemble_learns_a_separable_toy_set_in_a_few_steps(tiny_models, tmp_path):
    spacy.util.fix_random_seed(0)
    nlp = _ensemble_nlp(tiny_models("longformer"))
    # Every note has the same words in its own order, then one drug of each pair: to the bag of
    # words only the drugs tell notes apart. (Random word counts gave it noise to fit, and the
    # AUC swung with the float noise of how windows were batched into encoder calls.)
    words = "patient seen today for follow up of chronic conditions and routine labs".split() * 2
    rng = numpy.random.default_rng(0)
    examples = []
    for i in range(16):
        cats = {"WARFARIN": float(i % 2 == 0), "INSULIN": float(i % 4 < 2)}
        drugs = ["on", "warfarin" if cats["WARFARIN"] else "aspirin"]
        drugs += ["takes", "insulin" if cats["INSULIN"] else "metformin"]
        text = " ".join([*rng.permutation(words), *drugs])
        ref = nlp.make_doc(text)
        ref.cats = cats
        examples.append(Example(nlp.make_doc(text), ref))
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = 1e-4
    before = nlp.evaluate(examples)
    # Seeds 0-5, one encoder call per window or one for all: an AUC of 1.0 within 2 steps,
    # kept through 40, so 10 is in the middle.
    for _ in range(10):
        nlp.update(examples, sgd=optimizer)
    scores = nlp.evaluate(examples)
    assert before["cats_macro_auc"] < 0.8, before["cats_auc_per_type"]
    assert min(scores["cats_auc_per_type"].values()) >= 0.95, scores["cats_auc_per_type"]
    # Saved and loaded, it gives the same scores (the bag of words is part of the model).
    nlp.to_disk(tmp_path / "ens")
    loaded = spacy.load(tmp_path / "ens")
    for example in examples[:2]:
        text = example.reference.text
        assert loaded(text).cats == pytest.approx(nlp(text).cats, abs=1e-6)


def test_ensemble_refuses_a_linear_model_that_is_no_classifier(tiny_models):
    from thinc.api import Linear

    from spacy_clinlong.models.textcat_ensemble import create_whole_note_textcat_ensemble_v1

    with pytest.raises(ValueError, match="linear_model"):
        create_whole_note_textcat_ensemble_v1(doc_encoder=Linear(), linear_model=Linear())
