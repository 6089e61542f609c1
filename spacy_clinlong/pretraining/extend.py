"""Make a long model from a short one: the Longformer recipe for BERT and RoBERTa checkpoints.

Beltagy et al. (2020) made longformer-base-4096 from roberta-base by copying
RoBERTa's 512 learned position embeddings over and over across the 4,096 new
positions and by initializing the global attention projections from the local
ones; everything else is copied unchanged. `extend_model` does the same for
any BERT or RoBERTa encoder (Bio_ClinicalBERT, all-MiniLM ...), into
Longformer (sliding window plus global attention) or BigBird (block sparse).

Within the source's own length the long model computes what the source did:
exactly for Longformer inputs no longer than half the attention window plus
one (every token still sees every other) and for BigBird inputs short enough
for full attention, and closely beyond that. Continued masked-LM pretraining
(`python -m spacy_clinlong pretrain`) then teaches the copied positions that
they are far apart, as it did for Longformer.
"""

import json
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import torch

from ..models.hf_loading import ModelLoadError, explain_load_error, resolve_source

SOURCE_TYPES = ("bert", "roberta")
ATTENTIONS = ("longformer", "bigbird")
# Config fields carried over unchanged from the source.
SHARED_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "type_vocab_size",
    "initializer_range",
    "layer_norm_eps",
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
)
RECORD_FILE = "clinlong_extend.json"
# The masked-LM head in BERT's names and in RoBERTa's (Longformer uses RoBERTa's).
BERT_HEAD = {
    "dense": "cls.predictions.transform.dense",
    "norm": "cls.predictions.transform.LayerNorm",
    "bias": "cls.predictions.bias",
}
ROBERTA_HEAD = {"dense": "lm_head.dense", "norm": "lm_head.layer_norm", "bias": "lm_head.bias"}


def position_offset(config) -> int:
    """RETURNS (int): Index of the first real position: pad_token_id + 1 for the RoBERTa family, else 0."""
    if config.model_type in ("roberta", "longformer"):
        return int(config.pad_token_id) + 1
    return 0


def tile_positions(old: torch.Tensor, old_offset: int, new_rows: int, new_offset: int) -> torch.Tensor:
    """Copy learned position embeddings across a longer table, the Longformer way.

    old (torch.Tensor): (old_rows, width) source table.
    old_offset (int): Rows of `old` before its first real position.
    new_rows (int): Rows of the new table.
    new_offset (int): Rows of the new table before its first real position.
    RETURNS (torch.Tensor): (new_rows, width): real position k holds source
        position k modulo the source's length; rows before the offset are zero.
    """
    learned = old[old_offset:]
    if not len(learned):
        raise ValueError("The source has no learned positions to copy.")
    new = torch.zeros(new_rows, old.shape[1], dtype=old.dtype)
    index = torch.arange(new_rows - new_offset) % len(learned)
    new[new_offset:] = learned[index]
    return new


def long_config(
    src_config,
    tokenizer,
    *,
    attention: str,
    max_length: int,
    attention_window: int,
    block_size: int,
    num_random_blocks: int,
):
    """RETURNS (PretrainedConfig): A LongformerConfig or BigBirdConfig with the source's shape."""
    from transformers import BigBirdConfig, LongformerConfig

    shared = {f: getattr(src_config, f) for f in SHARED_FIELDS if getattr(src_config, f, None) is not None}
    # The QA heads of both find the question's end by the separator id.
    if tokenizer.sep_token_id is not None:
        shared["sep_token_id"] = tokenizer.sep_token_id
    if attention == "longformer":
        if attention_window < 2 or attention_window % 2:
            raise ValueError(f"attention_window must be a positive even number, not {attention_window}")
        pad = int(shared.get("pad_token_id") or 0)
        return LongformerConfig(
            **shared,
            max_position_embeddings=max_length + pad + 1,
            attention_window=[attention_window] * src_config.num_hidden_layers,
            architectures=["LongformerForMaskedLM"],
        )
    if max_length % block_size:
        raise ValueError(f"max_length {max_length} must be a multiple of block_size {block_size} for BigBird")
    return BigBirdConfig(
        **shared,
        max_position_embeddings=max_length,
        attention_type="block_sparse",
        block_size=block_size,
        num_random_blocks=num_random_blocks,
        use_bias=True,
        rescale_embeddings=False,
        architectures=["BigBirdForMaskedLM"],
    )


def _load_source(source: str) -> Tuple[Any, Any, bool]:
    """Load a BERT/RoBERTa tokenizer and masked-LM model; say whether its head is trained."""
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=False)
        if config.model_type not in SOURCE_TYPES:
            raise ModelLoadError(
                f"extend takes a BERT or RoBERTa checkpoint (model_type {' or '.join(SOURCE_TYPES)}), "
                f"not {config.model_type!r}."
            )
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False)
        model, info = AutoModelForMaskedLM.from_pretrained(
            source, config=config, trust_remote_code=False, output_loading_info=True
        )
    except (OSError, KeyError) as err:
        raise ModelLoadError(explain_load_error(source, err)) from None
    head_keys = [k for k in info["missing_keys"] if k.startswith(("cls.", "lm_head."))]
    return tokenizer, model, not head_keys


def _head_names(model_type: str) -> Dict[str, str]:
    return ROBERTA_HEAD if model_type in ("roberta", "longformer") else BERT_HEAD


def map_weights(src_model, tgt_model, src_offset: int, tgt_offset: int, copy_head: bool) -> Dict[str, Any]:
    """Copy every source weight into the long model; fill global projections and new positions.

    RETURNS (Dict[str, Any]): What was copied: counts, and target weights left as initialized.
    """
    src = src_model.base_model.state_dict()
    tgt_base = tgt_model.base_model
    tgt = tgt_base.state_dict()
    new: Dict[str, torch.Tensor] = {}
    for key in tgt:
        source_key = (
            key.replace("query_global", "query").replace("key_global", "key").replace("value_global", "value")
        )
        if key == "embeddings.position_embeddings.weight":
            new[key] = tile_positions(src[key], src_offset, tgt[key].shape[0], tgt_offset)
        elif source_key in src and src[source_key].shape == tgt[key].shape:
            new[key] = src[source_key]
    missing, unexpected = tgt_base.load_state_dict(new, strict=False)
    left = sorted(k for k in missing if not k.endswith("position_ids"))
    if any(not k.startswith("pooler.") for k in left):
        raise ValueError(f"Weights of the long model with no source: {left[:5]}")
    copied_head = False
    if copy_head:
        src_head, tgt_head = (
            _head_names(src_model.config.model_type),
            _head_names(tgt_model.config.model_type),
        )
        src_params = dict(src_model.named_parameters())
        tgt_params = dict(tgt_model.named_parameters())
        with torch.no_grad():
            for part in ("dense", "norm"):
                for leaf in ("weight", "bias"):
                    tgt_params[f"{tgt_head[part]}.{leaf}"].copy_(src_params[f"{src_head[part]}.{leaf}"])
            tgt_params[tgt_head["bias"]].copy_(src_params[src_head["bias"]])
        copied_head = True
    tgt_model.tie_weights()
    return {"copied_tensors": len(new), "left_initialized": left, "mlm_head_copied": copied_head}


def extend_model(
    source: str,
    output_dir: Path,
    *,
    max_length: int = 4096,
    attention: str = "longformer",
    attention_window: int = 512,
    block_size: int = 64,
    num_random_blocks: int = 3,
) -> Dict[str, Any]:
    """Write a long Longformer or BigBird model made from a short BERT or RoBERTa one.

    source (str): A hub id or local directory of a BERT or RoBERTa checkpoint.
    output_dir (Path): Where the long model, its tokenizer and clinlong_extend.json go.
    max_length (int): Wordpieces the long model takes (special tokens included).
    attention (str): "longformer" or "bigbird".
    attention_window (int): Longformer's sliding window (even; 512 in Clinical-Longformer).
    block_size (int): BigBird's block size (64 in Clinical-BigBird).
    num_random_blocks (int): BigBird's random blocks per query block.
    RETURNS (Dict[str, Any]): The record written to clinlong_extend.json.
    """
    from transformers import BigBirdForMaskedLM, LongformerForMaskedLM

    if attention not in ATTENTIONS:
        raise ValueError(f"attention must be one of {ATTENTIONS}, not {attention!r}")
    resolved = resolve_source(source)
    tokenizer, src_model, has_head = _load_source(resolved)
    src_config = src_model.config
    src_offset = position_offset(src_config)
    src_length = int(src_config.max_position_embeddings) - src_offset
    if max_length <= src_length:
        raise ValueError(f"max_length {max_length} is not longer than the source's {src_length} positions")
    config = long_config(
        src_config,
        tokenizer,
        attention=attention,
        max_length=max_length,
        attention_window=attention_window,
        block_size=block_size,
        num_random_blocks=num_random_blocks,
    )
    torch.manual_seed(0)
    model = (LongformerForMaskedLM if attention == "longformer" else BigBirdForMaskedLM)(config)
    copied = map_weights(src_model, model, src_offset, position_offset(config), has_head)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output_dir)
    tokenizer.model_max_length = max_length
    tokenizer.save_pretrained(output_dir)
    record = {
        "source": str(source),
        "source_type": src_config.model_type,
        "source_positions": src_length,
        "attention": attention,
        "max_length": max_length,
        "attention_window": attention_window if attention == "longformer" else None,
        "block_size": block_size if attention == "bigbird" else None,
        **copied,
    }
    (output_dir / RECORD_FILE).write_text(json.dumps(record, indent=2), encoding="utf8")
    return record


def read_record(model_dir: Path) -> Optional[Dict[str, Any]]:
    """RETURNS (Optional[Dict[str, Any]]): clinlong_extend.json of a model made by `extend_model`, if any."""
    path = Path(model_dir) / RECORD_FILE
    return json.loads(path.read_text(encoding="utf8")) if path.exists() else None
