"""The benchmark's systems: which pipelines run, over which stand-in models."""

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

BASELINE = "strided-bert"
# The heads and rules `--pipeline` puts after every system's transformer.
CLINICAL_LABELS = ("PROBLEM", "TREATMENT", "TEST")
CLINICAL_CHOICES = ("fast", "before")
# An untrained ner head finds nothing, and ConText and the doc consumer cost per
# entity: common clinical terms as medspaCy target rules give the rules real work.
CLINICAL_TERMS = {
    "PROBLEM": (
        "pain",
        "fever",
        "cough",
        "nausea",
        "vomiting",
        "hypertension",
        "diabetes",
        "edema",
        "shortness of breath",
        "chest pain",
        "infection",
        "pneumonia",
        "tenderness",
        "swelling",
        "bleeding",
        "fracture",
        "mass",
        "lesion",
        "anemia",
        "headache",
        "weakness",
        "obesity",
    ),
    "TREATMENT": (
        "aspirin",
        "metformin",
        "lisinopril",
        "insulin",
        "heparin",
        "antibiotics",
        "surgery",
        "physical therapy",
        "tylenol",
        "morphine",
        "prednisone",
        "coumadin",
    ),
    "TEST": (
        "ct",
        "mri",
        "x-ray",
        "ultrasound",
        "blood pressure",
        "ekg",
        "biopsy",
        "cbc",
        "chest x-ray",
        "echocardiogram",
        "urinalysis",
        "colonoscopy",
    ),
}


@dataclass(frozen=True)
class System:
    """One pipeline the benchmark runs.

    key (str): Short name (JSON, plot).
    label (str): What it is, for people.
    arch (str): The make-model arch of its encoder.
    kind (str): "clinlong" (a), "strided" (b) or "whole" (c).
    quantize (Optional[str]): The long-span model's `quantize` setting ("int8" on CPU).
    """

    key: str
    label: str
    arch: str
    kind: str
    quantize: Optional[str] = None


SYSTEMS = (
    System(
        "longformer",
        "(a) spacy-clinlong, whole note, Longformer (banded attention)",
        "longformer",
        "clinlong",
    ),
    System(
        "longformer-int8",
        "(a) spacy-clinlong, whole note, Longformer, int8 (CPU)",
        "longformer",
        "clinlong",
        quantize="int8",
    ),
    System("bigbird", "(a) spacy-clinlong, whole note, BigBird", "bigbird", "clinlong"),
    System("modernbert", "(a) spacy-clinlong, whole note, ModernBERT", "modernbert", "clinlong"),
    System(BASELINE, "(b) spacy-transformers, strided 128/96, BERT", "bert", "strided"),
    System(
        "hf-longformer", "(c) spacy-transformers, whole note, Hugging Face Longformer", "longformer", "whole"
    ),
)
SYSTEM_KEYS = tuple(s.key for s in SYSTEMS)
SYSTEMS_BY_KEY = {s.key: s for s in SYSTEMS}


def build_pipeline(system: System, model_dir: Path, *, gpu: bool, clinical: Optional[str] = None):
    """A spaCy pipeline for one system, initialized.

    system (System): The system.
    model_dir (Path): Its encoder (hub id or directory).
    gpu (bool): Mixed precision (bf16/fp16) on GPU, for every system alike.
    clinical (Optional[str]): None: the transformer alone. "fast": the full clinical
        pipeline, an `ner` head (random weights, CLINICAL_LABELS) on the transformer
        and `add_medspacy`'s components; "before": the same with PyRuSH and medspaCy's
        doc consumer in place of the fast splitter and consumer (ConText as in "fast").
    RETURNS (Language): The pipeline.
    """
    import spacy

    if clinical not in (None, *CLINICAL_CHOICES):
        raise ValueError(f"clinical must be one of {CLINICAL_CHOICES} or None, got {clinical!r}")
    nlp = spacy.blank("en")
    nlp.max_length = 10**7
    if system.kind == "clinlong":
        model = {
            "@architectures": "spacy-clinlong.LongTransformerModel.v1",
            "name": str(model_dir),
            "mixed_precision": gpu,
            "quantize": system.quantize,
        }
        nlp.add_pipe("transformer", config={"model": model, "max_batch_items": 262144})
        if clinical:
            _add_clinical(nlp, clinical)
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
        if clinical:
            _add_clinical(nlp, clinical)
    nlp.initialize()
    return nlp


def _add_clinical(nlp, clinical: str) -> None:
    """An ner head on the transformer, then medspaCy's rules: sentences, target rules for
    CLINICAL_TERMS (added to the head's entities), sections, ConText and the doc consumer."""
    from ...integrations.medspacy import add_medspacy

    listener = {
        "@architectures": "spacy-transformers.TransformerListener.v1",
        "pooling": {"@layers": "reduce_mean.v1"},
    }
    ner = nlp.add_pipe("ner", config={"model": {"tok2vec": listener}})
    for label in CLINICAL_LABELS:
        ner.add_label(label)
    from medspacy.target_matcher import TargetRule

    rules = [TargetRule(term, label) for label, terms in CLINICAL_TERMS.items() for term in terms]
    if clinical == "fast":
        add_medspacy(nlp, target_rules=rules)
        return
    add_medspacy(nlp, sentences="pyrush", target_rules=rules, doc_consumer=False)
    nlp.add_pipe("medspacy_doc_consumer", config={"dtypes": ["ents", "section", "context"]})


def ensure_models(archs: Iterable[str], size: str, models_dir: Path) -> Dict[str, Path]:
    """Build (or reuse) a random-weight model per arch with make-model.

    archs (Iterable[str]): make-model archs.
    size (str): "base" or "tiny".
    models_dir (Path): Where the models live (models_dir / f"{arch}-{size}").
    RETURNS (Dict[str, Path]): Directory per arch.
    """
    from ...standins.make_model import build_model, read_build_info
    from ...standins.wordfreq import WORDS_FILE

    found = {}
    for arch in sorted(set(archs)):
        path = models_dir / f"{arch}-{size}"
        try:
            info = read_build_info(path)
            ready = info.get("complete") and info.get("arch") == arch and info.get("size") == size
            # A base stand-in built before its tokenizer learnt the clinical word list cuts
            # real notes into about 1.5 times the real checkpoint's wordpieces: rebuild it.
            ready = ready and (
                size != "base" or info.get("tokenizer_words", 0) > 0 or not WORDS_FILE.exists()
            )
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
