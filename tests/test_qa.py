"""`clinlong_qa`: extractive QA over long notes (tiny random Longformer, CPU)."""

from pathlib import Path

import numpy
import pytest
import spacy
import torch
from spacy.tokens import DocBin, Span
from spacy.training import Example

from spacy_clinlong.corpus import generate_notes, note_to_doc
from spacy_clinlong.corpus.synth.qa import qa_excerpt
from spacy_clinlong.models import qa_model
from spacy_clinlong.models.encoder import batch_tensors
from spacy_clinlong.models.qa_model import QAOutput, QAQuery, encode_queries
from spacy_clinlong.pipes.qa import window_targets
from spacy_clinlong.pipes.qa_scoring import decode, qa_score, score_answer, token_f1

CONFIG = Path(__file__).parent.parent / "configs" / "qa_longformer.cfg"


def _qa_nlp(model_dir, *, max_length=256, null_threshold=0.0, overlap=64, **model_cfg):
    # The QA head is newly initialized on a bare encoder: seed it.
    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "clinlong_qa",
        config={
            "null_threshold": null_threshold,
            "model": {
                "name": str(model_dir),
                "max_length": max_length,
                "get_spans": {"overlap": overlap},
                **model_cfg,
            },
        },
    )
    nlp.initialize()
    return nlp


NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


@pytest.fixture(scope="module")
def qa_nlp(tiny_models):
    # Always answers (a threshold no null score reaches), so spans come back
    # from the random-weight model.
    return _qa_nlp(tiny_models("longformer"), null_threshold=-1e9)


@pytest.fixture(scope="module")
def note():
    return sorted(generate_notes(6, seed=3), key=lambda n: len(n["text"]))[0]


def test_answers_are_spans_with_scores(qa_nlp, note):
    doc = qa_nlp.make_doc(note["text"])
    questions = [qa["question"] for qa in note["qas"][:2]]
    doc._.questions = questions
    doc = qa_nlp(doc)
    assert len(doc._.answers) == len(questions)
    for span in doc._.answers:
        assert isinstance(span, Span) and span.doc is doc and len(span) >= 1
        assert isinstance(span._.score, float)
        # Snapped to token boundaries; the exact answer lies inside the span.
        assert doc.char_span(span.start_char, span.end_char) == span
        start, end = span._.clinlong_answer_chars
        assert span.start_char <= start < end <= span.end_char
        assert span._.clinlong_answer_text == doc.text[start:end] == doc.text[start:end].strip()
    ranked = qa_nlp.get_pipe("clinlong_qa").ask(doc, questions, top_k=3)
    assert len(ranked) == len(questions)
    for spans, best in zip(ranked, doc._.answers):
        assert 1 <= len(spans) <= 3
        scores = [s._.score for s in spans]
        assert scores == sorted(scores, reverse=True)
        assert (spans[0].start, spans[0].end) == (best.start, best.end)
        assert len({(s.start, s.end) for s in spans}) == len(spans)


def test_answers_survive_a_docbin(qa_nlp, note):
    doc = qa_nlp.make_doc(note["text"])
    doc._.questions = [note["qas"][0]["question"]]
    doc = qa_nlp(doc)
    back = list(DocBin(docs=[doc], store_user_data=True).get_docs(qa_nlp.vocab))[0]
    (span,) = back._.answers
    (before,) = doc._.answers
    assert (span.start, span.end, span._.score) == (before.start, before.end, before._.score)
    assert span._.clinlong_answer_chars == before._.clinlong_answer_chars
    assert span._.clinlong_answer_text == before._.clinlong_answer_text


def test_scorer_compares_the_exact_answer_not_the_widened_span():
    from spacy_clinlong.pipes.extensions import answer_texts, store_answers

    nlp = spacy.blank("en")
    text = "BP 128/76 today. BP 130/80 yesterday."
    ref = nlp.make_doc(text)
    ref.user_data["clinlong_qa"] = [
        {
            "question": "systolic today?",
            "answers": [{"text": "128", "answer_start": 3}],
            "is_impossible": False,
        },
        {
            "question": "systolic yesterday?",
            "answers": [{"text": "130", "answer_start": 20}],
            "is_impossible": False,
        },
    ]
    pred = nlp.make_doc(text)
    assert pred[1].text == "128/76"  # one spaCy token
    pred._.questions = ["systolic today?", "systolic yesterday?"]
    # Both answers are parts of tokens; the second question answered on the
    # same token as the first, with other characters.
    store_answers(pred, [(1, 2, 3.0, 3, 6), (1, 2, 1.0, 7, 9)])
    assert answer_texts(pred) == ["128", "76"]
    first, second = pred._.answers
    assert first.text == "128/76" and (first.start, first.end) == (second.start, second.end)
    # EM 1 on the first (the widened "128/76" would score EM 0 and F1 0), 0 on the second.
    assert qa_score([Example(pred, ref)]) == {"qa_exact": 0.5, "qa_f1": 0.5}
    # Answers set as plain Spans (no exact characters) are scored by their text.
    pred._.answers = [pred[1:2], None]
    assert answer_texts(pred) == ["128/76", None]
    assert qa_score([Example(pred, ref)]) == {"qa_exact": 0.0, "qa_f1": 0.0}


def test_pair_encoding_puts_the_question_first(qa_nlp, note):
    qa = qa_nlp.get_pipe("clinlong_qa")
    tok = qa.model.tokenizer
    doc = qa_nlp.make_doc(note["text"])
    question = note["qas"][0]["question"]
    windows, pieces = encode_queries(qa.model, [QAQuery(doc, question)])
    q_ids = tok(question, add_special_tokens=False)["input_ids"]
    # The tokenizer's own pair template: <s> question </s></s> note </s>.
    reference = tok(question, "note", add_special_tokens=True)["input_ids"]
    first = windows[0]
    ids = first.input.ids.tolist()
    assert ids[: 1 + len(q_ids)] == reference[: 1 + len(q_ids)]
    assert ids[first.offset : first.offset + 5] == pieces[0].ids[first.start : first.start + 5].tolist()
    assert ids[-1] == tok.sep_token_id and first.offset == 1 + len(q_ids) + 2
    assert len(ids) <= 256
    # Longformer: global attention on CLS and every question token, nowhere else.
    mask = batch_tensors(
        [w.input for w in windows], qa.model.facts, qa.model.transformer.device, sparse=False
    )
    glob = mask["global_attention_mask"][0].tolist()
    assert glob[: 1 + len(q_ids)] == [1] * (1 + len(q_ids)) and sum(glob) == 1 + len(q_ids)


def test_long_note_is_read_in_windows_and_late_windows_answer(qa_nlp, note):
    qa = qa_nlp.get_pipe("clinlong_qa")
    doc = qa_nlp.make_doc(note["text"])
    windows, pieces = encode_queries(qa.model, [QAQuery(doc, "What is the current dose?")])
    assert len(windows) >= 3 and pieces[0].n_wordpieces > 256
    assert windows[0].start == 0 and windows[-1].end == pieces[0].n_wordpieces
    assert all(a.end > b.start for a, b in zip(windows, windows[1:]))  # overlap
    # Logits that favour one span in the last window, and a CLS score in the
    # other windows higher than the span: the null is the smallest CLS score
    # (the last window's), so the span still answers.
    last = windows[-1]
    logits = [numpy.zeros((len(w.input), 2), dtype="float32") for w in windows]
    for other in logits[:-1]:
        other[0] = 20.0
    s, e = last.offset + 10, last.offset + 12
    logits[-1][s, 0] = logits[-1][e, 1] = 5.0
    ((null, ranked),) = decode(QAOutput(windows, pieces, logits), 1, max_answer_length=64)
    best = ranked[0]
    assert null == 0.0 and best.score == 10.0
    chars = pieces[0].char_offsets
    assert best.start_char == chars[last.start + 10, 0] and best.end_char == chars[last.start + 12, 1]
    assert best.start_char > chars[windows[0].end - 1, 1]  # beyond what the first window sees
    # The training target of that answer: inside the last window, CLS in the windows without it.
    targets = window_targets(windows, pieces, [[(best.start_char, best.end_char)]])
    assert targets[-1][:2] == (s, e)
    assert all(t[:2] == (0, 0) for w, t in zip(windows, targets) if w.end <= last.start)
    # An answer longer than max_answer_length is never proposed.
    ((_, short),) = decode(QAOutput(windows, pieces, logits), 1, max_answer_length=2)
    assert all((c.start_char, c.end_char) != (best.start_char, best.end_char) for c in short)


def test_every_gold_answer_is_a_target_and_every_question_weighs_the_same():
    from spacy_clinlong.models.encoder import WindowInput
    from spacy_clinlong.models.qa_model import NotePieces, PairWindow

    text = "a b c d e f g h"  # one wordpiece per letter
    zeros = numpy.zeros((8,), dtype="int64")
    chars = numpy.asarray([[2 * i, 2 * i + 1] for i in range(8)])
    pieces = NotePieces(zeros, zeros, zeros, zeros, zeros, char_offsets=chars, text=text)
    row = WindowInput(numpy.zeros((8,), dtype="int64"), [])
    spans = [(0, 3), (2, 5), (4, 7), (6, 8)]
    windows = [PairWindow(0, s, e, 3, row) for s, e in spans] + [
        PairWindow(1, s, e, 3, row) for s, e in spans[:2]
    ]
    # Question 0 has two gold answers, "f" (wordpiece 5) and "b" (wordpiece 1);
    # question 1 has none.
    targets = window_targets(windows, [pieces, pieces], [[(10, 11), (2, 3)], []])
    # Window 0 holds only the second answer: it is a target there, not CLS.
    assert [t[:2] for t in targets] == [(4, 4), (0, 0), (4, 4), (0, 0), (0, 0), (0, 0)]
    # Each question weighs 1/2 of the loss; question 0's answer windows share
    # half of that, its windows without the answer the other half.
    assert [t[2] for t in targets] == pytest.approx([0.125, 0.125, 0.125, 0.125, 0.25, 0.25])


def test_no_answer_when_the_null_score_wins(tiny_models, note):
    nlp = _qa_nlp(tiny_models("longformer"), null_threshold=1e9)
    doc = nlp.make_doc(note["text"])
    doc._.questions = [qa["question"] for qa in note["qas"][:2]]
    assert nlp(doc)._.answers == [None, None]
    assert nlp.get_pipe("clinlong_qa").ask(doc, ["What is the dose?"], top_k=3) == [[]]


@pytest.mark.parametrize(
    "text,questions",
    [
        ("", ["What dose?"]),
        ("   \n\n  ", ["What dose?"]),
        ("Metformin 500 mg daily.", [""]),
        ("Metformin 500 mg daily.", ["   "]),
        ("Metformin 500 mg daily.", []),
    ],
)
def test_bad_inputs_give_no_answer(qa_nlp, text, questions):
    doc = qa_nlp.make_doc(text)
    doc._.questions = questions
    doc = qa_nlp(doc)
    assert doc._.answers == [None] * len(questions)
    assert qa_nlp.get_pipe("clinlong_qa").ask(doc, questions) == [[] for _ in questions]


def test_docs_without_questions_are_left_alone(qa_nlp):
    doc = qa_nlp("Metformin 500 mg daily.")
    assert doc._.questions is None and doc._.answers is None


def test_squad_em_and_f1():
    assert token_f1("500 mg daily", "500 mg") == pytest.approx(0.8)
    assert score_answer(["The 500 mg."], "500 mg") == {"exact": 1.0, "f1": 1.0}
    assert score_answer([], None) == {"exact": 1.0, "f1": 1.0}
    assert score_answer([], "500 mg") == {"exact": 0.0, "f1": 0.0}
    assert score_answer(["500 mg"], None) == {"exact": 0.0, "f1": 0.0}
    # The best gold answer counts.
    assert score_answer(["aspirin", "aspirin 81 mg"], "aspirin 81") == {
        "exact": 0.0,
        "f1": pytest.approx(0.8),
    }
    nlp = spacy.blank("en")
    text = "Metformin 500 mg daily. No allergies."
    ref = nlp.make_doc(text)
    ref.user_data["clinlong_qa"] = [
        {
            "question": "dose?",
            "answers": [{"text": "500 mg daily", "answer_start": 10}],
            "is_impossible": False,
        },
        {"question": "allergy?", "answers": [], "is_impossible": True},
        {"question": "ef?", "answers": [], "is_impossible": True},
        {"question": "drug?", "answers": [{"text": "Metformin", "answer_start": 0}], "is_impossible": False},
    ]
    pred = nlp.make_doc(text)
    pred._.questions = ["dose?", "allergy?", "ef?", "drug?"]
    pred._.answers = [pred[1:3], None, pred[0:1], pred[0:1]]
    scores = qa_score([Example(pred, ref)])
    # EM: 0, 1, 0, 1; F1: 0.8, 1, 0, 1.
    assert scores["qa_exact"] == pytest.approx(0.5)
    assert scores["qa_f1"] == pytest.approx(2.8 / 4)
    assert qa_score([Example(pred, nlp.make_doc(text))]) == {"qa_exact": None, "qa_f1": None}


def test_serialization_round_trip(qa_nlp, note, tmp_path):
    questions = [qa["question"] for qa in note["qas"][:2]]
    doc = qa_nlp.make_doc(note["text"])
    doc._.questions = questions
    before = [(s.start, s.end, s._.score) for s in qa_nlp(doc)._.answers]
    qa_nlp.to_disk(tmp_path / "qa")
    loaded = spacy.load(tmp_path / "qa")
    doc = loaded.make_doc(note["text"])
    doc._.questions = questions
    after = [(s.start, s.end, s._.score) for s in loaded(doc)._.answers]
    assert [a[:2] for a in after] == [b[:2] for b in before]
    assert [a[2] for a in after] == pytest.approx([b[2] for b in before], abs=1e-4)
    assert loaded.get_pipe("clinlong_qa").cfg == qa_nlp.get_pipe("clinlong_qa").cfg


def test_initialize_names_docs_without_qa_gold(tiny_models):
    nlp = spacy.blank("en")
    nlp.add_pipe("clinlong_qa", config={"model": {"name": str(tiny_models("longformer")), "max_length": 256}})
    docs = [nlp.make_doc("Metformin 500 mg."), nlp.make_doc("Aspirin 81 mg.")]
    docs[0].user_data["note_id"] = "note-7"
    docs[1].user_data["note_id"] = "note-8"
    with pytest.raises(ValueError, match="note-7, note-8"):
        nlp.initialize(lambda: [Example(nlp.make_doc(d.text), d) for d in docs])
    docs[1].user_data["clinlong_qa"] = []
    with pytest.warns(UserWarning, match="note-7"):
        nlp.initialize(lambda: [Example(nlp.make_doc(d.text), d) for d in docs])


def test_note_to_doc_carries_qa_gold(note):
    doc = note_to_doc(spacy.blank("en"), note)
    assert doc.user_data["clinlong_qa"] == note["qas"]
    answer = next(qa for qa in note["qas"] if not qa["is_impossible"])["answers"][0]
    start = answer["answer_start"]
    assert doc.text[start : start + len(answer["text"])] == answer["text"]


def _answerable_f1(nlp, docs):
    """SQuAD F1 over the answerable questions only (no credit for 'no answer')."""
    f1 = []
    for ref in docs:
        doc = nlp.make_doc(ref.text)
        gold = [qa for qa in ref.user_data["clinlong_qa"] if not qa["is_impossible"]]
        doc._.questions = [qa["question"] for qa in gold]
        for qa, span in zip(gold, nlp(doc)._.answers):
            f1.append(score_answer([a["text"] for a in qa["answers"]], span and span.text)["f1"])
    return sum(f1) / len(f1)


def test_qa_learns_with_spacy_train(tiny_models, tmp_path):
    import random

    from spacy.cli.train import train

    # Excerpts of synthetic notes (answer lines, their headers, one more line;
    # about 100 to 200 wordpieces) keep spacy train to about a minute on 2 CPU
    # cores; whole notes read in windows are covered above.
    notes = [qa_excerpt(n, random.Random(i)) for i, n in enumerate(generate_notes(40, seed=11))]
    nlp = spacy.blank("en")
    for name, part in (("train", notes[:32]), ("dev", notes[32:])):
        DocBin(docs=[note_to_doc(nlp, n) for n in part], store_user_data=True).to_disk(
            tmp_path / f"{name}.spacy"
        )
    steps = 150
    overrides = {
        "paths.train": str(tmp_path / "train.spacy"),
        "paths.dev": str(tmp_path / "dev.spacy"),
        "components.clinlong_qa.model.name": str(tiny_models("longformer")),
        "components.clinlong_qa.model.max_length": 512,
        "training.max_steps": steps,
        "training.eval_frequency": steps,
        "training.optimizer.learn_rate.initial_rate": 0.004,
        "training.batcher.size.start": 150,
        "training.batcher.size.stop": 150,
    }
    schedule = spacy.util.load_config(CONFIG, interpolate=False)["training"]["optimizer"]["learn_rate"]
    if "warmup_steps" in schedule:  # thinc's warmup_linear.v1; ours follows max_steps
        overrides.update(
            {
                "training.optimizer.learn_rate.warmup_steps": 10,
                "training.optimizer.learn_rate.total_steps": steps,
            }
        )
    train(CONFIG, tmp_path / "out", overrides=overrides)
    dev = list(DocBin().from_disk(tmp_path / "dev.spacy").get_docs(nlp.vocab))
    untrained = _qa_nlp(tiny_models("longformer"), max_length=512)
    trained = spacy.load(tmp_path / "out" / "model-last")
    before = untrained.evaluate([Example(untrained.make_doc(d.text), d) for d in dev])
    after = trained.evaluate([Example(trained.make_doc(d.text), d) for d in dev])
    print("untrained", before["qa_f1"], before["qa_exact"], "trained", after["qa_f1"], after["qa_exact"])
    assert after["qa_f1"] > before["qa_f1"] + 0.1, (before, after)
    answerable_before, answerable_after = _answerable_f1(untrained, dev), _answerable_f1(trained, dev)
    print("answerable F1 untrained", answerable_before, "trained", answerable_after)
    assert answerable_after > answerable_before, (answerable_before, answerable_after)


PLANTED_QUESTION = "What was the systolic blood pressure at discharge?"
FILLER = [
    "The patient walked in the hallway with physical therapy.",
    "Appetite improved and she tolerated a regular diet.",
    "Social work met with the family about home services.",
    "No new complaints overnight; sleep was adequate.",
    "Wound care was reviewed with the nursing staff.",
]


def _planted_note():
    """About 380 wordpieces: the question's words in the first line, the
    answer "128" (part of the token "128/76") in the last."""
    lines = ["Blood pressure at discharge will be rechecked by the nurse."]
    lines += [FILLER[i % len(FILLER)] for i in range(24)]
    lines += ["Final vitals: reading 128/76, heart rate 70."]
    text = "\n".join(lines) + "\n"
    return text, text.index("128/76")


def _planted_example(nlp, n_questions=1):
    text, start = _planted_note()
    ref = nlp.make_doc(text)
    answer = {"text": "128", "answer_start": start}
    ref.user_data["clinlong_qa"] = [
        # Every third question unanswerable, so CLS targets are in the mix too.
        {
            "id": f"q{i}",
            "question": "What is the ejection fraction?" if i % 3 == 2 else PLANTED_QUESTION,
            "answers": [] if i % 3 == 2 else [answer],
            "is_impossible": i % 3 == 2,
        }
        for i in range(n_questions)
    ]
    return Example(nlp.make_doc(text), ref)


def _grads(qa):
    return torch.cat(
        [p.grad.flatten().clone() for p in qa.model.transformer.parameters() if p.grad is not None]
    )


def _zero_grads(qa):
    for p in qa.model.transformer.parameters():
        p.grad = None


def test_chunked_training_has_the_loss_and_gradients_of_one_chunk(tiny_models, monkeypatch):
    nlp = _qa_nlp(tiny_models("longformer"), max_length=128, overlap=32, transformer_config=NO_DROPOUT)
    qa = nlp.get_pipe("clinlong_qa")
    eg = _planted_example(nlp, 3)
    seen = []
    real = qa_model.train_windows
    # LongQA.update imports train_windows from the model module when it runs.
    monkeypatch.setattr(qa_model, "train_windows", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    results = {}
    for chunk in (0, 256):
        qa.model.attrs["backprop_wordpieces"] = chunk
        _zero_grads(qa)
        loss = qa.update([eg])[qa.name]
        results[chunk] = (loss, _grads(qa))
    one, chunked = seen
    assert one["chunks"] == 1 and chunked["chunks"] >= 4 and chunked["peak_wordpieces"] <= 256
    assert results[256][0] == pytest.approx(results[0][0], rel=1e-5)
    assert torch.allclose(results[256][1], results[0][1], rtol=1e-4, atol=1e-7)
    # get_loss (the whole output at once) is the same loss.
    output = qa.model.predict(
        [QAQuery(eg.predicted, q["question"]) for q in eg.reference.user_data["clinlong_qa"]]
    )
    assert qa.get_loss([eg], output)[0] == pytest.approx(results[0][0], rel=1e-4)


class _SavedActivations:
    """Bytes of the tensors autograd keeps for the backward pass: now and at most."""

    def __init__(self):
        self.now = self.peak = 0

    def pack(self, tensor):
        return _Held(self, tensor)

    @staticmethod
    def unpack(held):
        return held.tensor


class _Held:
    def __init__(self, meter, tensor):
        self.meter, self.tensor = meter, tensor
        self.size = tensor.numel() * tensor.element_size()
        meter.now += self.size
        meter.peak = max(meter.peak, meter.now)

    def __del__(self):
        self.meter.now -= self.size


def _peak_activations(qa, eg):
    meter = _SavedActivations()
    _zero_grads(qa)
    with torch.autograd.graph.saved_tensors_hooks(meter.pack, meter.unpack):
        qa.update([eg])
    assert meter.now == 0  # everything kept for backward was freed
    return meter.peak


def test_training_memory_does_not_grow_with_questions(tiny_models):
    """6x the questions (and so 6x the question/window pairs) of one note: the
    activations held for backward stay flat in chunks, and grow without them."""
    nlp = _qa_nlp(tiny_models("longformer"), max_length=128, overlap=32, backprop_wordpieces=512)
    qa = nlp.get_pipe("clinlong_qa")
    few, many = _planted_example(nlp, 3), _planted_example(nlp, 18)
    assert len(encode_queries(qa.model, [QAQuery(few.predicted, PLANTED_QUESTION)])[0]) >= 4
    chunked = _peak_activations(qa, few), _peak_activations(qa, many)
    assert chunked[1] <= 1.1 * chunked[0], chunked
    qa.model.attrs["backprop_wordpieces"] = 0
    unbounded = _peak_activations(qa, few), _peak_activations(qa, many)
    assert unbounded[1] > 4 * unbounded[0], unbounded
    assert chunked[1] < unbounded[1] / 4


def test_a_planted_answer_far_from_the_question_words_is_found_in_a_late_window(tiny_models):
    """The question's words are in the note's first line; the answer, part of
    the token "128/76", is in its last window. A model trained on that one note
    answers with exactly "128", from a late window, over the null of the others."""
    nlp = _qa_nlp(tiny_models("longformer"), max_length=128, overlap=32)
    qa = nlp.get_pipe("clinlong_qa")
    eg = _planted_example(nlp)
    text, start = _planted_note()
    windows, pieces = encode_queries(qa.model, [QAQuery(eg.predicted, PLANTED_QUESTION)])
    chars = pieces[0].char_offsets
    assert len(windows) >= 4 and start > chars[windows[0].end - 1, 1]  # not in the first window
    assert not any(chars[w.start, 0] <= start < chars[w.end - 1, 1] for w in windows[:-2])

    def asked():
        doc = nlp.make_doc(text)
        doc._.questions = [PLANTED_QUESTION]
        return nlp(doc)

    before = asked()._.answers[0]
    assert before is None or before._.clinlong_answer_text != "128"
    optimizer = nlp.create_optimizer()
    optimizer.learn_rate = 0.01
    for _ in range(12):
        qa.update([eg], sgd=optimizer)
    doc = asked()
    after = doc._.answers[0]
    assert after is not None
    assert after._.clinlong_answer_text == "128" and after._.clinlong_answer_chars == (start, start + 3)
    # The Span is widened to whole tokens ("expand"): the token is "128/76".
    assert after.text == "128/76"
    assert qa_score([Example(doc, eg.reference)]) == {"qa_exact": 1.0, "qa_f1": 1.0}
