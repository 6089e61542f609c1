"""Loading Hugging Face encoders by hub id or local directory, with clear errors."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

# Model types whose position ids start after the padding index (RoBERTa
# family): their budget is max_position_embeddings - pad_token_id - 1.
_OFFSET_POSITIONS = {"roberta", "longformer", "xlm-roberta", "camembert", "bigbird_pegasus"}


class ModelLoadError(ValueError):
    """A transformer named in the config could not be loaded."""


@dataclass
class ModelFacts:
    """What the architecture needs to know about a loaded encoder.

    model_type (str): config.model_type ("longformer", "big_bird", ...).
    max_length (int): The wordpiece budget of one span, special tokens included.
    prefix_ids (List[int]): Special token ids before the content (CLS).
    suffix_ids (List[int]): Special token ids after the content (SEP).
    pad_id (int): The padding id.
    pad_multiple (int): Spans are padded to a multiple of this.
    """

    model_type: str
    max_length: int
    prefix_ids: List[int]
    suffix_ids: List[int]
    pad_id: int
    pad_multiple: int

    def to_dict(self) -> Dict[str, Any]:
        return dict(self.__dict__)


def load_hf(
    name: Union[str, Path],
    tok_config: Dict[str, Any],
    trf_config: Dict[str, Any],
    *,
    auto_cls: Optional[str] = None,
) -> Tuple[Any, Any]:
    """Load a fast tokenizer and an encoder, never with remote code.

    name (Union[str, Path]): A hub id ("yikuan8/Clinical-Longformer") or a
        local directory (one made by `python -m spacy_clinlong make-model`).
    tok_config (Dict[str, Any]): Keyword arguments for AutoTokenizer.
    trf_config (Dict[str, Any]): Keyword arguments for AutoConfig.
    auto_cls (Optional[str]): The transformers Auto class that builds the
        model, e.g. "AutoModelForQuestionAnswering"; None for AutoModel (the
        bare encoder). A head the checkpoint lacks is newly initialized.
    RETURNS (Tuple[PreTrainedTokenizerFast, PreTrainedModel]): Tokenizer, model.
    """
    import transformers
    from transformers import AutoConfig, AutoTokenizer

    if auto_cls is not None and not (auto_cls.startswith("AutoModel") and hasattr(transformers, auto_cls)):
        raise ModelLoadError(f"Unknown transformers Auto class {auto_cls!r}.")
    model_cls = getattr(transformers, auto_cls or "AutoModel")

    source = resolve_source(name)
    tok_config = {k: v for k, v in dict(tok_config).items() if k != "trust_remote_code"}
    trf_config = {k: v for k, v in dict(trf_config).items() if k != "trust_remote_code"}
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=False, **trf_config)
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=False, **tok_config)
        transformer = model_cls.from_pretrained(source, config=config, trust_remote_code=False)
    except (OSError, ValueError, KeyError) as err:
        raise ModelLoadError(explain_load_error(name, err)) from None
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(
            f"The tokenizer of {str(name)!r} is not a fast (Rust) tokenizer; "
            "spacy-clinlong needs character offsets. Set tokenizer_config = "
            '{"use_fast": true} and make sure tokenizer.json (or files a fast '
            "tokenizer can be converted from) are present."
        )
    return tokenizer, transformer


def resolve_source(name: Union[str, Path]) -> str:
    """Check a model name before loading: an existing directory must hold
    config.json; a path-like name that does not exist is an error; anything
    else is a hub id.

    name (Union[str, Path]): Hub id or local directory.
    RETURNS (str): The resolved directory, or the hub id unchanged.
    """
    text = str(name)
    if not text.strip():
        raise ModelLoadError(
            "No transformer given: set [components.transformer.model] name to a "
            "Hugging Face hub id or a local model directory."
        )
    path = Path(text).expanduser()
    looks_local = isinstance(name, Path) or text.startswith((".", "/", "~")) or "\\" in text
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(f"Transformer path {text!r} is a file; expected a model directory.")
        if not (path / "config.json").exists():
            raise ModelLoadError(
                f"Transformer directory {text!r} has no config.json; expected a "
                "directory written by save_pretrained (config.json, tokenizer "
                "files, model.safetensors or pytorch_model.bin)."
            )
        return str(path.resolve())
    if looks_local:
        raise ModelLoadError(f"Transformer directory {text!r} does not exist.")
    return text


def explain_load_error(name: Union[str, Path], err: Exception) -> str:
    """One message for a model that failed to load: the error's first line and
    what `name` must be.

    name (Union[str, Path]): Hub id or local directory.
    err (Exception): What loading raised.
    RETURNS (str): The message.
    """
    first_line = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
    return (
        f"Could not load the transformer {str(name)!r} ({type(err).__name__}: "
        f"{first_line}). 'name' must be a local directory with config.json, "
        "tokenizer files and weights (python -m spacy_clinlong make-model "
        "builds one offline), or a Hugging Face hub id such as "
        "'yikuan8/Clinical-Longformer', which needs network access or a copy "
        "in the Hugging Face cache."
    )


def model_facts(tokenizer, transformer, max_length: Optional[int]) -> ModelFacts:
    """Read the budget, special tokens and padding rule of a loaded encoder.

    tokenizer (PreTrainedTokenizerFast): The tokenizer.
    transformer (PreTrainedModel): The encoder.
    max_length (Optional[int]): The configured budget; None for the model's own.
    RETURNS (ModelFacts): The facts.
    """
    config = transformer.config
    model_type = config.model_type
    own = int(config.max_position_embeddings)
    if model_type in _OFFSET_POSITIONS:
        own -= int(config.pad_token_id) + 1
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and 0 < tok_max < own:
        own = tok_max
    if max_length is None or max_length == 0:
        max_length = own
    if max_length > own:
        raise ValueError(
            f"max_length {max_length} exceeds what {model_type} can take "
            f"({own} wordpieces: max_position_embeddings "
            f"{config.max_position_embeddings})"
        )
    prefix, suffix = special_template(tokenizer)
    if max_length <= len(prefix) + len(suffix) + 1:
        raise ValueError(
            f"max_length {max_length} leaves no room for content after "
            f"{len(prefix) + len(suffix)} special tokens"
        )
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = int(config.pad_token_id or 0)
    if model_type == "longformer":
        window = config.attention_window
        pad_multiple = max(window) if isinstance(window, (list, tuple)) else int(window)
    elif model_type == "big_bird":
        pad_multiple = int(config.block_size)
    else:
        pad_multiple = 8
    return ModelFacts(model_type, int(max_length), prefix, suffix, int(pad_id), pad_multiple)


def special_template(tokenizer) -> Tuple[List[int], List[int]]:
    """The special token ids a tokenizer puts before and after one sequence.

    Read off the tokenizer itself, so BERT's [CLS]/[SEP], RoBERTa's <s>/</s>
    and any post-processor a checkpoint ships are handled alike.
    tokenizer (PreTrainedTokenizerFast): The tokenizer.
    RETURNS (Tuple[List[int], List[int]]): Prefix ids, suffix ids.
    """
    probe = "a b"
    plain = tokenizer(probe, add_special_tokens=False)["input_ids"]
    full = tokenizer(probe, add_special_tokens=True)["input_ids"]
    for i in range(len(full) - len(plain) + 1):
        if full[i : i + len(plain)] == plain:
            return list(full[:i]), list(full[i + len(plain) :])
    raise ModelLoadError("Cannot locate the content between the tokenizer's special tokens.")


@dataclass
class PairTemplate:
    """The special tokens a tokenizer puts around a pair of sequences.

    prefix_ids (List[int]): Before the first sequence (CLS).
    middle_ids (List[int]): Between the two (SEP, or RoBERTa's </s></s>).
    suffix_ids (List[int]): After the second (SEP).
    second_type_id (Optional[int]): The token type id of the second sequence
        and its suffix; None when the model takes no token type ids.
    """

    prefix_ids: List[int]
    middle_ids: List[int]
    suffix_ids: List[int]
    second_type_id: Optional[int]

    def to_dict(self) -> Dict[str, Any]:
        return dict(self.__dict__)


def pair_template(tokenizer) -> PairTemplate:
    """The special token ids a tokenizer puts around a pair of sequences.

    Read off the tokenizer's own pair template, like `special_template` for one
    sequence: BERT's [CLS] A [SEP] B [SEP], RoBERTa's <s> A </s></s> B </s>.
    tokenizer (PreTrainedTokenizerFast): The tokenizer.
    RETURNS (PairTemplate): The template.
    """
    first, second = "a b", "c d"
    a = tokenizer(first, add_special_tokens=False)["input_ids"]
    b = tokenizer(second, add_special_tokens=False)["input_ids"]
    full = tokenizer(first, second, add_special_tokens=True, return_token_type_ids=True)
    ids = list(full["input_ids"])
    for i in range(len(ids) - len(a) + 1):
        if ids[i : i + len(a)] != a:
            continue
        rest = i + len(a)
        for j in range(rest, len(ids) - len(b) + 1):
            if ids[j : j + len(b)] == b:
                second_type = None
                if "token_type_ids" in tokenizer.model_input_names and full.get("token_type_ids"):
                    second_type = int(full["token_type_ids"][j])
                return PairTemplate(ids[:i], ids[rest:j], ids[j + len(b) :], second_type)
    raise ModelLoadError("Cannot locate the two sequences between the tokenizer's special tokens.")
