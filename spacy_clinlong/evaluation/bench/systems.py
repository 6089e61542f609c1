"""The benchmark's systems: which pipelines run, over which stand-in models."""

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Sequence

BASELINE = "strided-bert"


@dataclass(frozen=True)
class System:
    """One pipeline the benchmark runs.

    key (str): Short name (JSON, plot).
    label (str): What it is, for people.
    arch (str): The make-model arch of its encoder.
    kind (str): "clinlong" (a), "strided" (b) or "whole" (c).
    """

    key: str
    label: str
    arch: str
    kind: str


SYSTEMS = (
    System(
        "longformer",
        "(a) spacy-clinlong, whole note, Longformer (banded attention)",
        "longformer",
        "clinlong",
    ),
    System("bigbird", "(a) spacy-clinlong, whole note, BigBird", "bigbird", "clinlong"),
    System("modernbert", "(a) spacy-clinlong, whole note, ModernBERT", "modernbert", "clinlong"),
    System(BASELINE, "(b) spacy-transformers, strided 128/96, BERT", "bert", "strided"),
    System(
        "hf-longformer", "(c) spacy-transformers, whole note, Hugging Face Longformer", "longformer", "whole"
    ),
)
SYSTEM_KEYS = tuple(s.key for s in SYSTEMS)


def build_pipeline(system: System, model_dir: Path, *, gpu: bool):
    """A spaCy pipeline for one system, initialized.

    system (System): The system.
    model_dir (Path): Its encoder (hub id or directory).
    gpu (bool): Mixed precision (bf16/fp16) on GPU, for every system alike.
    RETURNS (Language): The pipeline.
    """
    import spacy

    nlp = spacy.blank("en")
    nlp.max_length = 10**7
    if system.kind == "clinlong":
        model = {
            "@architectures": "spacy-clinlong.LongTransformerModel.v1",
            "name": str(model_dir),
            "mixed_precision": gpu,
        }
        nlp.add_pipe("transformer", config={"model": model, "max_batch_items": 262144})
        nlp.add_pipe("clinlong_drop_trf_data")
    else:
        spans = (
            {"@span_getters": "spacy-transformers.strided_spans.v1", "window": 128, "stride": 96}
            if system.kind == "strided"
            else {"@span_getters": "spacy-transformers.doc_spans.v1"}
        )
        model = {
            "@architectures": "spacy-transformers.TransformerModel.v3",
            "name": str(model_dir),
            "get_spans": spans,
            "mixed_precision": gpu,
            "tokenizer_config": {"use_fast": True},
        }
        nlp.add_pipe("transformer", config={"model": model})
    nlp.initialize()
    return nlp


def ensure_models(archs: Iterable[str], size: str, models_dir: Path) -> Dict[str, Path]:
    """Build (or reuse) a random-weight model per arch with make-model.

    archs (Iterable[str]): make-model archs.
    size (str): "base" or "tiny".
    models_dir (Path): Where the models live (models_dir / f"{arch}-{size}").
    RETURNS (Dict[str, Path]): Directory per arch.
    """
    from ...standins.make_model import build_model, read_build_info

    found = {}
    for arch in sorted(set(archs)):
        path = models_dir / f"{arch}-{size}"
        try:
            info = read_build_info(path)
            ready = info.get("complete") and info.get("arch") == arch and info.get("size") == size
        except (OSError, ValueError):
            ready = False
        if not ready:
            build_model(arch=arch, size=size, output_dir=path)
        found[arch] = path
    return found


def count_wordpieces(model_dir: Path, texts: Sequence[str]) -> List[int]:
    """Content wordpieces per note with a model's own tokenizer (no specials,
    no window overlap counted)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    encoded = tokenizer(list(texts), add_special_tokens=False, verbose=False)
    return [len(ids) for ids in encoded["input_ids"]]


def fits_whole(model_dir: Path, texts: Sequence[str]) -> List[bool]:
    """Whether each note fits Longformer's budget whole (system c has no other way)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(model_dir))
    budget = int(config.max_position_embeddings) - int(config.pad_token_id) - 1 - 2
    return [n <= budget for n in count_wordpieces(model_dir, texts)]
