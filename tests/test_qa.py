"""`clinlong_qa`: extractive QA over long notes (tiny random Longformer, CPU)."""
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.tokens import DocBin, Span
from spacy.training import Example

from spacy_clinlong.corpus import generate_notes, note_to_doc
from spacy_clinlong.models.encoder import batch_tensors
from spacy_clinlong.pipes.qa import _window_target
from spacy_clinlong.pipes.qa_model import QAOutput, QAQuery, decode, encode_queries
from spacy_clinlong.pipes.qa_scoring import qa_score, score_answer, token_f1

CONFIG = Path(__file__).parent.parent / "configs" / "qa_longformer.cfg"


def _qa_nlp(model_dir, *, max_length=256, null_threshold=0.0):
    # The QA head is newly initialized on a bare encoder: seed it.
    spacy.util.fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "clinlong_qa",
        config={
            "null_threshold": null_threshold,
            "model": {"name": str(model_dir), "max_length": max_length, "get_spans": {"overlap": 64}},
        },
    )
    nlp.initialize()
    return nlp


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
        # Snapped to token boundaries.
        assert doc.char_span(span.start_char, span.end_char) == span
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
    assert (span.start, span.end, span._.score) == (
        doc._.answers[0].start, doc._.answers[0].end, doc._.answers[0]._.score
    )


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
    mask = batch_tensors([w.input for w in windows], qa.model.facts, qa.model.transformer.device, sparse=False)
    glob = mask["global_attention_mask"][0].tolist()
    assert glob[: 1 + len(q_ids)] == [1] * (1 + len(q_ids)) and sum(glob) == 1 + len(q_ids)


def test_long_note_is_read_in_windows_and_late_windows_answer(qa_nlp, note):
    qa = qa_nlp.get_pipe("clinlong_qa")
    doc = qa_nlp.make_doc(note["text"])
    windows, pieces = encode_queries(qa.model, [QAQuery(doc, "What is the current dose?")])
    assert len(windows) >= 3 and pieces[0].n_wordpieces > 256
    assert windows[0].start == 0 and windows[-1].end == pieces[0].n_wordpieces
    assert all(a.end > b.start for a, b in zip(windows, windows[1:]))  # overlap
    # Logits that favour one span in the last window: decode finds it there.
    last = windows[-1]
    logits = [numpy.zeros((len(w.input), 2), dtype="float32") for w in windows]
    s, e = last.offset + 10, last.offset + 12
    logits[-1][s, 0] = logits[-1][e, 1] = 5.0
    (null, ranked), = decode(QAOutput(windows, pieces, logits), 1, max_answer_length=64)
    best = ranked[0]
    assert null == 0.0 and best.score == 10.0
    assert best.start == pieces[0].first_token[last.start + 10]
    assert best.end == pieces[0].last_token[last.start + 12] + 1
    assert best.start > windows[0].end  # beyond what the first window sees
    # The training target: inside the last window, CLS in the windows without it.
    target = (int(best.start), int(best.end))
    output = QAOutput(windows, pieces, logits)
    assert _window_target(last, target, output)[0] >= last.offset
    assert _window_target(windows[0], target, output) == (0, 0)
    # An answer longer than max_answer_length is never proposed.
    (_, short), = decode(QAOutput(windows, pieces, logits), 1, max_answer_length=2)
    assert all((c.start, c.end) != target for c in short)


def test_no_answer_when_the_null_score_wins(tiny_models, note):
    nlp = _qa_nlp(tiny_models("longformer"), null_threshold=1e9)
    doc = nlp.make_doc(note["text"])
    doc._.questions = [qa["question"] for qa in note["qas"][:2]]
    assert nlp(doc)._.answers == [None, None]
    assert nlp.get_pipe("clinlong_qa").ask(doc, ["What is the dose?"], top_k=3) == [[]]


@pytest.mark.parametrize("text,questions", [
    ("", ["What dose?"]),
    ("   \n\n  ", ["What dose?"]),
    ("Metformin 500 mg daily.", [""]),
    ("Metformin 500 mg daily.", ["   "]),
    ("Metformin 500 mg daily.", []),
])
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
    assert score_answer(["aspirin", "aspirin 81 mg"], "aspirin 81") == {"exact": 0.0, "f1": pytest.approx(0.8)}
    nlp = spacy.blank("en")
    text = "Metformin 500 mg daily. No allergies."
    ref = nlp.make_doc(text)
    ref.user_data["clinlong_qa"] = [
        {"question": "dose?", "answers": [{"text": "500 mg daily", "answer_start": 10}], "is_impossible": False},
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


def _excerpt(note, rng, extra_lines=1):
    """The lines of a note that hold its answers (each with the line before,
    often its section header) and a few other lines; answer offsets remapped."""
    text = note["text"]
    lines, pos = [], 0
    for line in text.splitlines(keepends=True):
        lines.append((pos, pos + len(line)))
        pos += len(line)

    def line_of(char):
        return next(i for i, (s, e) in enumerate(lines) if s <= char < e)

    keep = set()
    for qa in note["qas"]:
        for a in qa["answers"]:
            first = line_of(a["answer_start"])
            keep.update(range(max(first - 1, 0), line_of(a["answer_start"] + len(a["text"]) - 1) + 1))
    others = [i for i in range(len(lines)) if i not in keep and text[slice(*lines[i])].strip()]
    keep.update(rng.sample(others, min(extra_lines, len(others))))
    shift, parts, pos = {}, [], 0
    for i in sorted(keep):
        shift[i] = pos - lines[i][0]
        parts.append(text[slice(*lines[i])])
        pos += lines[i][1] - lines[i][0]
    qas = [
        {**qa, "answers": [{"text": a["text"], "answer_start": a["answer_start"] + shift[line_of(a["answer_start"])]}
                           for a in qa["answers"]]}
        for qa in note["qas"]
    ]
    return {**note, "text": "".join(parts), "qas": qas, "entities": [], "sections": []}


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
    notes = [_excerpt(n, random.Random(i)) for i, n in enumerate(generate_notes(40, seed=11))]
    nlp = spacy.blank("en")
    for name, part in (("train", notes[:32]), ("dev", notes[32:])):
        DocBin(docs=[note_to_doc(nlp, n) for n in part], store_user_data=True).to_disk(tmp_path / f"{name}.spacy")
    steps = 150
    overrides = {
        "paths.train": str(tmp_path / "train.spacy"),
        "paths.dev": str(tmp_path / "dev.spacy"),
        "components.clinlong_qa.model.name": str(tiny_models("longformer")),
        "components.clinlong_qa.model.max_length": 512,
        "training.max_steps": steps,
        "training.eval_frequency": steps,
        "training.optimizer.learn_rate.initial_rate": 0.004,
        "training.optimizer.learn_rate.warmup_steps": 10,
        "training.optimizer.learn_rate.total_steps": steps,
        "training.batcher.size.start": 150,
        "training.batcher.size.stop": 150,
    }
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
