"""`clinlong_qa`: trainable extractive question answering over long notes.

    doc = nlp.make_doc(note)
    doc._.questions = ["What dose of metformin was the patient discharged on?"]
    doc = nlp(doc)
    doc._.answers  # [Span or None], each Span with ._.score

Answers follow SQuAD 2.0: a question gets no answer (None) unless the best
span's score (start + end logit) beats the null score (the CLS position's)
plus `null_threshold`. Training reads gold from the reference doc's
`doc.user_data["clinlong_qa"]` (SQuAD-style dicts, as the corpus writers store).
"""
import warnings
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import numpy
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc, Span
from spacy.training import Example, validate_examples
from spacy.vocab import Vocab
from thinc.api import Config, Model, Optimizer

from .extensions import install_extensions
from .qa_model import PairWindow, QAOutput, QAQuery, decode
from .qa_scoring import GOLD_KEY, qa_score

install_extensions()

DEFAULT_QA_MODEL = """
[model]
@architectures = "spacy-clinlong.LongQAModel.v1"
name = "yikuan8/Clinical-Longformer"
max_length = null
max_query_length = 64
batch_wordpieces = 16384
mixed_precision = false
gradient_checkpointing = false
tokenizer_config = {"use_fast": true}
transformer_config = {}
grad_scaler_config = {}

[model.get_spans]
@span_getters = "spacy-clinlong.long_spans.v1"
overlap = 128
min_fill = 0.5
"""
DEFAULT_CONFIG = Config().from_str(DEFAULT_QA_MODEL)

Predictions = List[Tuple[Optional[float], list]]


@Language.factory(
    "clinlong_qa",
    assigns=["doc._.answers"],
    requires=["doc._.questions"],
    default_config={
        "model": DEFAULT_CONFIG["model"],
        "max_answer_length": 64,
        "null_threshold": 0.0,
        "scorer": {"@scorers": "spacy-clinlong.qa_scorer.v1"},
    },
    default_score_weights={"qa_f1": 1.0, "qa_exact": 0.0},
)
def make_clinlong_qa(
    nlp: Language,
    name: str,
    model: Model,
    max_answer_length: int,
    null_threshold: float,
    scorer: Optional[Callable],
) -> "LongQA":
    """Create a `clinlong_qa` component.

    nlp (Language): The pipeline.
    name (str): The component name.
    model (Model[List[QAQuery], QAOutput]): `spacy-clinlong.LongQAModel.v1`.
    max_answer_length (int): The longest answer, in wordpieces.
    null_threshold (float): How much the best span must beat the null score by.
    scorer (Optional[Callable]): The scorer (`spacy-clinlong.qa_scorer.v1`).
    RETURNS (LongQA): The component.
    """
    return LongQA(
        nlp.vocab,
        model,
        name,
        max_answer_length=max_answer_length,
        null_threshold=null_threshold,
        scorer=scorer,
    )


class LongQA(TrainablePipe):
    """Extractive QA: answers `doc._.questions` into `doc._.answers`.

    vocab (Vocab): The shared vocabulary.
    model (Model[List[QAQuery], QAOutput]): The QA model.
    name (str): The component name.
    max_answer_length (int): The longest answer, in wordpieces.
    null_threshold (float): Margin the best span needs over the null score.
    scorer (Optional[Callable]): The scorer.
    """

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "clinlong_qa",
        *,
        max_answer_length: int = 64,
        null_threshold: float = 0.0,
        scorer: Optional[Callable] = qa_score,
    ):
        if max_answer_length < 1:
            raise ValueError(f"max_answer_length must be >= 1, got {max_answer_length}")
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        self.cfg: Dict[str, Any] = {
            "max_answer_length": int(max_answer_length),
            "null_threshold": float(null_threshold),
        }

    def predict(self, docs: Iterable[Doc]) -> Predictions:
        """Score answers to each doc's `doc._.questions` (inference mode).

        docs (Iterable[Doc]): The docs.
        RETURNS (Predictions): Null score and candidates per question, in doc order.
        """
        queries = [QAQuery(doc, q) for doc in docs for q in (doc._.questions or [])]
        return self._decode(queries)

    def set_annotations(self, docs: Iterable[Doc], predictions: Predictions) -> None:
        """Set `doc._.answers`: per question the best Span, or None.

        docs (Iterable[Doc]): The docs.
        predictions (Predictions): From `predict`.
        """
        i = 0
        for doc in docs:
            if doc._.questions is None:
                continue
            answers: List[Optional[Span]] = []
            for _ in doc._.questions:
                spans = self._spans(doc, predictions[i], top_k=1)
                answers.append(spans[0] if spans else None)
                i += 1
            doc._.answers = answers

    def ask(self, doc: Doc, questions: List[str], top_k: int = 3) -> List[List[Span]]:
        """Answer questions about a doc, up to top_k answers each.

        doc (Doc): The doc; not annotated.
        questions (List[str]): The questions.
        top_k (int): The most answers per question.
        RETURNS (List[List[Span]]): Per question, answer spans with `_.score`,
            best first; only spans whose score beats the null score plus
            null_threshold, so an empty list means no answer.
        """
        predictions = self._decode([QAQuery(doc, q) for q in questions])
        return [self._spans(doc, pred, top_k=top_k) for pred in predictions]

    def _decode(self, queries: List[QAQuery]) -> Predictions:
        if not queries:
            return []
        output = self.model.predict(queries)
        return decode(output, len(queries), max_answer_length=self.cfg["max_answer_length"])

    def _spans(self, doc: Doc, prediction, *, top_k: int) -> List[Span]:
        null, candidates = prediction
        if null is None or not candidates:
            return []
        floor = null + self.cfg["null_threshold"]
        spans = []
        for cand in candidates:
            if len(spans) >= top_k or cand.score <= floor:
                break
            span = doc[cand.start : cand.end]
            if not span.text.strip():
                continue
            span._.score = float(cand.score)
            spans.append(span)
        return spans

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """Learn from the examples' QA gold (start/end cross-entropy).

        examples (Iterable[Example]): Gold in `reference.user_data["clinlong_qa"]`.
        drop (float): Unused; the HF model's own dropout applies in training.
        sgd (Optional[Optimizer]): The optimizer.
        losses (Optional[Dict[str, float]]): Loss per component, updated.
        RETURNS (Dict[str, float]): The losses.
        """
        examples = list(examples)
        validate_examples(examples, "LongQA.update")
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        queries = [QAQuery(eg.predicted, qa.get("question") or "") for eg in examples for qa in _gold(eg)]
        if not queries:
            return losses
        output, backprop = self.model.begin_update(queries)
        loss, d_logits = self.get_loss(examples, output)
        if output.windows:
            backprop(d_logits)
            if sgd is not None:
                self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def get_loss(self, examples: Iterable[Example], output: QAOutput) -> Tuple[float, List[numpy.ndarray]]:
        """Start/end cross-entropy, averaged over windows.

        A window that does not hold the gold answer (an impossible question, or
        the answer in another window) targets the CLS position, as HF's run_qa
        does. The first gold answer is the target.
        examples (Iterable[Example]): The examples, in update order.
        output (QAOutput): The model output for their gold questions.
        RETURNS (Tuple[float, List[numpy.ndarray]]): Loss and logit gradients.
        """
        targets = [_gold_target(eg, qa) for eg in examples for qa in _gold(eg)]
        n = max(len(output.windows), 1)
        loss = 0.0
        grads = []
        for window, logits in zip(output.windows, output.logits):
            start, end = _window_target(window, targets[window.query], output)
            probs = _softmax(logits[: len(window.input)])
            d = probs.copy()
            d[start, 0] -= 1.0
            d[end, 1] -= 1.0
            loss -= float(numpy.log(probs[start, 0] + 1e-12) + numpy.log(probs[end, 1] + 1e-12))
            full = numpy.zeros_like(logits)
            full[: d.shape[0]] = d / (2 * n)
            grads.append(full)
        return loss / (2 * n), grads

    def initialize(self, get_examples: Callable[[], Iterable[Example]], *, nlp: Optional[Language] = None) -> None:
        """Load the QA model and check that the examples carry QA gold.

        get_examples (Callable[[], Iterable[Example]]): The training examples.
        nlp (Optional[Language]): The pipeline.
        """
        self._require_model_arch()
        examples = list(get_examples())
        if _is_placeholder(examples):
            # nlp.initialize() without data passes spaCy's one-doc placeholder.
            examples = []
        missing, total = [], 0
        for i, eg in enumerate(examples):
            total += 1
            if GOLD_KEY not in eg.reference.user_data:
                missing.append(str(eg.reference.user_data.get("note_id", f"#{i}")))
        if total and len(missing) == total:
            raise ValueError(
                f"None of the {total} training docs has QA gold in "
                f"doc.user_data[{GOLD_KEY!r}] (first ids: {', '.join(missing[:10])}); "
                "write the corpus with spacy_clinlong's corpus writers."
            )
        if missing:
            warnings.warn(
                f"{len(missing)} of {total} training docs have no QA gold in "
                f"doc.user_data[{GOLD_KEY!r}] and teach nothing: {', '.join(missing[:20])}"
            )
        self.model.initialize()

    def _require_model_arch(self) -> None:
        if "get_spans" not in self.model.attrs:
            raise ValueError("clinlong_qa needs the architecture spacy-clinlong.LongQAModel.v1")

    def score(self, examples: Iterable[Example], **kwargs) -> Dict[str, Any]:
        """SQuAD 2.0 EM and F1 over the examples' QA gold.

        spacy train and nlp.evaluate make the predicted docs with
        nlp.make_doc, so they carry no questions: such docs are first asked
        the reference's gold questions.
        examples (Iterable[Example]): The examples.
        RETURNS (Dict[str, Any]): qa_exact and qa_f1.
        """
        examples = list(examples)
        todo = [eg for eg in examples if eg.predicted._.questions is None and _gold(eg)]
        for eg in todo:
            eg.predicted._.questions = [qa.get("question") or "" for qa in _gold(eg)]
        if todo:
            docs = [eg.predicted for eg in todo]
            self.set_annotations(docs, self.predict(docs))
        return self.scorer(examples, **kwargs) if self.scorer else {}

    def add_label(self, label: str) -> int:
        raise NotImplementedError("clinlong_qa has no labels")


def _is_placeholder(examples: List[Example]) -> bool:
    if len(examples) != 1:
        return False
    ref = examples[0].reference
    return [t.text for t in ref] == ["x", "y", "z"] and not ref.user_data


def _gold(eg: Example) -> List[Dict[str, Any]]:
    return list(eg.reference.user_data.get(GOLD_KEY) or [])


def _gold_target(eg: Example, qa: Dict[str, Any]) -> Optional[Tuple[int, int]]:
    """The gold answer as predicted-doc tokens [start, end), or None."""
    answers = qa.get("answers") or []
    if qa.get("is_impossible") or not answers:
        return None
    first = answers[0]
    start = int(first.get("answer_start", -1))
    end = start + len(first.get("text") or "")
    if start < 0 or end <= start:
        return None
    span = eg.predicted.char_span(start, end, alignment_mode="expand")
    if span is None or len(span) == 0:
        return None
    return span.start, span.end


def _window_target(window: PairWindow, target: Optional[Tuple[int, int]], output: QAOutput) -> Tuple[int, int]:
    if target is None:
        return 0, 0
    pieces = output.pieces[window.query]
    first = int(pieces.token_first_wp[target[0]])
    last = int(pieces.token_last_wp[target[1] - 1])
    if first < 0 or not (window.start <= first and last < window.end):
        return 0, 0
    return window.offset + first - window.start, window.offset + last - window.start


def _softmax(logits: numpy.ndarray) -> numpy.ndarray:
    shifted = logits - logits.max(axis=0, keepdims=True)
    exp = numpy.exp(shifted)
    return exp / exp.sum(axis=0, keepdims=True)
