"""`clinlong_sentences`: PyRuSH's clinical sentence boundaries at regex speed, in a medspaCy pipeline."""

import numpy
import pytest
import spacy

from spacy_clinlong.integrations.medspacy import add_medspacy
from spacy_clinlong.integrations.medspacy.sentences import ClinicalSentences

NOTES = [
    (
        "HISTORY OF PRESENT ILLNESS: Mr. Smith is a 65 y.o. man seen by Dr. Jones. He denies chest pain.\n"
        "He takes metoprolol 5.5 mg b.i.d. for hypertension.\n\nPAST MEDICAL HISTORY:\n1. Hypertension.\n"
        "2. Diabetes mellitus type 2.\n3. Atrial fibrillation\n\nMEDICATIONS:\n1. Aspirin 81 mg daily\n"
        "2. Lisinopril 10 mg daily\n- Metformin 500 mg\n\nALLERGIES: NKDA\n\nPHYSICAL EXAM:\n"
        "T 98.6 P 72 R 16 BP 120/80\nLungs: clear.\nHeart: regular rate and rhythm.\n\nASSESSMENT AND PLAN:\n"
        "Chest pain, likely musculoskeletal. Will follow up in 2 weeks. Pt. agrees with plan.\n"
    ),
    (
        "Chief Complaint: cough\n\nHPI: 45 yo F with cough x3 days. No fever. Denies shortness of breath?  "
        "Reports sputum.\nSocial history: quit smoking in 2001.\nFamily history: mother with breast cancer, "
        "father with MI at 50.\n\nPlan:\n# Cough - likely viral\n# HTN - continue meds\nFollow up with PCP.\n"
        "Signed by Dr. Lee, MD.\n"
    ),
    (
        "DISCHARGE SUMMARY\nAdmission Date: 2022-12-22\nDischarge Date: 2022-12-25\nPatient: Ms. Chen\n\n"
        "DISCHARGE DIAGNOSIS: pneumonia\nThe patient was admitted and treated with ceftriaxone 1 g IV q.d. "
        "and azithromycin.  She improved.  Her O2 sat was 95% on room air.\nDischarge Instructions:\n"
        "Take all medications as directed.\nReturn if fever > 101.5 F.\n"
    ),
    # MTSamples-like: line breaks written as commas.
    (
        "PREOPERATIVE DIAGNOSIS:,  Cataract, right eye.,PROCEDURE: , ,1.  Phacoemulsification.,"
        "2.  Lens implant.,The patient was brought to the OR.  The eye was prepped.  A 2.8 mm. "
        "incision was made.  Blood loss was less than 10 mL.  No complications.  Dr. X was present. "
        "the wound was closed.  She tolerated it well!  Pain was controlled?  Yes."
    ),
]


@pytest.fixture(scope="module")
def nlp():
    nlp = spacy.blank("en")
    nlp.add_pipe("clinlong_sentences")
    return nlp


def sentences(nlp, text):
    return [sent.text for sent in nlp(text).sents if not sent.text.isspace()]


def test_line_breaks_and_headers_start_sentences(nlp):
    got = sentences(nlp, "HISTORY OF PRESENT ILLNESS:\nChest pain for two days\nNo fever\n\nPLAN:\nAspirin")
    assert got == ["HISTORY OF PRESENT ILLNESS:", "Chest pain for two days", "No fever", "PLAN:", "Aspirin"]


def test_abbreviations_and_decimals_do_not_end_sentences(nlp):
    got = sentences(nlp, "Seen by Dr. Smith today. Took 5.5 mg of drug. Mr. Jones agrees.")
    assert got == ["Seen by Dr. Smith today.", "Took 5.5 mg of drug.", "Mr. Jones agrees."]


def test_numbered_lists_split_after_the_number(nlp):
    doc = nlp("MEDICATIONS:\n1. Aspirin 81 mg daily\n2. Lisinopril 10 mg daily\n")
    starts = [t.text for t in doc if t.is_sent_start and not t.is_space]
    assert starts == ["MEDICATIONS", "1", "2"]
    # Written inline (MTSamples), PyRuSH ends the sentence after the number instead.
    assert sentences(nlp, "FINDINGS:,1.  Normal heart.,2.  No effusion.")[1] == "Normal heart.,2."


def test_every_token_gets_a_sentence_start(nlp):
    for text in NOTES + ["", " ", "\n\n", "word", "No fever"]:
        doc = nlp(text)
        assert all(t.is_sent_start is not None for t in doc)
        assert not len(doc) or doc[0].is_sent_start


def pyrush_starts(text):
    from spacy_clinlong.integrations.medspacy.pipes import QuietPyRuSH

    nlp = spacy.blank("en")
    doc = nlp.make_doc(text)
    starts = numpy.asarray(QuietPyRuSH(nlp, "rush").rush.predict([doc])[0], dtype=bool)
    return doc, starts


@pytest.mark.parametrize("text", NOTES + [note.replace("\n", "\r\n") for note in NOTES[:3]])
def test_same_sentence_starts_as_pyrush(text):
    doc, expected = pyrush_starts(text)
    got = ClinicalSentences().predict(doc)
    expected[0] = got[0] = True  # spaCy starts the doc's first sentence either way
    assert got.tolist() == expected.tolist()
    assert expected.sum() > 8


def test_sectionizer_and_context_run_after_it(tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns(
        [{"label": "PROBLEM", "pattern": p} for p in ("chest pain", "fever", "breast cancer", "hypertension")]
    )
    add_medspacy(nlp)
    assert nlp.pipe_names[1] == "clinlong_sentences"
    for pipeline in (nlp, (nlp.to_disk(tmp_path / "p"), spacy.load(tmp_path / "p"))[1]):
        assert pipeline.pipe_names == nlp.pipe_names
        doc = pipeline(NOTES[0] + NOTES[1])
        ents = {e.text: e for e in doc.ents}
        assert ents["chest pain"]._.is_negated is True and ents["chest pain"]._.section_category is not None
        assert ents["fever"]._.is_negated is True
        assert ents["breast cancer"]._.is_family is True
        assert ents["hypertension"]._.is_negated is False
        assert len(doc._.sections) > 3 and len(list(doc.sents)) > 20


def test_config_round_trip(tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("clinlong_sentences", config={"min_sent_chars": 3})
    nlp.to_disk(tmp_path / "p")
    loaded = spacy.load(tmp_path / "p")
    assert loaded.get_pipe_config("clinlong_sentences")["min_sent_chars"] == 3
    text = NOTES[1]
    assert [t.is_sent_start for t in loaded(text)] == [t.is_sent_start for t in nlp(text)]
    assert loaded.get_pipe("clinlong_sentences").to_bytes() == b""


def test_refuses_a_parsed_doc(nlp):
    doc = nlp.make_doc("No fever. Cough.")
    doc[0].dep_ = "neg"
    with pytest.raises(ValueError, match="E043"):
        nlp.get_pipe("clinlong_sentences")(doc)


def test_measure_medspacy_speed_reports_agreement_and_identical_outputs():
    from spacy_clinlong.integrations.medspacy.speed import measure_medspacy_speed

    report = measure_medspacy_speed(NOTES, repeats=1, cpu=None)
    assert report["notes"] == len(NOTES) and report["identical"] is True
    assert report["sentences"]["agreement"]["words"]["f1"] == 1.0
    assert set(report["rules"]) == {"medspacy_notes", "fast_notes", "medspacy_long_note", "fast_long_note"}
    assert all(v > 0 for v in report["rules"]["fast_notes"].values())
