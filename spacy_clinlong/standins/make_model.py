"""Random-weight stand-ins for the clinical checkpoints, built offline.

`build_model` trains a tokenizer on local text, builds a Hugging Face model with
random weights and saves both with `save_pretrained` (safetensors), so that
`AutoTokenizer`, `AutoConfig` and `AutoModel.from_pretrained(output_dir)` load
the directory exactly as they load the real checkpoint, with no network and no
`trust_remote_code`. Tests, demos and benchmarks run on these.

Two sizes:

- `base` has the exact shape of the real checkpoint (layers, widths, heads,
  attention pattern, positions, vocab_size, special ids), so speed and memory
  measured on it are the real model's. Its tokenizer also learns the package's
  clinical word list (standins/wordfreq.py), so it cuts real notes into about
  as many wordpieces as the real checkpoints do (docs/standins.md). It has
  fewer tokens than the config's vocab_size: the extra embedding rows are
  never indexed, and every special-token id still matches the config.
- `tiny` keeps each architecture's mechanics (Longformer sliding + global
  attention, BigBird block-sparse, ModernBERT local/global layers) at hidden 64,
  2 heads, intermediate 128, so a forward pass takes milliseconds on CPU.

    python -m spacy_clinlong make-model --arch longformer --size tiny models/tiny-longformer

The same arch, size, seed and texts give byte-identical files. The tokenizer
depends only on the texts (by default the package's synthetic notes, and for
base the word list), the weights on the seed.
"""

import functools
import json
import os
import warnings
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

import torch
from transformers import (
    AutoModel,
    BertConfig,
    BigBirdConfig,
    LongformerConfig,
    ModernBertConfig,
    PretrainedConfig,
    PreTrainedTokenizerBase,
)

from ..about import __version__
from .wordpiece import train_tokenizer

ARCHS = ("longformer", "bigbird", "modernbert", "bert")
SIZES = ("tiny", "base")

MIRRORS = {
    "longformer": "allenai/longformer-base-4096 (as yikuan8/Clinical-Longformer)",
    "bigbird": "google/bigbird-roberta-base (as yikuan8/Clinical-BigBird)",
    "modernbert": "answerdotai/ModernBERT-base (as Simonlee711/Clinical_ModernBERT)",
    "bert": "bert-base-cased (as emilyalsentzer/Bio_ClinicalBERT)",
}

# Learned-vocabulary target per (arch, size): the real vocabulary for base
# (reached only with enough text), ~4,000 for tiny. For modernbert it is also
# the id of [UNK], the first of its specials (50280 in ModernBERT-base).
TOKENIZER_VOCAB = {
    ("longformer", "base"): 50264,  # + <mask> = 50265
    ("bigbird", "base"): 50358,
    ("modernbert", "base"): 50280,
    ("bert", "base"): 28996,
    ("longformer", "tiny"): 4000,
    ("bigbird", "tiny"): 4000,
    ("modernbert", "tiny"): 4000,
    ("bert", "tiny"): 4000,
}
MAX_LENGTH = {"longformer": 4096, "bigbird": 4096, "modernbert": 8192, "bert": 512}
# Default tiny vocab_size, enough for any tiny tokenizer; build_model passes the
# real size. ModernBERT's specials sit at 4000..4004 whatever the corpus.
TINY_VOCAB_SIZE = 4008
BASE_VOCAB = {"longformer": 50265, "bigbird": 50358, "modernbert": 50368, "bert": 28996}
BASE_INTERMEDIATE = {"longformer": 3072, "bigbird": 3072, "modernbert": 1152, "bert": 3072}
# Enough notes for a stable vocabulary while training stays under a second.
DEFAULT_NOTES = 200
BUILD_FILE = "clinlong_build.json"
# Everything build_model writes, removed first when rebuilding over an earlier
# build so no file of another arch lingers (AutoTokenizer would read it).
ARTIFACTS = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    "spiece.model",
    BUILD_FILE,
)


def make_config(
    arch: str, size: str, *, vocab_size: Optional[int] = None, attention_window: Optional[int] = None
) -> PretrainedConfig:
    """Create the Hugging Face config of an arch at a size.

    arch (str): One of ARCHS.
    size (str): "base" (the real checkpoint's shape) or "tiny".
    vocab_size (Optional[int]): Embedding rows; None gives the real checkpoint's
        for base and TINY_VOCAB_SIZE for tiny. Must exceed every special id.
    attention_window (Optional[int]): Longformer only: the sliding window of
        every layer (a positive even number); None gives 32 for tiny and the
        real checkpoint's 512 for base. A tiny model with 512 sees as far as
        Clinical-Longformer does.
    RETURNS (PretrainedConfig): The config (LongformerConfig, BigBirdConfig,
        ModernBertConfig or BertConfig).
    """
    if arch not in ARCHS or size not in SIZES:
        raise ValueError(f"Unknown arch/size {arch!r}/{size!r}; expected arch in {ARCHS}, size in {SIZES}")
    if attention_window is not None and arch != "longformer":
        raise ValueError(f"attention_window is a Longformer setting; {arch} has none")
    tiny = size == "tiny"
    if vocab_size is None:
        vocab_size = TINY_VOCAB_SIZE if tiny else BASE_VOCAB[arch]
    shape: Dict[str, Any] = {
        "hidden_size": 64 if tiny else 768,
        "num_attention_heads": 2 if tiny else 12,
        "intermediate_size": 128 if tiny else BASE_INTERMEDIATE[arch],
        "vocab_size": vocab_size,
    }
    if arch == "longformer":
        layers = 2 if tiny else 12
        config = LongformerConfig(
            num_hidden_layers=layers,
            attention_window=[(32 if tiny else 512) if attention_window is None else attention_window]
            * layers,
            # RoBERTa positions start at pad_token_id + 1: 4096 tokens need 4098.
            max_position_embeddings=4098,
            type_vocab_size=1,
            layer_norm_eps=1e-5,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
            sep_token_id=2,
            **shape,
        )
        min_vocab = 4
    elif arch == "bigbird":
        config = BigBirdConfig(
            num_hidden_layers=2 if tiny else 12,
            attention_type="block_sparse",
            block_size=16 if tiny else 64,
            num_random_blocks=2 if tiny else 3,
            max_position_embeddings=4096,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
            sep_token_id=66,
            **shape,
        )
        min_vocab = 101  # <unk> = 100
    elif arch == "modernbert":
        # Specials follow the learned vocabulary: [UNK] [CLS] [SEP] [PAD] [MASK].
        unk = TOKENIZER_VOCAB[(arch, size)]
        config = ModernBertConfig(
            # Every third layer (0, 3, ...) is global, the others local.
            num_hidden_layers=3 if tiny else 22,
            global_attn_every_n_layers=3,
            local_attention=32 if tiny else 128,
            max_position_embeddings=8192,
            cls_token_id=unk + 1,
            bos_token_id=unk + 1,
            sep_token_id=unk + 2,
            eos_token_id=unk + 2,
            pad_token_id=unk + 3,
            **shape,
        )
        min_vocab = unk + 5
    else:
        config = BertConfig(
            num_hidden_layers=2 if tiny else 12,
            max_position_embeddings=512,
            pad_token_id=0,
            **shape,
        )
        min_vocab = 104  # [MASK] = 103
    _check_geometry(config, arch, size, min_vocab)
    return config


def _check_geometry(config: PretrainedConfig, arch: str, size: str, min_vocab: int) -> None:
    if config.vocab_size < min_vocab:
        raise ValueError(
            f"{arch}/{size}: vocab_size={config.vocab_size} leaves no room for the "
            f"special tokens, which need vocab_size >= {min_vocab}"
        )
    if config.hidden_size % config.num_attention_heads:
        raise ValueError(
            f"{arch}/{size}: hidden_size={config.hidden_size} is not a multiple of "
            f"num_attention_heads={config.num_attention_heads}"
        )
    if arch == "longformer":
        windows = list(config.attention_window)
        if len(windows) != config.num_hidden_layers or any(w <= 0 or w % 2 for w in windows):
            raise ValueError(
                f"longformer/{size}: attention_window={windows} must hold one positive "
                f"even number per layer (num_hidden_layers={config.num_hidden_layers})"
            )


def special_ids(tokenizer: PreTrainedTokenizerBase, config: PretrainedConfig) -> Dict[str, tuple]:
    """Pair each special-token id in the config with the tokenizer's.

    tokenizer (PreTrainedTokenizerBase): The tokenizer.
    config (PretrainedConfig): The model config.
    RETURNS (Dict[str, tuple]): Config attribute to (config id, tokenizer id),
        for the attributes the config sets.
    """
    names = {
        "pad_token_id": "pad_token",
        "bos_token_id": "bos_token",
        "eos_token_id": "eos_token",
        "sep_token_id": "sep_token",
        "cls_token_id": "cls_token",
    }
    if isinstance(config, ModernBertConfig):
        # ModernBERT has no bos/eos tokens; the config points them at [CLS]/[SEP].
        names.update(bos_token_id="cls_token", eos_token_id="sep_token")
    pairs = {}
    for attr, token_attr in names.items():
        config_id = getattr(config, attr, None)
        if config_id is not None:
            pairs[attr] = (config_id, tokenizer.convert_tokens_to_ids(getattr(tokenizer, token_attr)))
    return pairs


def _check_tokenizer(tokenizer: PreTrainedTokenizerBase, config: PretrainedConfig) -> None:
    wrong = {attr: ids for attr, ids in special_ids(tokenizer, config).items() if ids[0] != ids[1]}
    if wrong:
        raise ValueError(f"Special ids differ between config and tokenizer, as (config, tokenizer): {wrong}")
    if len(tokenizer) > config.vocab_size:
        raise ValueError(f"Tokenizer has {len(tokenizer)} tokens, more than vocab_size={config.vocab_size}")


@functools.lru_cache(maxsize=2)
def default_texts(n: int = DEFAULT_NOTES) -> Tuple[str, ...]:
    """Texts of the package's synthetic notes, for training tokenizers.

    Cached: the notes are deterministic, and a test session builds many models.

    n (int): Number of notes.
    RETURNS (Tuple[str, ...]): The note texts.
    """
    from ..corpus.synth.generator import generate_notes

    return tuple(note["text"] for note in generate_notes(n, seed=0))


def default_word_counts(size: str) -> List[Tuple[str, int]]:
    """The words a default build adds to the synthetic notes: the shipped
    clinical word list for base, none for tiny (its 4,000 tokens serve the
    synthetic notes of tests and demos).

    size (str): "base" or "tiny".
    RETURNS (List[Tuple[str, int]]): (word, count) pairs; empty for tiny, and
        with a warning for base when the list is missing from the install.
    """
    # Imported here so that `python -m spacy_clinlong.standins.wordfreq` runs cleanly.
    from .wordfreq import WORDS_FILE, read_word_counts

    if size != "base":
        return []
    if not WORDS_FILE.exists():
        warnings.warn(
            f"{WORDS_FILE.name} is missing from this install: the base tokenizer learns the "
            "synthetic notes only and cuts real notes into about 1.5x the real checkpoint's wordpieces",
            stacklevel=3,
        )
        return []
    return read_word_counts(WORDS_FILE)


def _prepare_dir(output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    if (output_dir / BUILD_FILE).exists():
        for name in ARTIFACTS:
            (output_dir / name).unlink(missing_ok=True)
    elif any(output_dir.iterdir()):
        # Never mix our files into a directory we did not create (a real model?).
        raise ValueError(f"{output_dir} is not empty and holds no {BUILD_FILE}; use a new directory")


def build_model(
    *,
    arch: str,
    size: str,
    output_dir: os.PathLike,
    seed: int = 0,
    texts: Optional[Iterable[str]] = None,
    attention_window: Optional[int] = None,
) -> Path:
    """Train a tokenizer, build a random-weight model and save both.

    arch (str): One of ARCHS.
    size (str): "base" (the real checkpoint's shape) or "tiny".
    output_dir (os.PathLike): Directory to write; created if missing. It must be
        empty or hold an earlier build, whose files are replaced.
    seed (int): Seed of the random weights.
    texts (Optional[Iterable[str]]): Tokenizer training texts; None uses the
        package's synthetic notes, and for base also its clinical word list.
    attention_window (Optional[int]): Longformer's sliding window (see make_config).
    RETURNS (Path): output_dir, loadable with AutoTokenizer/AutoModel.from_pretrained.
    """
    make_config(arch, size, attention_window=attention_window)  # fail on bad settings before any work
    word_counts = default_word_counts(size) if texts is None else []
    texts = list(default_texts() if texts is None else texts)
    kinds = sorted({type(text).__name__ for text in texts if not isinstance(text, str)})
    if kinds:
        raise ValueError(f"texts must be strings, got items of type {kinds}")
    if not any(text.strip() for text in texts):
        raise ValueError(f"No training text: {len(texts)} texts, all empty")
    output_dir = Path(output_dir)
    _prepare_dir(output_dir)
    record: Dict[str, Any] = {"arch": arch, "size": size, "seed": seed, "complete": False}
    # Written first so that a build cut short can be rebuilt in the same place.
    _write_record(output_dir, record)
    tokenizer = train_tokenizer(
        arch,
        texts,
        output_dir,
        vocab_size=TOKENIZER_VOCAB[(arch, size)],
        model_max_length=MAX_LENGTH[arch],
        word_counts=word_counts,
    )
    # base keeps the real vocab_size; tiny fits the tokenizer, rounded up to a
    # multiple of 8 for tensor-core friendly embedding shapes.
    vocab_size = None if size == "base" else -(-len(tokenizer) // 8) * 8
    config = make_config(arch, size, vocab_size=vocab_size, attention_window=attention_window)
    _check_tokenizer(tokenizer, config)
    # fork_rng: seeding must not change the caller's global random state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModel.from_config(config)
    model.save_pretrained(str(output_dir), safe_serialization=True)
    n_params = sum(p.numel() for p in model.parameters())
    record.update(
        {
            "complete": True,
            "spacy_clinlong_version": __version__,
            "mirrors": MIRRORS[arch],
            "model_class": type(model).__name__,
            "num_parameters": n_params,
            "vocab_size": config.vocab_size,
            "tokenizer_size": len(tokenizer),
            "tokenizer_class": type(tokenizer).__name__,
            "tokenizer_texts": len(texts),
            "tokenizer_chars": sum(len(text) for text in texts),
            # Distinct words of the word list learned besides the texts (0: none).
            "tokenizer_words": len(word_counts),
            "tokenizer_word_list": "mtsamples_words.tsv.gz" if word_counts else None,
        }
    )
    _write_record(output_dir, record)
    return output_dir


def _write_record(output_dir: Path, record: Dict[str, Any]) -> None:
    (output_dir / BUILD_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf8")


def read_build_info(model_dir: os.PathLike) -> Dict[str, Any]:
    """Read the clinlong_build.json that build_model wrote.

    model_dir (os.PathLike): A directory written by build_model.
    RETURNS (Dict[str, Any]): arch, size, seed, version, mirrored checkpoint,
        parameter count and tokenizer size.
    """
    return json.loads((Path(model_dir) / BUILD_FILE).read_text(encoding="utf8"))
