"""`spacy-clinlong.LongQAModel.v1`: question/note pairs through an extractive QA model.

Each (note, question) pair is encoded with the tokenizer's own pair template,
[CLS] question [SEP] note-window [SEP] (RoBERTa: <s> q </s></s> note </s>).
A note longer than the budget left after the question is read in overlapping
windows cut by the long-span getter (`spacy-clinlong.long_spans.v1`), counted
in wordpieces, so every window is the note's own wordpieces. Longformer gets
global attention on CLS and the question, as `LongformerForQuestionAnswering`
expects. The output is the start/end logits of every window.

Answers are read in wordpieces and given back as character offsets (the
fast tokenizer's offset mapping), so an answer that starts or ends inside a
spaCy token stays reachable. Training runs the question/window pairs forward
and backward in chunks of at most `backprop_wordpieces` padded wordpieces
(`train_windows`), so its memory does not grow with questions x windows.
"""

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy
import torch
from spacy.tokens import Doc
from spacy.util import SimpleFrozenDict, registry
from thinc.api import Model

from .encoder import (
    EncodedWindows,
    EncoderSettings,
    WindowInput,
    encode_windows,
    load_encoder,
    pad_multiple,
    plan_windows,
    round_up,
    sync_checkpointing,
    unscale_grads,
)
from .hf_loading import PairTemplate, model_facts, pair_template
from .pieces import DocPieces, align_pieces
from .shim import HFModelAccess
from .types import LongSpansT

AUTO_CLS = "AutoModelForQuestionAnswering"
QA_ARCH = "spacy-clinlong.LongQAModel.v1"


@dataclass
class QAQuery:
    """One question about one doc.

    doc (Doc): The note.
    question (str): The question.
    """

    doc: Doc
    question: str


@dataclass
class PairWindow:
    """One encoder row: a question and one window of its note.

    query (int): Index of the query in the batch.
    start (int): First note wordpiece of the window.
    end (int): End (exclusive) note wordpiece of the window.
    offset (int): Row position of the window's first note wordpiece.
    input (WindowInput): The ids, global positions and type ids.
    """

    query: int
    start: int
    end: int
    offset: int
    input: WindowInput


@dataclass
class NotePieces(DocPieces):
    """A note's wordpieces, aligned to its tokens and to its characters.

    char_offsets (numpy.ndarray): (n_wordpieces, 2) [start, end) character
        offsets of each wordpiece in the note, from the fast tokenizer.
    text (str): The note's text.
    """

    char_offsets: numpy.ndarray = None  # type: ignore[assignment]
    text: str = ""

    def char_span_pieces(self, start: int, end: int) -> Optional[Tuple[int, int]]:
        """The first and last (inclusive) wordpieces overlapping characters [start, end).

        start (int): First character.
        end (int): End character (exclusive).
        RETURNS (Optional[Tuple[int, int]]): The wordpieces, or None when no
            wordpiece overlaps the characters (whitespace only, out of range).
        """
        off = self.char_offsets
        hit = numpy.flatnonzero((off[:, 0] < end) & (off[:, 1] > start))
        if hit.size == 0:
            return None
        return int(hit[0]), int(hit[-1])


def tokenize_notes(tokenizer, docs: Sequence[Doc]) -> List[NotePieces]:
    """Tokenize whole notes into wordpieces aligned to their tokens and characters.

    tokenizer (PreTrainedTokenizerFast): A fast Hugging Face tokenizer.
    docs (Sequence[Doc]): The notes.
    RETURNS (List[NotePieces]): One alignment per note.
    """
    if not docs:
        return []
    enc = tokenizer(
        [doc.text for doc in docs],
        add_special_tokens=False,
        return_offsets_mapping=True,
        return_attention_mask=False,
        return_token_type_ids=False,
        verbose=False,
    )
    out = []
    for doc, ids, offsets in zip(docs, enc["input_ids"], enc["offset_mapping"]):
        pieces = align_pieces(doc, ids, offsets)
        chars = numpy.asarray(offsets, dtype="int64").reshape(-1, 2)
        out.append(NotePieces(**vars(pieces), char_offsets=chars, text=doc.text))
    return out


@dataclass
class QAOutput:
    """Start/end logits of every window of a batch of queries.

    windows (List[PairWindow]): The windows, grouped by query in order.
    pieces (List[NotePieces]): The note wordpieces of each query.
    logits (List[numpy.ndarray]): Per window, (row length, 2) float32 start
        and end logits.
    """

    windows: List[PairWindow]
    pieces: List[NotePieces]
    logits: List[numpy.ndarray]


class LongQAModel(HFModelAccess, Model):
    """A thinc Model around a Hugging Face extractive QA model.

    settings (EncoderSettings): The encoder settings (global_attention unused:
        CLS and the question get global attention).
    max_query_length (int) and backprop_wordpieces (Optional[int]): as
        `create_long_qa_model_v1` (`spacy-clinlong.LongQAModel.v1`) documents them.
    """

    def __init__(
        self,
        settings: EncoderSettings,
        *,
        max_query_length: int = 64,
        backprop_wordpieces: Optional[int] = None,
    ):
        if max_query_length < 1:
            raise ValueError(f"max_query_length must be >= 1, got {max_query_length}")
        if backprop_wordpieces is not None and backprop_wordpieces < 0:
            raise ValueError(f"backprop_wordpieces must be >= 0 (0: no limit), got {backprop_wordpieces}")
        wrapper = Model("clinlong-hf-qa", _wrapper_forward, shims=[settings.make_shim(auto_cls=AUTO_CLS)])
        super().__init__(
            "long-qa",
            forward,
            init=init,
            layers=[wrapper],
            attrs={
                **settings.model_attrs(),
                "max_query_length": int(max_query_length),
                "backprop_wordpieces": backprop_wordpieces,
                "has_transformer": False,
                "facts": None,
                "template": None,
            },
        )

    @property
    def template(self) -> PairTemplate:
        _ = self.facts  # raises when not loaded
        return PairTemplate(**self.attrs["template"])


def _wrapper_forward(model, X, is_train):  # pragma: no cover - never called
    raise NotImplementedError("The QA model runs through LongQAModel's forward.")


def init(model: LongQAModel, X=None, Y=None) -> None:
    """Load the tokenizer and QA model (weights load here, not at construction)."""
    if model.attrs["has_transformer"]:
        return
    tokenizer, transformer = load_encoder(model, auto_cls=AUTO_CLS)
    facts = model_facts(tokenizer, transformer, model.attrs["max_length"])
    template = pair_template(tokenizer)
    specials = len(template.prefix_ids) + len(template.middle_ids) + len(template.suffix_ids)
    room = facts.max_length - specials - model.attrs["max_query_length"]
    if room < 16:
        raise ValueError(
            f"max_length {facts.max_length} leaves {room} wordpieces of note after "
            f"{specials} special tokens and a question of up to "
            f"{model.attrs['max_query_length']} (max_query_length); need at least 16"
        )
    model.shim.set_hf(tokenizer, transformer)
    model.attrs["facts"] = facts.to_dict()
    model.attrs["template"] = template.to_dict()
    model.attrs["has_transformer"] = True


def encode_queries(
    model: LongQAModel, queries: Sequence[QAQuery]
) -> Tuple[List[PairWindow], List[NotePieces]]:
    """Tokenize queries and cut each into question/note-window pairs.

    An empty question, or a note without wordpieces (empty or whitespace),
    gives a query no windows: it has no answer.
    model (LongQAModel): The loaded model.
    queries (Sequence[QAQuery]): The queries.
    RETURNS (Tuple[List[PairWindow], List[NotePieces]]): Windows in query
        order, and the note wordpieces of each query.
    """
    facts = model.facts
    template = model.template
    docs: Dict[int, Doc] = {}
    for q in queries:
        docs.setdefault(id(q.doc), q.doc)
    doc_pieces = dict(zip(docs, tokenize_notes(model.tokenizer, list(docs.values()))))
    pieces = [doc_pieces[id(q.doc)] for q in queries]
    # A blank question asks nothing; a blank note holds no answer.
    questions = [q.question if isinstance(q.question, str) and q.question.strip() else "" for q in queries]
    q_ids = (
        model.tokenizer(questions, add_special_tokens=False, verbose=False)["input_ids"] if questions else []
    )
    prefix = numpy.asarray(template.prefix_ids, dtype="int64")
    middle = numpy.asarray(template.middle_ids, dtype="int64")
    suffix = numpy.asarray(template.suffix_ids, dtype="int64")
    longformer = facts.model_type == "longformer"
    windows: List[PairWindow] = []
    for qi, query in enumerate(queries):
        qid = numpy.asarray(q_ids[qi][: model.attrs["max_query_length"]], dtype="int64")
        if qid.size == 0 or pieces[qi].n_wordpieces == 0 or not query.doc.text.strip():
            continue
        head = numpy.concatenate([prefix, qid, middle])
        budget = facts.max_length - len(head) - len(suffix)
        for start, end in model.attrs["get_spans"](query.doc, pieces[qi], budget):
            if end <= start:
                continue
            ids = numpy.concatenate([head, pieces[qi].ids[start:end], suffix])
            glob = list(range(len(prefix) + len(qid))) if longformer else []
            types = None
            if template.second_type_id is not None:
                types = numpy.zeros_like(ids)
                types[len(head) :] = template.second_type_id
            windows.append(PairWindow(qi, start, end, len(head), WindowInput(ids, glob, types)))
    return windows, pieces


def _read_logits(output) -> torch.Tensor:
    return torch.stack([output.start_logits, output.end_logits], dim=-1)


def _logits_of(
    windows: List[PairWindow], encoded: EncodedWindows, order: Sequence[int]
) -> List[numpy.ndarray]:
    return [encoded.rows(i, len(windows[i].input)).detach().cpu().numpy().astype("float32") for i in order]


def forward(model: LongQAModel, queries: List[QAQuery], is_train: bool) -> Tuple[QAOutput, Callable]:
    sync_checkpointing(model, is_train)
    windows, pieces = encode_queries(model, queries)
    order = list(range(len(windows)))
    encoded = encode_windows(model, [w.input for w in windows], is_train=is_train, read=_read_logits)
    logits = _logits_of(windows, encoded, order)

    def backprop(d_logits: List[numpy.ndarray]) -> List[QAQuery]:
        # Holds the whole batch's activations: training goes through train_windows.
        encoded.backward(model, zip(order, d_logits))
        if encoded.outputs:
            unscale_grads(model)
        return queries

    return QAOutput(windows, pieces, logits), backprop


GetGrads = Callable[[List[int], List[numpy.ndarray]], Tuple[float, List[numpy.ndarray]]]


def train_windows(model: LongQAModel, windows: List[PairWindow], get_grads: GetGrads) -> Dict[str, float]:
    """Run question/window pairs forward and backward in bounded chunks.

    Windows are planned into encoder batches of at most batch_wordpieces
    padded wordpieces, and the batches into chunks of at most
    backprop_wordpieces; each chunk runs forward, asks get_grads for its loss
    and logit gradients, and runs backward at once, so the activations of one
    chunk are all that is ever held (a window longer than a chunk runs
    alone). Gradients add up in the torch parameters
    until the optimizer step (finish_update). get_grads must not depend on the
    other chunks (a loss that is a sum over windows, with weights fixed
    beforehand), so the loss is the same as with one chunk.
    model (LongQAModel): The loaded model.
    windows (List[PairWindow]): From `encode_queries`.
    get_grads (Callable[[List[int], List[numpy.ndarray]], Tuple[float, List[numpy.ndarray]]]):
        Window indices and their (row length, 2) logits -> loss and logit gradients.
    RETURNS (Dict[str, float]): "loss" (summed over chunks), "chunks" and
        "peak_wordpieces" (the most padded wordpieces held at once).
    """
    stats = {"loss": 0.0, "chunks": 0, "peak_wordpieces": 0}
    if not windows:
        return stats
    sync_checkpointing(model, True)
    batch_budget = model.attrs["batch_wordpieces"]
    chunk_budget = model.attrs.get("backprop_wordpieces")
    if chunk_budget is None:
        chunk_budget = batch_budget
    if chunk_budget > 0:
        batch_budget = min(batch_budget, chunk_budget)
    multiple = pad_multiple(model.transformer, model.facts)
    inputs = [w.input for w in windows]
    batches = plan_windows(model, inputs, batch_budget)
    sizes = [len(b) * round_up(max(len(windows[i].input) for i in b), multiple) for b in batches]
    chunks: List[List[int]] = []
    held = 0
    for b, size in enumerate(sizes):
        if not chunks or (chunk_budget > 0 and held + size > chunk_budget):
            chunks.append([])
            held = 0
        chunks[-1].append(b)
        held += size
    for chunk in chunks:
        chunk_batches = [batches[b] for b in chunk]
        stats["peak_wordpieces"] = max(stats["peak_wordpieces"], sum(sizes[b] for b in chunk))
        encoded = encode_windows(model, inputs, chunk_batches, is_train=True, read=_read_logits)
        order = [i for idx in chunk_batches for i in idx]
        loss, d_logits = get_grads(order, _logits_of(windows, encoded, order))
        encoded.backward(model, zip(order, d_logits))
        del encoded
        stats["loss"] += float(loss)
        stats["chunks"] += 1
    unscale_grads(model)
    return stats


@registry.architectures(QA_ARCH)
def create_long_qa_model_v1(
    name: str,
    get_spans: Optional[LongSpansT] = None,
    max_length: Optional[int] = None,
    max_query_length: int = 64,
    batch_wordpieces: int = 16384,
    backprop_wordpieces: Optional[int] = None,
    tokenizer_config: Dict[str, Any] = SimpleFrozenDict(),
    transformer_config: Dict[str, Any] = SimpleFrozenDict(),
    mixed_precision: bool = False,
    grad_scaler_config: Dict[str, Any] = SimpleFrozenDict(),
    gradient_checkpointing: bool = False,
    attention: str = "fast",
    torch_compile: bool = False,
    quantize: Optional[str] = None,
) -> Model[List[QAQuery], QAOutput]:
    """An extractive QA model over whole notes, for the `clinlong_qa` component.

    name (str): Hub id or local directory: an extractive-QA checkpoint, or a
        bare encoder whose QA head is then newly initialized.
    get_spans (Callable): Long-span getter; default `spacy-clinlong.long_spans.v1`.
    max_length (Optional[int]): Wordpiece budget of a question/window pair,
        special tokens included; null or 0 for the model's own.
    max_query_length (int): Questions are cut to this many wordpieces.
    batch_wordpieces (int): The most padded wordpieces per encoder call.
    backprop_wordpieces (Optional[int]): The most padded wordpieces whose
        activations training holds for one backward pass (null:
        batch_wordpieces; 0: no limit). Memory stays flat however many
        questions and windows a batch has; the loss is the same.
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
    RETURNS (Model[List[QAQuery], QAOutput]): The model.
    """
    return LongQAModel(
        EncoderSettings(
            name,
            get_spans=get_spans,
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
        ),
        max_query_length=max_query_length,
        backprop_wordpieces=backprop_wordpieces,
    )
