"""`spacy-clinlong.LongTransformerModel.v1`: whole notes through long encoders.

For spacy-transformers' `transformer` factory: its output is a
FullTransformerBatch whose per-doc TransformerData (doc._.trf_data) the
listeners of `ner`, `textcat`, `textcat_multilabel` and `spancat` read
unchanged.
"""

from dataclasses import replace
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy
import torch
from spacy.tokens import Doc
from spacy.util import SimpleFrozenDict, registry
from spacy_transformers.data_classes import TransformerData, WordpieceBatch
from spacy_transformers.layers import split_trf_batch
from thinc.api import Model, chain, torch2xp, xp2torch
from thinc.types import Ragged
from transformers.utils import ModelOutput

from .batch import LongTransformerBatch
from .encoder import (
    EncodedWindows,
    EncoderSettings,
    WindowInput,
    encode_windows,
    load_encoder,
    sync_checkpointing,
    unscale_grads,
)
from .global_attention import global_cls
from .hf_loading import ModelFacts, model_facts
from .long_spans import align_tokens_to_windows, check_long_spans
from .pieces import DocPieces, tokenize_docs
from .shim import HFModelAccess
from .types import GlobalAttentionT, LongBatchT, LongSpansT

MODEL_ARCH = "spacy-clinlong.LongTransformerModel.v1"
TOK2VEC_ARCH = "spacy-clinlong.Tok2VecLongTransformer.v1"


class LongTransformerModel(HFModelAccess, Model):
    """A thinc Model around a Hugging Face encoder that reads whole notes.

    settings (EncoderSettings): The encoder settings; global_attention None
        gives CLS only.
    """

    def __init__(self, settings: EncoderSettings):
        if settings.global_attention is None:
            settings = replace(settings, global_attention=global_cls)
        wrapper = Model("clinlong-hf", _wrapper_forward, shims=[settings.make_shim()])
        super().__init__(
            "long-transformer",
            forward,
            init=init,
            layers=[wrapper],
            dims={"nO": None},
            attrs={
                **settings.model_attrs(),
                "has_transformer": False,
                "facts": None,
                # Read by nlp.replace_listeners.
                "replace_listener": replace_listener,
                "replace_listener_cfg": replace_listener_cfg,
            },
        )

    def _copy(self, seen=None) -> "LongTransformerModel":
        # thinc's Model._copy (behind copy(), and behind copying any chain that
        # holds this model, as nlp.replace_listeners does) rebuilds a plain
        # Model; keep the class so the copy still has its properties.
        plain = Model._copy(self, {} if seen is None else seen)
        copied = LongTransformerModel(
            EncoderSettings(
                self.attrs["name"],
                get_spans=self.attrs["get_spans"],
                global_attention=self.attrs["global_attention"],
            )
        )
        copied._attrs = plain._attrs
        copied._dims = plain._dims
        copied._layers = plain._layers
        return copied


def replace_listener(model: Model) -> Model:
    """The model a listener is replaced with: the transformer, split per doc.

    model (Model): The transformer component's model.
    RETURNS (Model): The component's own copy of it, giving one batch per doc.
    """
    return chain(model, split_trf_batch())


def replace_listener_cfg(
    tok2vec_model_cfg: Dict[str, Any], listener_model_cfg: Dict[str, Any]
) -> Dict[str, Any]:
    """The config of a replaced listener: our tok2vec architecture with the
    transformer's settings and the listener's pooling and grad_factor.

    tok2vec_model_cfg (Dict[str, Any]): The transformer component's model config.
    listener_model_cfg (Dict[str, Any]): The listener's config.
    RETURNS (Dict[str, Any]): The config for the component's tok2vec.
    """
    result = dict(tok2vec_model_cfg)
    if tok2vec_model_cfg.get("@architectures") == MODEL_ARCH and "TransformerListener" in str(
        listener_model_cfg.get("@architectures", "")
    ):
        result["@architectures"] = TOK2VEC_ARCH
        for key in ("pooling", "grad_factor"):
            if key in listener_model_cfg and key not in result:
                result[key] = listener_model_cfg[key]
    return result


def _wrapper_forward(model, X, is_train):  # pragma: no cover - never called
    raise NotImplementedError("The encoder runs through LongTransformerModel's forward.")


def init(model: LongTransformerModel, X=None, Y=None) -> None:
    """Load the tokenizer and encoder named in the config (weights load here,
    never at construction), and read the model's budget and special tokens."""
    if model.attrs["has_transformer"]:
        return
    tokenizer, transformer = load_encoder(model)
    set_transformer(model, tokenizer, transformer)


def set_transformer(model: LongTransformerModel, tokenizer, transformer) -> None:
    """Install a loaded tokenizer and encoder into the model.

    model (LongTransformerModel): The model.
    tokenizer (PreTrainedTokenizerFast): The tokenizer.
    transformer (PreTrainedModel): The encoder.
    """
    facts = model_facts(tokenizer, transformer, model.attrs["max_length"])
    check_long_spans(
        model.attrs["get_spans"], facts.max_length - len(facts.prefix_ids) - len(facts.suffix_ids)
    )
    model.shim.set_hf(tokenizer, transformer)
    model.attrs["facts"] = facts.to_dict()
    model.attrs["has_transformer"] = True
    model.set_dim("nO", int(transformer.config.hidden_size))


def forward(
    model: LongTransformerModel, docs: List[Doc], is_train: bool
) -> Tuple[LongTransformerBatch, Callable]:
    if not model.attrs["has_transformer"] or model.transformer is None:
        raise ValueError(
            "The transformer is not loaded: call nlp.initialize() before using "
            "a new pipeline, or load a trained one with spacy.load()."
        )
    sync_checkpointing(model, is_train)
    plans = plan_docs(model, docs, model.facts)
    starts = numpy.cumsum([0] + [len(p.windows) for p in plans])
    encoded = encode_windows(model, [w for plan in plans for w in plan.windows], is_train=is_train)
    doc_data = [plan.to_data(encoded, int(first), model) for plan, first in zip(plans, starts)]
    batch = LongTransformerBatch(
        spans=[plan.spans for plan in plans],
        wordpieces=WordpieceBatch.empty(),
        model_output=ModelOutput(),
        align=Ragged(numpy.zeros((0,), dtype="i"), numpy.zeros((0,), dtype="i")),
        cached_doc_data=doc_data,
    )
    with_output = [i for i, plan in enumerate(plans) if plan.windows]

    def backprop(d_batch: LongTransformerBatch) -> List[Doc]:
        d_windows = []
        for doc_i, d_data in zip(with_output, d_batch.doc_data):
            d_hidden = xp2torch(d_data.model_output.last_hidden_state)
            for k, window in enumerate(plans[doc_i].windows):
                d_windows.append((int(starts[doc_i]) + k, d_hidden[k, : len(window)]))
        encoded.backward(model, d_windows)
        unscale_grads(model)
        return docs

    return batch, backprop


class DocPlan:
    """One doc's windows, as model inputs, and where its tokens read from."""

    def __init__(self, doc: Doc, pieces: DocPieces, spans: List[Tuple[int, int]], facts, chooser):
        self.doc = doc
        self.pieces = pieces
        self.bounds = spans if len(doc) else []
        prefix = numpy.asarray(facts.prefix_ids, dtype="int64")
        suffix = numpy.asarray(facts.suffix_ids, dtype="int64")
        self.n_prefix = len(facts.prefix_ids)
        self.windows: List[WindowInput] = []
        self.spans = []
        for start, end in self.bounds:
            span = _window_span(doc, pieces, start, end)
            glob: List[int] = []
            if facts.model_type == "longformer":
                glob = _global_positions(chooser(span), pieces, start, end, self.n_prefix)
            ids = numpy.concatenate([prefix, pieces.ids[start:end], suffix])
            self.windows.append(WindowInput(ids=ids, global_positions=glob))
            self.spans.append(span)

    def to_data(self, encoded: EncodedWindows, first: int, model: LongTransformerModel) -> TransformerData:
        """The doc's TransformerData, each window padded to its longest only.

        encoded (EncodedWindows): The encoder's output for the batch's windows.
        first (int): Index of this doc's first window among them.
        model (LongTransformerModel): The model.
        RETURNS (TransformerData): The doc's data (empty without windows).
        """
        if not self.windows:
            return TransformerData.empty()
        lengths = [len(w) for w in self.windows]
        row_length = max(lengths)
        head = encoded.rows(first, lengths[0])
        hidden = torch.zeros((len(self.windows), row_length, head.shape[-1]), dtype=torch.float32)
        hidden = hidden.to(head.device)
        for k in range(len(self.windows)):
            hidden[k, : lengths[k]] = encoded.rows(first + k, lengths[k]).detach()
        alignment = align_tokens_to_windows(
            self.pieces, self.bounds, n_prefix=self.n_prefix, row_length=row_length
        )
        ids = numpy.zeros((len(self.windows), row_length), dtype="int64")
        mask = numpy.zeros((len(self.windows), row_length), dtype="float32")
        for k, window in enumerate(self.windows):
            ids[k, : lengths[k]] = window.ids
            mask[k, : lengths[k]] = 1.0
        wordpieces = WordpieceBatch(
            strings=[model.tokenizer.convert_ids_to_tokens(w.ids.tolist()) for w in self.windows],
            input_ids=ids,
            attention_mask=mask,
            lengths=lengths,
            token_type_ids=None,
        )
        return TransformerData(
            wordpieces=wordpieces,
            model_output=ModelOutput(last_hidden_state=torch2xp(hidden)),
            align=Ragged(
                model.ops.asarray1i(alignment.align_data),
                model.ops.asarray1i(alignment.align_lengths),
            ),
        )


def plan_docs(model: LongTransformerModel, docs: List[Doc], facts: ModelFacts) -> List[DocPlan]:
    """Tokenize docs and cut them into windows within the wordpiece budget.

    model (LongTransformerModel): The model.
    docs (List[Doc]): The docs.
    facts (ModelFacts): The model facts.
    RETURNS (List[DocPlan]): One plan per doc.
    """
    budget = facts.max_length - len(facts.prefix_ids) - len(facts.suffix_ids)
    get_spans = model.attrs["get_spans"]
    chooser = model.attrs["global_attention"]
    all_pieces = tokenize_docs(model.tokenizer, docs)
    return [
        DocPlan(doc, pieces, get_spans(doc, pieces, budget), facts, chooser)
        for doc, pieces in zip(docs, all_pieces)
    ]


def _window_span(doc: Doc, pieces: DocPieces, start: int, end: int):
    if end <= start:
        return doc[:]
    first = int(pieces.first_token[start])
    last = int(pieces.last_token[end - 1])
    return doc[first : last + 1]


def _global_positions(selection, pieces: DocPieces, start: int, end: int, n_prefix: int) -> List[int]:
    positions = [0] if selection.cls and n_prefix else []
    for i in selection.tokens:
        wp = int(pieces.token_first_wp[i]) if 0 <= i < pieces.n_tokens else -1
        if start <= wp < end:
            positions.append(n_prefix + wp - start)
    return sorted(set(positions))


@registry.architectures(MODEL_ARCH)
def create_long_transformer_model_v1(
    name: str,
    get_spans: Optional[LongSpansT] = None,
    global_attention: Optional[GlobalAttentionT] = None,
    max_length: Optional[int] = None,
    batch_wordpieces: int = 16384,
    tokenizer_config: Dict[str, Any] = SimpleFrozenDict(),
    transformer_config: Dict[str, Any] = SimpleFrozenDict(),
    mixed_precision: bool = False,
    grad_scaler_config: Dict[str, Any] = SimpleFrozenDict(),
    gradient_checkpointing: bool = False,
    attention: str = "fast",
    torch_compile: bool = False,
    quantize: Optional[str] = None,
) -> LongBatchT:
    """A Hugging Face encoder over whole clinical notes, for spacy-transformers'
    `transformer` component.

    name (str): Hub id ("yikuan8/Clinical-Longformer") or local directory.
    get_spans (Callable): Long-span getter; default `spacy-clinlong.long_spans.v1`.
    global_attention (Callable): Longformer global attention chooser; default
        CLS only (`spacy-clinlong.global_attention_cls.v1`).
    max_length (Optional[int]): Wordpiece budget per span (special tokens
        included); null or 0 for the model's own.
    batch_wordpieces (int): The most padded wordpieces per encoder call.
    tokenizer_config (Dict[str, Any]): Settings for AutoTokenizer.
    transformer_config (Dict[str, Any]): Settings for AutoConfig.
    mixed_precision (bool): bf16/fp16 autocast on GPU.
    grad_scaler_config (Dict[str, Any]): Gradient scaler settings (fp16).
    gradient_checkpointing (bool): Recompute activations in the backward pass.
    attention (str): "fast" for attention that computes only what Longformer,
        BigBird and ModernBERT need (same weights and outputs as Hugging
        Face's, less time and memory), "hf" for its own.
    torch_compile (bool): torch.compile each encoder layer once loaded.
    quantize (Optional[str]): "int8" to predict on CPU with int8 Linear layers
        (dynamic quantization; training and saved weights stay fp32); null: fp32.
    RETURNS (Model[List[Doc], FullTransformerBatch]): The model.
    """
    return LongTransformerModel(
        EncoderSettings(
            name,
            get_spans=get_spans,
            global_attention=global_attention,
            max_length=max_length,
            batch_wordpieces=batch_wordpieces,
            tokenizer_config=tokenizer_config,
            transformer_config=transformer_config,
            mixed_precision=mixed_precision,
            grad_scaler_config=grad_scaler_config,
            gradient_checkpointing=gradient_checkpointing,
            attention=attention,
            torch_compile=torch_compile,
            quantize=quantize,
        )
    )
