"""`quantize = "int8"`: prediction on CPU through an int8 copy of the encoder."""

import re

import numpy
import pytest
import spacy
from spacy.training import Example

from spacy_clinlong.corpus import generate_notes, note_to_doc
from spacy_clinlong.models.quantize import is_quantized

ARCHS = ["longformer", "bigbird", "modernbert", "bert"]


@pytest.fixture(scope="module")
def notes():
    return generate_notes(4, seed=5)


def _cosine(a, b):
    a, b = a.ravel(), b.ravel()
    return float(a @ b / (numpy.linalg.norm(a) * numpy.linalg.norm(b)))


@pytest.mark.parametrize("arch", ARCHS)
def test_int8_predicts_close_to_fp32_and_keeps_the_fp32_encoder(trf_nlp, tiny_models, notes, arch):
    fp32 = trf_nlp(tiny_models(arch))
    int8 = trf_nlp(tiny_models(arch), quantize="int8")
    text = notes[0]["text"]
    a = fp32(text)._.trf_data
    b = int8(text)._.trf_data
    model = int8.get_pipe("transformer").model
    assert is_quantized(model.shim.prediction_model())
    assert not is_quantized(model.transformer), "training and saving use the fp32 encoder"
    assert numpy.array_equal(a.align.dataXd, b.align.dataXd)
    ha, hb = a.model_output.last_hidden_state, b.model_output.last_hidden_state
    assert ha.shape == hb.shape and hb.dtype == numpy.float32
    assert not numpy.array_equal(ha, hb), "int8 must change the arithmetic"
    assert _cosine(ha, hb) > 0.99


def test_the_setting_is_saved_and_the_weights_stay_fp32(trf_nlp, tiny_models, notes, tmp_path):
    nlp = trf_nlp(tiny_models("longformer"), quantize="int8")
    text = notes[1]["text"]
    before = nlp(text)._.trf_data.model_output.last_hidden_state
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    assert loaded.config["components"]["transformer"]["model"]["quantize"] == "int8"
    model = loaded.get_pipe("transformer").model
    assert not is_quantized(model.transformer)
    after = loaded(text)._.trf_data.model_output.last_hidden_state
    assert is_quantized(model.shim.prediction_model())
    assert numpy.array_equal(before, after)
    # Switched off at load, the same saved pipeline predicts in fp32.
    plain = spacy.load(
        tmp_path / "pipeline", config={"components": {"transformer": {"model": {"quantize": None}}}}
    )
    fp32 = plain(text)._.trf_data.model_output.last_hidden_state
    assert (
        plain.get_pipe("transformer").model.shim.prediction_model()
        is plain.get_pipe("transformer").model.transformer
    )
    assert not numpy.array_equal(before, fp32) and _cosine(before, fp32) > 0.99


def test_training_updates_the_fp32_weights_and_renews_the_int8_copy(tiny_models, notes):
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "transformer",
        config={
            "model": {
                "@architectures": "spacy-clinlong.LongTransformerModel.v1",
                "name": str(tiny_models("longformer")),
                "quantize": "int8",
            }
        },
    )
    nlp.add_pipe(
        "ner",
        config={
            "model": {
                "tok2vec": {
                    "@architectures": "spacy-transformers.TransformerListener.v1",
                    "pooling": {"@layers": "reduce_mean.v1"},
                }
            }
        },
    )
    docs = [note_to_doc(nlp, note) for note in notes]
    examples = [Example(nlp.make_doc(doc.text), doc) for doc in docs]
    nlp.initialize(lambda: examples)
    model = nlp.get_pipe("transformer").model
    nlp(notes[0]["text"])
    first_copy = model.shim.prediction_model()
    assert is_quantized(first_copy)
    before = [p.detach().clone() for p in model.transformer.parameters()]
    sgd = nlp.create_optimizer()
    for _ in range(2):
        nlp.update(examples, sgd=sgd)
    assert not is_quantized(model.transformer)
    after = list(model.transformer.parameters())
    assert any(not numpy.array_equal(a.numpy(), b.detach().numpy()) for a, b in zip(before, after))
    second_copy = model.shim.prediction_model()
    assert second_copy is not first_copy and is_quantized(second_copy)
    assert second_copy is model.shim.prediction_model(), "made once per update"


def test_qa_predicts_in_int8(tiny_models, notes):
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "clinlong_qa",
        config={
            "null_threshold": -1e9,
            "model": {
                "name": str(tiny_models("longformer")),
                "max_length": 256,
                "get_spans": {"overlap": 64},
                "quantize": "int8",
            },
        },
    )
    nlp.initialize()
    doc = nlp.make_doc(notes[0]["text"])
    questions = [qa["question"] for qa in notes[0]["qas"][:2]]
    ranked = nlp.get_pipe("clinlong_qa").ask(doc, questions, top_k=1)
    assert len(ranked) == 2 and all(answers for answers in ranked)
    assert is_quantized(nlp.get_pipe("clinlong_qa").model.shim.prediction_model())


@pytest.mark.parametrize(
    "setting,message",
    [
        ({"quantize": "int4"}, re.escape("quantize must be null (fp32) or 'int8', got 'int4'")),
        ({"quantize": "int8", "torch_compile": True}, "cannot be combined"),
    ],
)
def test_bad_settings_are_refused_in_one_line(trf_nlp, tiny_models, setting, message):
    with pytest.raises(ValueError, match=message) as err:
        trf_nlp(tiny_models("longformer"), **setting)
    assert "\n" not in str(err.value)


def test_a_copied_model_makes_its_own_int8_copy(trf_nlp, tiny_models, notes):
    nlp = trf_nlp(tiny_models("longformer"), quantize="int8")
    model = nlp.get_pipe("transformer").model
    nlp(notes[0]["text"])
    first = model.shim.prediction_model()
    copied = model.copy()
    assert copied.shim._prediction_copy is None and model.shim.prediction_model() is first
    assert is_quantized(copied.shim.prediction_model()) and copied.shim.prediction_model() is not first


def test_averaged_weights_get_their_own_int8_copy(trf_nlp, tiny_models, notes):
    nlp = trf_nlp(tiny_models("longformer"), quantize="int8")
    model = nlp.get_pipe("transformer").model
    nlp(notes[0]["text"])
    before = model.shim.prediction_model()
    params = {
        (id(model.layers[0]), name): model.layers[0].get_param(name) for name in model.layers[0].param_names
    }
    with model.use_params(params):
        inside = model.shim.prediction_model()
        assert inside is not before and is_quantized(inside)
    assert model.shim.prediction_model() not in (before, inside)


def test_check_int8_reports_what_int8_keeps_on_the_users_notes(annotate_pipeline, notes, tmp_path):
    import json

    from typer.testing import CliRunner

    from spacy_clinlong.cli import app

    source = tmp_path / "notes.jsonl"
    source.write_text("".join(json.dumps({"text": n["text"]}) + "\n" for n in notes) + '{"text": ""}\n')
    out = tmp_path / "report.json"
    args = ["check-int8", str(annotate_pipeline), str(source), "--limit", "3", "--json", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["notes"] == 3 and report["overrides"] == ["components.transformer.model.quantize"]
    ents = report["ents"]
    assert ents["fp32"] > 0 and 0 < ents["same"] <= min(ents["fp32"], ents["int8"])
    assert ents["kept"] == pytest.approx(ents["same"] / ents["fp32"])
    assert sum(s["fp32"] for s in ents["per_label"].values()) == ents["fp32"]
    assert set(report["cats"]) and all(0 <= s["same_decision"] <= 1 for s in report["cats"].values())
    assert report["fp32_words_per_s"] > 0 and report["int8_words_per_s"] > 0
    # A speed figure names its CPU.
    assert report["machine"]["cpu"] and report["machine"]["cpu"] in result.output
    assert "| ents | fp32 | int8 | same | kept | F1 |" in result.output
    # The note text never appears in the report.
    assert notes[0]["text"][:40] not in result.output + out.read_text()


def test_check_int8_refuses_a_pipeline_it_cannot_change(tmp_path, notes):
    import json

    from typer.testing import CliRunner

    from spacy_clinlong.cli import app

    spacy.blank("en").to_disk(tmp_path / "blank")
    source = tmp_path / "notes.jsonl"
    source.write_text(json.dumps({"text": notes[0]["text"]}) + "\n")
    result = CliRunner().invoke(app, ["check-int8", str(tmp_path / "blank"), str(source)])
    assert result.exit_code == 1 and "no long-span model" in result.output
    result = CliRunner().invoke(app, ["check-int8", str(tmp_path / "nowhere"), str(source)])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1


def test_compare_docs_counts_kept_spans_and_category_decisions():
    from spacy.tokens import Span

    from spacy_clinlong.evaluation.int8_check import compare_docs

    nlp = spacy.blank("en")
    a, b = nlp("aspirin for chest pain today"), nlp("aspirin for chest pain today")
    a.ents = [Span(a, 0, 1, "DRUG"), Span(a, 2, 4, "PROBLEM")]
    b.ents = [Span(b, 0, 1, "DRUG"), Span(b, 3, 4, "PROBLEM")]
    a.cats, b.cats = {"X": 0.6, "Y": 0.1}, {"X": 0.4, "Y": 0.2}
    report = compare_docs([a], [b])
    assert report["ents"]["kept"] == 0.5 and report["ents"]["f1"] == 0.5
    assert report["ents"]["per_label"]["DRUG"]["kept"] == 1.0
    assert report["ents"]["per_label"]["PROBLEM"]["same"] == 0
    assert report["cats"]["X"]["same_decision"] == 0.0 and report["cats"]["Y"]["same_decision"] == 1.0
    assert report["cats"]["X"]["max_score_difference"] == pytest.approx(0.2)


def test_check_int8_reads_a_pipeline_saved_with_int8_in_fp32_too(
    trf_nlp, tiny_models, notes, tmp_path, monkeypatch
):
    from spacy_clinlong.evaluation import int8_check

    trf_nlp(tiny_models("longformer"), quantize="int8").to_disk(tmp_path / "saved-int8")
    loads = []
    real_load = spacy.load

    def spy(name, **kwargs):
        nlp = real_load(name, **kwargs)
        loads.append(nlp.config["components"]["transformer"]["model"]["quantize"])
        return nlp

    monkeypatch.setattr(spacy, "load", spy)
    report = int8_check.check_int8(tmp_path / "saved-int8", [notes[0]["text"]], batch_size=1)
    # As saved (int8), then the fp32 reference with the setting off, then int8.
    assert loads == ["int8", None, "int8"]
    assert report["overrides"] == ["components.transformer.model.quantize"] and report["notes"] == 1
