"""`spacy-clinlong.LongTransformerModel.v1`: whole notes through long encoders.

For spacy-transformers' `transformer` factory: its output is a
FullTransformerBatch whose per-doc TransformerData (doc._.trf_data) the
listeners of `ner`, `textcat`, `textcat_multilabel` and `spancat` read
unchanged.
"""
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy
import torch
from spacy.tokens import Doc
from spacy.util import SimpleFrozenDict, registry
from spacy_transformers.data_classes import TransformerData, WordpieceBatch
from thinc.api import Model, torch2xp, xp2torch
from thinc.types import Ragged
from transformers.file_utils import ModelOutput

from ..types import LongBatchT
from .batch import LongTransformerBatch
from .encoder import WindowInput, pad_multiple, plan_batches, run_batch
from .global_attention import GlobalAttentionT, global_cls
from .hf_loading import ModelFacts, load_hf, model_facts
from .long_spans import LongSpansT, align_tokens_to_windows, check_long_spans, configure_long_spans
from .pieces import DocPieces, tokenize_docs
from .shim import HFModelAccess, new_shim


class LongTransformerModel(HFModelAccess, Model):
    """A thinc Model around a Hugging Face encoder that reads whole notes.

    name (str): Hub id or local directory of the encoder.
    get_spans (Callable): A long-span getter (`spacy-clinlong.long_spans.v1`).
    global_attention (Callable): A global-attention chooser (Longformer).
    max_length (Optional[int]): Wordpiece budget per span, special tokens
        included; None or 0 for the model's own (4096, 8192, 512).
    batch_wordpieces (int): The most padded wordpieces per encoder call.
    tokenizer_config (Dict[str, Any]): Keyword arguments for AutoTokenizer.
    transformer_config (Dict[str, Any]): Keyword arguments for AutoConfig.
    mixed_precision (bool): bf16 (or fp16) autocast on GPU; CPU stays fp32.
    grad_scaler_config (Dict[str, Any]): Gradient scaling for fp16 training.
    gradient_checkpointing (bool): Trade compute for memory when training.
    attention (str): "fast" (default): Longformer, BigBird and ModernBERT
        through spacy-clinlong's attention, same weights and outputs; "hf":
        Hugging Face's own.
    torch_compile (bool): torch.compile each encoder layer (dynamic shapes)
        once loaded; the first notes of each new shape pay for compiling.
    """

    def __init__(
        self,
        name: str,
        *,
        get_spans: LongSpansT,
        global_attention: GlobalAttentionT = global_cls,
        max_length: Optional[int] = None,
        batch_wordpieces: int = 16384,
        tokenizer_config: Dict[str, Any] = SimpleFrozenDict(),
        transformer_config: Dict[str, Any] = SimpleFrozenDict(),
        mixed_precision: bool = False,
        grad_scaler_config: Dict[str, Any] = SimpleFrozenDict(),
        gradient_checkpointing: bool = False,
        attention: str = "fast",
        torch_compile: bool = False,
    ):
        shim = new_shim(
            max_length=max_length,
            batch_wordpieces=batch_wordpieces,
            tokenizer_config=tokenizer_config,
            transformer_config=transformer_config,
            mixed_precision=mixed_precision,
            grad_scaler_config=grad_scaler_config,
            attention=attention,
            torch_compile=torch_compile,
        )
        wrapper = Model("clinlong-hf", _wrapper_forward, shims=[shim])
        super().__init__(
            "long-transformer",
            forward,
            init=init,
            layers=[wrapper],
            dims={"nO": None},
            attrs={
                "name": str(name),
                "get_spans": get_spans,
                "global_attention": global_attention,
                "max_length": max_length,
                "batch_wordpieces": int(batch_wordpieces),
                "mixed_precision": bool(mixed_precision),
                "gradient_checkpointing": bool(gradient_checkpointing),
                "attention": attention,
                "torch_compile": bool(torch_compile),
                "has_transformer": False,
                "facts": None,
                # Read by nlp.replace_listeners; imported late (tok2vec imports us).
                "replace_listener": _replace_listener,
                "replace_listener_cfg": _replace_listener_cfg,
            },
        )

    def _copy(self, seen=None) -> "LongTransformerModel":
        # thinc's Model._copy (behind copy(), and behind copying any chain that
        # holds this model, as nlp.replace_listeners does) rebuilds a plain
        # Model; keep the class so the copy still has its properties.
        plain = Model._copy(self, {} if seen is None else seen)
        copied = LongTransformerModel(
            self.attrs["name"],
            get_spans=self.attrs["get_spans"],
            global_attention=self.attrs["global_attention"],
        )
        copied._attrs = plain._attrs
        copied._dims = plain._dims
        copied._layers = plain._layers
        return copied


def _replace_listener(model):
    from .tok2vec import replace_listener

    return replace_listener(model)


def _replace_listener_cfg(tok2vec_model_cfg, listener_model_cfg):
    from .tok2vec import replace_listener_cfg

    return replace_listener_cfg(tok2vec_model_cfg, listener_model_cfg)


def _wrapper_forward(model, X, is_train):  # pragma: no cover - never called
    raise NotImplementedError("The encoder runs through LongTransformerModel's forward.")


def init(model: LongTransformerModel, X=None, Y=None) -> None:
    """Load the tokenizer and encoder named in the config (weights load here,
    never at construction), and read the model's budget and special tokens."""
    if model.attrs["has_transformer"]:
        return
    hf = model.shim._hfmodel
    tokenizer, transformer = load_hf(
        model.attrs["name"], hf._init_tokenizer_config, hf._init_transformer_config
    )
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
    facts = model.facts
    transformer = model.transformer
    _sync_checkpointing(model, transformer, is_train)
    plans = plan_docs(model, docs, facts)
    windows = [w for plan in plans for w in plan.windows]
    batches = plan_batches(
        [len(w) for w in windows],
        budget=model.attrs["batch_wordpieces"],
        pad_multiple=pad_multiple(transformer, facts),
    )
    outputs: List[Optional[torch.Tensor]] = [None] * len(batches)
    where: List[Tuple[int, int]] = [(-1, -1)] * len(windows)
    for b, idx in enumerate(batches):
        outputs[b] = run_batch(
            transformer,
            [windows[i] for i in idx],
            facts,
            is_train=is_train,
            mixed_precision=model.attrs["mixed_precision"],
        )
        for row, i in enumerate(idx):
            where[i] = (b, row)
    doc_data: List[TransformerData] = []
    first = 0
    for plan in plans:
        doc_data.append(
            plan.to_data(outputs, where[first : first + len(plan.windows)], model)
        )
        first += len(plan.windows)
    batch = LongTransformerBatch(
        spans=[plan.spans for plan in plans],
        wordpieces=WordpieceBatch.empty(),
        model_output=ModelOutput(),
        align=Ragged(numpy.zeros((0,), dtype="i"), numpy.zeros((0,), dtype="i")),
        cached_doc_data=doc_data,
    )
    with_output = [i for i, plan in enumerate(plans) if plan.windows]

    def backprop(d_batch: LongTransformerBatch) -> List[Doc]:
        grads = [torch.zeros_like(out) for out in outputs]
        starts = numpy.cumsum([0] + [len(p.windows) for p in plans])
        for doc_i, d_data in zip(with_output, d_batch.doc_data):
            d_hidden = xp2torch(d_data.model_output.last_hidden_state)
            for k, window in enumerate(plans[doc_i].windows):
                b, row = where[starts[doc_i] + k]
                n = len(window)
                grads[b][row, :n] += d_hidden[k, :n].to(grads[b].device, grads[b].dtype)
        _backward(model, outputs, grads)
        return docs

    return batch, backprop


def _backward(model: LongTransformerModel, outputs, grads) -> None:
    """One backward pass over all encoder calls of the batch, scaled for fp16."""
    scaler = model.shim._grad_scaler
    grads = scaler.scale(grads, inplace=True)
    torch.autograd.backward(outputs, grad_tensors=grads)
    params = [p.grad for p in model.transformer.parameters() if p.grad is not None]
    scaler.unscale(params)


def _sync_checkpointing(model: LongTransformerModel, transformer, is_train: bool) -> None:
    if not is_train or not transformer.supports_gradient_checkpointing:
        return
    wanted = model.attrs["gradient_checkpointing"]
    if wanted and not transformer.is_gradient_checkpointing:
        transformer.gradient_checkpointing_enable(
            gradient_checkpointing_kwargs={"use_reentrant": False}
        )
    elif not wanted and transformer.is_gradient_checkpointing:
        transformer.gradient_checkpointing_disable()


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

    def to_data(self, outputs, where, model: LongTransformerModel) -> TransformerData:
        if not self.windows:
            return TransformerData.empty()
        lengths = [len(w) for w in self.windows]
        row_length = max(lengths)
        width = outputs[where[0][0]].shape[-1]
        hidden = torch.zeros((len(self.windows), row_length, width), dtype=torch.float32)
        hidden = hidden.to(outputs[where[0][0]].device)
        for k, (b, row) in enumerate(where):
            hidden[k, : lengths[k]] = outputs[b][row, : lengths[k]].detach()
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


@registry.architectures("spacy-clinlong.LongTransformerModel.v1")
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
    RETURNS (Model[List[Doc], FullTransformerBatch]): The model.
    """
    return LongTransformerModel(
        name,
        get_spans=get_spans if get_spans is not None else configure_long_spans(),
        global_attention=global_attention if global_attention is not None else global_cls,
        max_length=max_length,
        batch_wordpieces=batch_wordpieces,
        tokenizer_config=tokenizer_config,
        transformer_config=transformer_config,
        mixed_precision=mixed_precision,
        grad_scaler_config=grad_scaler_config,
        gradient_checkpointing=gradient_checkpointing,
        attention=attention,
        torch_compile=torch_compile,
    )
