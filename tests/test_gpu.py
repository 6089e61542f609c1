"""Mixed precision on a CUDA GPU (opt-in: pytest --gpu)."""
import numpy
import pytest
import spacy
import torch

from spacy_clinlong.corpus.synth import generate_notes
from spacy_clinlong.models.encoder import autocast_dtype

pytestmark = pytest.mark.gpu


def test_autocast_dtype_is_bf16_where_the_card_has_it():
    assert autocast_dtype(torch.device("cpu"), True) is None
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert autocast_dtype(torch.device("cuda"), True) is expected
    assert autocast_dtype(torch.device("cuda"), False) is None


@pytest.mark.parametrize("arch", ["longformer", "bigbird", "modernbert"])
def test_mixed_precision_matches_fp32_closely(arch, tiny_models, trf_nlp):
    text = generate_notes(2, seed=4)[1]["text"]
    cpu = trf_nlp(tiny_models(arch))(text)._.trf_data.model_output.last_hidden_state
    spacy.require_gpu()
    try:
        nlp = trf_nlp(tiny_models(arch), mixed_precision=True)
        assert next(nlp.get_pipe("transformer").model.transformer.parameters()).is_cuda
        gpu = nlp(text)._.trf_data.model_output.last_hidden_state
        gpu = gpu.get() if hasattr(gpu, "get") else numpy.asarray(gpu)
    finally:
        spacy.require_cpu()
    assert gpu.dtype == numpy.float32 and gpu.shape == cpu.shape
    assert numpy.abs(gpu - cpu).max() < 0.1
