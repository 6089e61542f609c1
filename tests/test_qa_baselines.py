"""Trivial QA baselines and QA scores by the answer's distance from its section header."""

import pytest
import spacy
from spacy.tokens import Span

from spacy_clinlong.corpus import generate_notes, note_to_doc
from spacy_clinlong.evaluation import (
    baseline_scores,
    header_distance,
    note_sentences,
    pipeline_answers,
    question_scores,
    scores_by_distance,
    sentence_overlap,
)

NOTE = (
    "ADMISSION MEDICATIONS:\n"
    "1. Metformin 500 mg by mouth twice daily.\n"
    "2. Lisinopril 10 mg by mouth daily.\n"
    "\n"
    "DISCHARGE MEDICATIONS:\n"
    "1. Metformin 1000 mg by mouth twice daily.\n"
    "2. Lisinopril 20 mg by mouth daily.\n"
)


def _doc(nlp, text, qas, sections=()):
    doc = nlp.make_doc(text)
    doc.user_data["clinlong_qa"] = qas
    doc.spans["sections"] = [doc.char_span(s, e, label=label) for s, e, label in sections]
    return doc


def _qa(text, question, answer=None, nth=0):
    if answer is None:
        return {"question": question, "answers": [], "is_impossible": True}
    start = -1
    for _ in range(nth + 1):
        start = text.index(answer, start + 1)
    return {
        "question": question,
        "answers": [{"text": answer, "answer_start": start}],
        "is_impossible": False,
    }


@pytest.fixture(scope="module")
def nlp():
    return spacy.blank("en")


@pytest.fixture(scope="module")
def synth_docs(nlp):
    return [note_to_doc(nlp, n) for n in generate_notes(8, seed=5)]


def test_no_answer_scores_the_share_of_unanswerable_questions(synth_docs):
    qas = [qa for doc in synth_docs for qa in doc.user_data["clinlong_qa"]]
    share = sum(qa["is_impossible"] for qa in qas) / len(qas)
    assert 0 < share < 1
    scores = baseline_scores(synth_docs)
    assert scores["no_answer"] == {"qa_exact": pytest.approx(share), "qa_f1": pytest.approx(share)}


def test_sentence_overlap_answers_with_the_sentence_sharing_the_rarest_question_words(nlp):
    doc = nlp.make_doc(NOTE)
    # Two lines share "lisinopril": the earlier wins the tie.
    assert sentence_overlap(doc, "What dose of lisinopril?") == "2. Lisinopril 10 mg by mouth daily."
    # "discharge" is rarer than "lisinopril" (one line, a header): the rare word decides.
    assert sentence_overlap(doc, "Which discharge dose?") == "DISCHARGE MEDICATIONS:"
    assert sentence_overlap(doc, "Lisinopril dose on discharge?") == "DISCHARGE MEDICATIONS:"
    assert sentence_overlap(doc, "What dose of warfarin?") is None  # no word shared: no answer
    assert sentence_overlap(doc, "What is it?") is None  # stop words only
    # Sentences: lines, and sentence-final punctuation inside a line.
    two = nlp.make_doc("Stable. Continue metformin.\nFollow up in 2 weeks.")
    assert [s.text for s in note_sentences(two)] == [
        "Stable.",
        "Continue metformin.",
        "Follow up in 2 weeks.",
    ]


def test_baselines_are_scored_with_squad_em_and_f1(nlp):
    qas = [
        _qa(NOTE, "What dose of lisinopril?", "10 mg"),
        _qa(NOTE, "What dose of warfarin?"),
        _qa(NOTE, "What dose of aspirin?", None),
    ]
    doc = _doc(nlp, NOTE, qas)
    scores = baseline_scores([doc])
    # no_answer: right on the two unanswerable questions only.
    assert scores["no_answer"] == {"qa_exact": pytest.approx(2 / 3), "qa_f1": pytest.approx(2 / 3)}
    # sentence_overlap: "2 lisinopril 10 mg by mouth daily" against "10 mg"
    # (precision 2/7, recall 1: F1 4/9), then two right no-answers.
    assert scores["sentence_overlap"]["qa_exact"] == pytest.approx(2 / 3)
    assert scores["sentence_overlap"]["qa_f1"] == pytest.approx((4 / 9 + 1 + 1) / 3)


def test_header_distance_counts_tokens_or_wordpieces_from_the_section_header(nlp, tiny_models):
    from transformers import AutoTokenizer

    split = NOTE.index("DISCHARGE")
    sections = [(0, split - 2, "MEDICATIONS"), (split, len(NOTE) - 1, "DISCHARGE_MEDICATIONS")]
    qas = [
        _qa(NOTE, "What dose of lisinopril was the patient discharged on?", "20 mg"),
        _qa(NOTE, "What dose of metformin was the patient taking on admission?", "500 mg"),
        _qa(NOTE, "What dose of aspirin?"),
    ]
    doc = _doc(nlp, NOTE, qas, sections)
    section = doc.spans["sections"][1]
    answer = doc.char_span(qas[0]["answers"][0]["answer_start"], qas[0]["answers"][0]["answer_start"] + 5)
    assert header_distance(doc, qas[0]) == answer.start - section.start > 10
    # ADMISSION MEDICATIONS : \n 1 . Metformin | 500
    assert header_distance(doc, qas[1]) == 7
    assert header_distance(doc, qas[2]) is None
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_models("longformer")))
    in_pieces = header_distance(doc, qas[0], tokenizer=tokenizer)
    between = NOTE[split : qas[0]["answers"][0]["answer_start"]]
    assert in_pieces == len(tokenizer(between, add_special_tokens=False)["input_ids"])
    # Without sections there is nothing to measure from.
    assert header_distance(_doc(nlp, NOTE, qas), qas[0]) is None


def test_scores_by_distance_buckets_each_question_once(synth_docs):
    rows = question_scores(synth_docs, answer_fn=sentence_overlap)
    assert len(rows) == sum(len(d.user_data["clinlong_qa"]) for d in synth_docs)
    buckets = scores_by_distance(rows)
    main = ("near", "mid", "far", "unanswerable", "no section")
    assert sum(buckets[k]["n"] for k in main if k in buckets) == len(rows)
    assert buckets["unanswerable"]["n"] == sum(r["impossible"] for r in rows)
    # The synthetic notes put every answer in a section, some far from its header.
    assert "no section" not in buckets and buckets["far"]["n"] > 0
    far = [r for r in rows if r["distance"] is not None and r["distance"] > 128]
    assert buckets["far"]["qa_f1"] == pytest.approx(sum(r["f1"] for r in far) / len(far))
    with pytest.raises(ValueError):
        question_scores(synth_docs)


def test_a_pipeline_that_never_answers_scores_as_the_no_answer_baseline(tiny_models, synth_docs):
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "clinlong_qa",
        config={"null_threshold": 1e9, "model": {"name": str(tiny_models("longformer")), "max_length": 512}},
    )
    nlp.initialize()
    docs = synth_docs[:2]
    answers = pipeline_answers(nlp, docs)
    assert [len(a) for a in answers] == [len(d.user_data["clinlong_qa"]) for d in docs]
    assert all(a is None for per_doc in answers for a in per_doc)
    rows = question_scores(docs, answers)
    assert rows == question_scores(docs, answer_fn=lambda doc, q: None)


def test_note_sentences_follows_doc_sents_when_set(nlp):
    doc = nlp.make_doc("Metformin 500 mg. Lisinopril 10 mg.")
    for tok in doc:
        tok.is_sent_start = tok.i in (0, 2)
    assert [s.text for s in note_sentences(doc)] == ["Metformin 500", "mg. Lisinopril 10 mg."]
    assert all(isinstance(s, Span) for s in note_sentences(doc))
