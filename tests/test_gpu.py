"""Mixed precision on a CUDA GPU (opt-in: pytest --gpu)."""

import numpy
import pytest
import spacy
import torch

from spacy_clinlong.corpus.synth.generator import generate_notes
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


@pytest.mark.parametrize("arch", ["longformer", "bigbird", "modernbert"])
def test_fast_attention_matches_hugging_face_on_gpu(arch):
    """The fast path on CUDA (gathered blocks through SDPA's GPU kernels)
    against Hugging Face's stock modules: fp32 within 1e-4, bf16 close."""
    import copy

    from transformers import (
        BigBirdConfig,
        BigBirdModel,
        LongformerConfig,
        LongformerModel,
        ModernBertConfig,
        ModernBertModel,
    )

    from spacy_clinlong.models.attention import has_fast_attention, use_fast_attention

    torch.manual_seed(0)
    if arch == "longformer":
        model = LongformerModel(
            LongformerConfig(
                hidden_size=256,
                num_attention_heads=4,
                intermediate_size=512,
                num_hidden_layers=2,
                attention_window=[512] * 2,
                max_position_embeddings=4098,
                vocab_size=300,
                pad_token_id=1,
            )
        )
    elif arch == "bigbird":
        model = BigBirdModel(
            BigBirdConfig(
                hidden_size=256,
                num_attention_heads=4,
                intermediate_size=512,
                num_hidden_layers=2,
                block_size=64,
                max_position_embeddings=4096,
                vocab_size=300,
            )
        )
    else:
        model = ModernBertModel(
            ModernBertConfig(
                hidden_size=256,
                num_attention_heads=4,
                intermediate_size=512,
                num_hidden_layers=3,
                max_position_embeddings=8192,
                vocab_size=300,
                pad_token_id=0,
                attn_implementation="sdpa",
            )
        )
    stock = model.eval().cuda()
    fast = copy.deepcopy(stock)
    assert use_fast_attention(fast) and has_fast_attention(fast)
    lengths = [4096, 2900]
    ids = torch.randint(5, 300, (2, 4096), device="cuda")
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
    kwargs = {"input_ids": ids, "attention_mask": mask}
    if arch == "longformer":
        glob = torch.zeros_like(ids)
        glob[:, 0] = 1
        kwargs["global_attention_mask"] = glob
    with torch.inference_mode():
        want = stock(**kwargs).last_hidden_state
        got = fast(**kwargs).last_hidden_state
        with torch.autocast("cuda", dtype=torch.bfloat16):
            half = fast(**kwargs).last_hidden_state.float()
    for row, n in enumerate(lengths):
        assert (got[row, :n] - want[row, :n]).abs().max().item() < 1e-4
        assert (half[row, :n] - want[row, :n]).abs().max().item() < 0.1


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_annotate_on_gpu_keeps_every_note(engine, annotate_pipeline, short_notes, tmp_path):
    """annotate --gpu-id 0: the pipeline runs on CUDA (Ray: one GPU per worker), every note once."""
    import json

    from spacy_clinlong.annotate import JobSpec, annotate

    if engine == "ray":
        pytest.importorskip("ray.data")
    notes = short_notes(200)
    source = tmp_path / "notes.jsonl"
    source.write_text("".join(json.dumps(n) + "\n" for n in notes))
    try:
        summary = annotate(
            JobSpec(
                model=str(annotate_pipeline),
                input=str(source),
                output=str(tmp_path / "out.jsonl"),
                shard_size=50,
            ),
            engine=engine,
            gpu_id=0,
            workers=1,
            progress=False,
            echo=print,
        )
    finally:
        spacy.require_cpu()
    views = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert summary["notes"] == 200 and summary["errors"] == 0
    assert [v["id"] for v in views] == [n["id"] for n in notes]
