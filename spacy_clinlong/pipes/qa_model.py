"""`spacy-clinlong.LongQAModel.v1`: question/note pairs through an extractive QA model.

Each (note, question) pair is encoded with the tokenizer's own pair template,
[CLS] question [SEP] note-window [SEP] (RoBERTa: <s> q </s></s> note </s>).
A note longer than the budget left after the question is read in overlapping
windows cut by the long-span getter (`spacy-clinlong.long_spans.v1`), counted
in wordpieces, so every window is the note's own wordpieces. Longformer gets
global attention on CLS and the question, as `LongformerForQuestionAnswering`
expects. The output is the start/end logits of every window.
"""
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy
import torch
from spacy.tokens import Doc
from spacy.util import SimpleFrozenDict, registry
from thinc.api import Model

from ..models.architecture import _backward, _sync_checkpointing
from ..models.encoder import WindowInput, pad_multiple, plan_batches, run_batch
from ..models.hf_loading import PairTemplate, load_hf, model_facts, pair_template
from ..models.long_spans import LongSpansT, configure_long_spans
from ..models.pieces import DocPieces, tokenize_docs
from ..models.shim import HFModelAccess, new_shim

AUTO_CLS = "AutoModelForQuestionAnswering"


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
class QAOutput:
    """Start/end logits of every window of a batch of queries.

    windows (List[PairWindow]): The windows, grouped by query in order.
    pieces (List[DocPieces]): The note wordpieces of each query.
    logits (List[numpy.ndarray]): Per window, (row length, 2) float32 start
        and end logits.
    """

    windows: List[PairWindow]
    pieces: List[DocPieces]
    logits: List[numpy.ndarray]


class LongQAModel(HFModelAccess, Model):
    """A thinc Model around a Hugging Face extractive QA model.

    name (str): Hub id or local directory. An extractive-QA checkpoint keeps
        its head; a bare encoder (e.g. a directory from `make-model`) gets a
        newly initialized QA head, to be trained.
    get_spans (Callable): Long-span getter for the note windows.
    max_length (Optional[int]): Wordpiece budget of one pair, specials
        included; None or 0 for the model's own.
    max_query_length (int): Questions are cut to this many wordpieces.
    batch_wordpieces (int): The most padded wordpieces per encoder call.
    tokenizer_config (Dict[str, Any]): Keyword arguments for AutoTokenizer.
    transformer_config (Dict[str, Any]): Keyword arguments for AutoConfig.
    mixed_precision (bool): bf16 (or fp16) autocast on GPU.
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
        max_length: Optional[int] = None,
        max_query_length: int = 64,
        batch_wordpieces: int = 16384,
        tokenizer_config: Dict[str, Any] = SimpleFrozenDict(),
        transformer_config: Dict[str, Any] = SimpleFrozenDict(),
        mixed_precision: bool = False,
        grad_scaler_config: Dict[str, Any] = SimpleFrozenDict(),
        gradient_checkpointing: bool = False,
        attention: str = "fast",
        torch_compile: bool = False,
    ):
        if max_query_length < 1:
            raise ValueError(f"max_query_length must be >= 1, got {max_query_length}")
        shim = new_shim(
            max_length=max_length,
            batch_wordpieces=batch_wordpieces,
            tokenizer_config=tokenizer_config,
            transformer_config=transformer_config,
            mixed_precision=mixed_precision,
            grad_scaler_config=grad_scaler_config,
            auto_cls=AUTO_CLS,
            attention=attention,
            torch_compile=torch_compile,
        )
        wrapper = Model("clinlong-hf-qa", _wrapper_forward, shims=[shim])
        super().__init__(
            "long-qa",
            forward,
            init=init,
            layers=[wrapper],
            attrs={
                "name": str(name),
                "get_spans": get_spans,
                "max_length": max_length,
                "max_query_length": int(max_query_length),
                "batch_wordpieces": int(batch_wordpieces),
                "mixed_precision": bool(mixed_precision),
                "gradient_checkpointing": bool(gradient_checkpointing),
                "attention": attention,
                "torch_compile": bool(torch_compile),
                "has_transformer": False,
                "facts": None,
                "template": None,
            },
        )

    @property
    def template(self) -> PairTemplate:
        self.facts  # raises when not loaded
        return PairTemplate(**self.attrs["template"])


def _wrapper_forward(model, X, is_train):  # pragma: no cover - never called
    raise NotImplementedError("The QA model runs through LongQAModel's forward.")


def init(model: LongQAModel, X=None, Y=None) -> None:
    """Load the tokenizer and QA model (weights load here, not at construction)."""
    if model.attrs["has_transformer"]:
        return
    hf = model.shim._hfmodel
    tokenizer, transformer = load_hf(
        model.attrs["name"],
        hf._init_tokenizer_config,
        hf._init_transformer_config,
        auto_cls=AUTO_CLS,
    )
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


def encode_queries(model: LongQAModel, queries: Sequence[QAQuery]) -> Tuple[List[PairWindow], List[DocPieces]]:
    """Tokenize queries and cut each into question/note-window pairs.

    An empty question, or a note without wordpieces (empty or whitespace),
    gives a query no windows: it has no answer.
    model (LongQAModel): The loaded model.
    queries (Sequence[QAQuery]): The queries.
    RETURNS (Tuple[List[PairWindow], List[DocPieces]]): Windows in query
        order, and the note wordpieces of each query.
    """
    facts = model.facts
    template = model.template
    docs: Dict[int, Doc] = {}
    for q in queries:
        docs.setdefault(id(q.doc), q.doc)
    doc_pieces = dict(zip(docs, tokenize_docs(model.tokenizer, list(docs.values()))))
    pieces = [doc_pieces[id(q.doc)] for q in queries]
    # A blank question asks nothing; a blank note holds no answer.
    questions = [q.question if isinstance(q.question, str) and q.question.strip() else "" for q in queries]
    q_ids = model.tokenizer(questions, add_special_tokens=False, verbose=False)["input_ids"] if questions else []
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


def forward(model: LongQAModel, queries: List[QAQuery], is_train: bool) -> Tuple[QAOutput, Callable]:
    facts = model.facts
    transformer = model.transformer
    _sync_checkpointing(model, transformer, is_train)
    windows, pieces = encode_queries(model, queries)
    batches = plan_batches(
        [len(w.input) for w in windows],
        budget=model.attrs["batch_wordpieces"],
        pad_multiple=pad_multiple(transformer, facts),
    )
    outputs: List[torch.Tensor] = []
    where: List[Tuple[int, int]] = [(-1, -1)] * len(windows)
    for b, idx in enumerate(batches):
        outputs.append(
            run_batch(
                transformer,
                [windows[i].input for i in idx],
                facts,
                is_train=is_train,
                mixed_precision=model.attrs["mixed_precision"],
                read=_read_logits,
            )
        )
        for row, i in enumerate(idx):
            where[i] = (b, row)
    logits = []
    for w, (b, row) in zip(windows, where):
        logits.append(outputs[b][row, : len(w.input)].detach().cpu().numpy().astype("float32"))

    def backprop(d_logits: List[numpy.ndarray]) -> List[QAQuery]:
        grads = [torch.zeros_like(out) for out in outputs]
        for (b, row), d in zip(where, d_logits):
            grads[b][row, : d.shape[0]] += torch.as_tensor(d).to(grads[b].device, grads[b].dtype)
        if outputs:
            _backward(model, outputs, grads)
        return queries

    return QAOutput(windows, pieces, logits), backprop


@dataclass
class Candidate:
    """An answer candidate: tokens [start, end) of the doc and its score."""

    start: int
    end: int
    score: float


def decode(
    output: QAOutput,
    n_queries: int,
    *,
    max_answer_length: int,
    n_best: int = 20,
) -> List[Tuple[Optional[float], List[Candidate]]]:
    """The null score and the ranked answer candidates of each query.

    Logits are compared across windows as they are (SQuAD 2.0 practice): a
    candidate is the best-scoring (start + end logit) occurrence of a token
    span over all windows; it must lie inside one window's note part and span
    at most max_answer_length wordpieces. The null score is the smallest CLS
    score (start + end logit at position 0) over the query's windows.
    output (QAOutput): The model output.
    n_queries (int): Number of queries.
    max_answer_length (int): The longest answer, in wordpieces.
    n_best (int): Start and end positions tried per window.
    RETURNS (List[Tuple[Optional[float], List[Candidate]]]): Per query the null
        score (None without windows) and candidates, best first.
    """
    nulls: List[Optional[float]] = [None] * n_queries
    found: List[Dict[Tuple[int, int], float]] = [{} for _ in range(n_queries)]
    for window, logits in zip(output.windows, output.logits):
        qi = window.query
        null = float(logits[0, 0] + logits[0, 1])
        nulls[qi] = null if nulls[qi] is None else min(nulls[qi], null)
        n_note = window.end - window.start
        note = logits[window.offset : window.offset + n_note]
        k = min(n_best, n_note)
        starts = numpy.argsort(-note[:, 0], kind="stable")[:k]
        ends = numpy.argsort(-note[:, 1], kind="stable")[:k]
        pieces = output.pieces[qi]
        for s in starts:
            for e in ends:
                if e < s or e - s + 1 > max_answer_length:
                    continue
                tok_start = int(pieces.first_token[window.start + s])
                tok_end = int(pieces.last_token[window.start + e]) + 1
                score = float(note[s, 0] + note[e, 1])
                key = (tok_start, tok_end)
                if score > found[qi].get(key, -numpy.inf):
                    found[qi][key] = score
    results = []
    for qi in range(n_queries):
        ranked = sorted(found[qi].items(), key=lambda kv: (-kv[1], kv[0]))
        results.append((nulls[qi], [Candidate(s, e, score) for (s, e), score in ranked]))
    return results


@registry.architectures("spacy-clinlong.LongQAModel.v1")
def create_long_qa_model_v1(
    name: str,
    get_spans: Optional[LongSpansT] = None,
    max_length: Optional[int] = None,
    max_query_length: int = 64,
    batch_wordpieces: int = 16384,
    tokenizer_config: Dict[str, Any] = SimpleFrozenDict(),
    transformer_config: Dict[str, Any] = SimpleFrozenDict(),
    mixed_precision: bool = False,
    grad_scaler_config: Dict[str, Any] = SimpleFrozenDict(),
    gradient_checkpointing: bool = False,
    attention: str = "fast",
    torch_compile: bool = False,
) -> Model[List[QAQuery], QAOutput]:
    """An extractive QA model over whole notes, for the `clinlong_qa` component.

    name (str): Hub id or local directory: an extractive-QA checkpoint, or a
        bare encoder whose QA head is then newly initialized.
    get_spans (Callable): Long-span getter; default `spacy-clinlong.long_spans.v1`.
    max_length (Optional[int]): Wordpiece budget of a question/window pair,
        special tokens included; null or 0 for the model's own.
    max_query_length (int): Questions are cut to this many wordpieces.
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
    RETURNS (Model[List[QAQuery], QAOutput]): The model.
    """
    return LongQAModel(
        name,
        get_spans=get_spans if get_spans is not None else configure_long_spans(),
        max_length=max_length,
        max_query_length=max_query_length,
        batch_wordpieces=batch_wordpieces,
        tokenizer_config=tokenizer_config,
        transformer_config=transformer_config,
        mixed_precision=mixed_precision,
        grad_scaler_config=grad_scaler_config,
        gradient_checkpointing=gradient_checkpointing,
        attention=attention,
        torch_compile=torch_compile,
    )
