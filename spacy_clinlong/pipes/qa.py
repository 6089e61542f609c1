"""`clinlong_qa`: trainable extractive question answering over long notes.

    doc = nlp.make_doc(note)
    doc._.questions = ["What dose of metformin was the patient discharged on?"]
    doc = nlp(doc)
    doc._.answers  # [Span or None], each Span with ._.score
    doc._.answers[0]._.clinlong_answer_text  # the answer's exact characters

Answers follow SQuAD 2.0: a question gets no answer (None) unless the best
span's score (start + end logit) beats the null score (the CLS position's)
plus `null_threshold`. Training reads gold from the reference doc's
`doc.user_data["clinlong_qa"]` (SQuAD-style dicts, as the corpus writers store).

Answers are trained and predicted in wordpieces and kept as characters: the
target is the wordpieces that cover the gold answer's characters, and the
prediction is the characters of the best wordpiece span, so an answer that
starts or ends inside a spaCy token ("128" of "128/76") can still match
exactly. The Span in `doc._.answers` is widened to whole tokens
(`doc.char_span(start, end, alignment_mode="expand")`); its exact text is
`span._.clinlong_answer_text` (characters: `span._.clinlong_answer_chars`),
and that text is what the scorer compares.
"""

import warnings
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Tuple

import numpy
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc, Span
from spacy.training import Example, validate_examples
from spacy.vocab import Vocab
from thinc.api import Config, Model, Optimizer

from .extensions import StoredAnswer, install_extensions, store_answers
from .qa_scoring import GOLD_KEY, decode, gold_chars, qa_score, window_targets

if TYPE_CHECKING:
    # The QA model imports torch and transformers: spaCy imports this module
    # (our `clinlong_qa` entry point) whenever it creates any pipeline, so the
    # model module is imported only where a method needs it.
    from ..models.qa_model import PairWindow, QAOutput, QAQuery

install_extensions(check=False)

DEFAULT_QA_MODEL = """
[model]
@architectures = "spacy-clinlong.LongQAModel.v1"
name = "yikuan8/Clinical-Longformer"
max_length = null
max_query_length = 64
batch_wordpieces = 16384
backprop_wordpieces = null
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
        install_extensions()  # refuses Doc/Span attributes of ours that another package declared
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
        from ..models.qa_model import QAQuery

        queries = [QAQuery(doc, q) for doc in docs for q in (doc._.questions or [])]
        return self._decode(queries)

    def set_annotations(self, docs: Iterable[Doc], predictions: Predictions) -> None:
        """Set `doc._.answers`: per question the best Span, or None.

        The Span is the answer widened to whole tokens
        (`alignment_mode="expand"`); `span._.clinlong_answer_text` and
        `span._.clinlong_answer_chars` hold its exact characters.
        docs (Iterable[Doc]): The docs.
        predictions (Predictions): From `predict`.
        """
        i = 0
        for doc in docs:
            if doc._.questions is None:
                continue
            answers: List[StoredAnswer] = []
            for _ in doc._.questions:
                found = self._answers(doc, predictions[i], top_k=1)
                answers.append(found[0] if found else None)
                i += 1
            store_answers(doc, answers)

    def ask(self, doc: Doc, questions: List[str], top_k: int = 3) -> List[List[Span]]:
        """Answer questions about a doc, up to top_k answers each.

        doc (Doc): The doc; not annotated.
        questions (List[str]): The questions.
        top_k (int): The most answers per question.
        RETURNS (List[List[Span]]): Per question, answer spans with `_.score`,
            `_.clinlong_answer_text` and `_.clinlong_answer_chars`, best
            first, each widened to whole tokens (`alignment_mode="expand"`)
            and no two on the same tokens; only answers whose score beats the
            null score plus null_threshold, so an empty list means no answer.
        """
        from ..models.qa_model import QAQuery

        predictions = self._decode([QAQuery(doc, q) for q in questions])
        out = []
        for prediction in predictions:
            spans = []
            for start, end, score, start_char, end_char in self._answers(doc, prediction, top_k=top_k):
                span = doc[start:end]
                span._.score = score
                span._.clinlong_answer_chars = (start_char, end_char)
                span._.clinlong_answer_text = doc.text[start_char:end_char]
                spans.append(span)
            out.append(spans)
        return out

    def _decode(self, queries: List["QAQuery"]) -> Predictions:
        if not queries:
            return []
        output = self.model.predict(queries)
        return decode(output, len(queries), max_answer_length=self.cfg["max_answer_length"])

    def _answers(self, doc: Doc, prediction, *, top_k: int) -> List[Tuple[int, int, float, int, int]]:
        """The best answers over the null score: (token start, token end, score, char start, char end)."""
        null, candidates = prediction
        if null is None or not candidates:
            return []
        floor = null + self.cfg["null_threshold"]
        found: List[Tuple[int, int, float, int, int]] = []
        seen = set()
        for cand in candidates:
            if len(found) >= top_k or cand.score <= floor:
                break
            span = doc.char_span(cand.start_char, cand.end_char, alignment_mode="expand")
            if span is None or not span.text.strip() or (span.start, span.end) in seen:
                continue
            seen.add((span.start, span.end))
            found.append((span.start, span.end, float(cand.score), cand.start_char, cand.end_char))
        return found

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """Learn from the examples' QA gold (start/end cross-entropy, see get_loss).

        The question/window pairs run forward and backward in chunks of at
        most the model's backprop_wordpieces, so memory does not grow with
        the number of questions and windows; the loss is the same.
        examples (Iterable[Example]): Gold in `reference.user_data["clinlong_qa"]`.
        drop (float): Unused; the HF model's own dropout applies in training.
        sgd (Optional[Optimizer]): The optimizer.
        losses (Optional[Dict[str, float]]): Loss per component, updated.
        RETURNS (Dict[str, float]): The losses.
        """
        from ..models.qa_model import encode_queries, train_windows

        examples = list(examples)
        validate_examples(examples, "LongQA.update")
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        queries, golds = _queries(examples)
        if not queries:
            return losses
        windows, pieces = encode_queries(self.model, queries)
        stats = train_windows(
            self.model, windows, _get_grads(windows, window_targets(windows, pieces, golds))
        )
        if windows and sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += stats["loss"]
        return losses

    def get_loss(self, examples: Iterable[Example], output: "QAOutput") -> Tuple[float, List[numpy.ndarray]]:
        """Start/end cross-entropy of every window, each question weighing the same.

        A window's target is the wordpieces that cover a gold answer's
        characters (the first gold answer lying whole in that window); a
        window without one (an impossible question, or the answer in another
        window) targets the CLS position, as HF's run_qa does. Each question
        weighs 1: its windows holding the answer share half of it and the
        others the other half (all of it when only one kind exists), so the
        many no-answer windows of a long note do not drown its answer window.
        The loss is the mean over questions.
        examples (Iterable[Example]): The examples, in update order.
        output (QAOutput): The model output for their gold questions.
        RETURNS (Tuple[float, List[numpy.ndarray]]): Loss and logit gradients.
        """
        _, golds = _queries(list(examples))
        get_grads = _get_grads(output.windows, window_targets(output.windows, output.pieces, golds))
        return get_grads(list(range(len(output.windows))), output.logits)

    def initialize(
        self, get_examples: Callable[[], Iterable[Example]], *, nlp: Optional[Language] = None
    ) -> None:
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
                f"doc.user_data[{GOLD_KEY!r}] and teach nothing: {', '.join(missing[:20])}",
                stacklevel=2,
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


def _queries(examples: List[Example]) -> Tuple[List["QAQuery"], List[List[Tuple[int, int]]]]:
    """The gold questions of the examples and their answers' characters."""
    from ..models.qa_model import QAQuery

    queries, golds = [], []
    for eg in examples:
        for qa in _gold(eg):
            queries.append(QAQuery(eg.predicted, qa.get("question") or ""))
            golds.append(gold_chars(eg.predicted.text, qa))
    return queries, golds


def _get_grads(windows: List["PairWindow"], targets: List[Tuple[int, int, float]]):
    """Window indices and their logits -> the summed loss and each window's logit gradient."""

    def get_grads(order: List[int], logits: List[numpy.ndarray]) -> Tuple[float, List[numpy.ndarray]]:
        out = [_window_grad(x, len(windows[i].input), *targets[i]) for i, x in zip(order, logits)]
        return sum(loss for loss, _ in out), [d for _, d in out]

    return get_grads


def _window_grad(logits: numpy.ndarray, length: int, start: int, end: int, weight: float):
    """Weighted mean start/end cross-entropy of one window and its logit gradient."""
    probs = _softmax(logits[:length])
    loss = -float(numpy.log(probs[start, 0] + 1e-12) + numpy.log(probs[end, 1] + 1e-12)) * weight / 2
    d = numpy.zeros_like(logits)
    d[:length] = probs
    d[start, 0] -= 1.0
    d[end, 1] -= 1.0
    d *= weight / 2
    return loss, d


def _softmax(logits: numpy.ndarray) -> numpy.ndarray:
    shifted = logits - logits.max(axis=0, keepdims=True)
    exp = numpy.exp(shifted)
    return exp / exp.sum(axis=0, keepdims=True)
