"""The synthetic corpus: determinism, alignment, labels that need long context, files."""

import re
from collections import Counter
from typing import Dict, List

import pytest
import spacy
import srsly
from spacy.tokens import DocBin
from typer.testing import CliRunner

from spacy_clinlong.corpus import (
    CAT_LABELS,
    CONDITION_LABELS,
    CONDITION_TERMS,
    ENTITY_LABELS,
    FINAL_MED_SECTIONS,
    generate_notes,
    write_corpus,
)

FLAGS = ("negated", "historical", "family", "hypothetical")


@pytest.fixture(scope="module")
def notes() -> List[Dict]:
    return generate_notes(300, seed=0)


@pytest.fixture(scope="module")
def nlp():
    return spacy.blank("en")


def _section_of(note: Dict, ent: Dict) -> str:
    for sec in note["sections"]:
        if sec["start"] <= ent["start"] and ent["end"] <= sec["end"]:
            return sec["name"]
    return ""


def _mentions(note: Dict, section_names, label: str) -> set:
    return {
        note["text"][e["start"] : e["end"]].lower()
        for e in note["entities"]
        if e["label"] == label and _section_of(note, e) in section_names
    }


def test_deterministic_and_seed_dependent():
    assert generate_notes(8, seed=3) == generate_notes(8, seed=3)
    assert [n["text"] for n in generate_notes(8, seed=3)] != [n["text"] for n in generate_notes(8, seed=4)]


def test_note_i_does_not_depend_on_n():
    assert generate_notes(12, seed=5)[:5] == generate_notes(5, seed=5)
    assert generate_notes(0) == []
    with pytest.raises(ValueError):
        generate_notes(-1)


def test_schema_and_plain_text(notes):
    ids = [n["id"] for n in notes]
    assert len(set(ids)) == len(ids)
    for note in notes[:50]:
        assert note["note_type"] in ("discharge_summary", "progress_note")
        assert note["text"].isascii()
        assert set(note["cats"]) == set(CAT_LABELS)
        assert all(v in (0, 1) for v in note["cats"].values())
        for sec in note["sections"]:
            # Each section starts with its upper-case header on its own line.
            assert note["text"][sec["start"] - 1] == "\n"
            header = note["text"][sec["start"] :].split(":", 1)[0]
            assert header.isupper()
    assert Counter(n["note_type"] for n in notes).keys() == {"discharge_summary", "progress_note"}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_offsets_on_token_boundaries(nlp, seed):
    for note in generate_notes(15, seed=seed):
        doc = nlp.make_doc(note["text"])
        previous_end = 0
        for ent in sorted(note["entities"], key=lambda e: e["start"]):
            assert ent["start"] >= previous_end, "entities overlap"
            previous_end = ent["end"]
            span = doc.char_span(ent["start"], ent["end"])
            assert span is not None, (note["id"], ent["start"], ent["end"])
            assert span.text == note["text"][ent["start"] : ent["end"]]
        for sec in note["sections"]:
            span = doc.char_span(sec["start"], sec["end"])
            assert span is not None, (note["id"], sec["start"], sec["end"])
            assert span.text == note["text"][sec["start"] : sec["end"]]


def test_labels_and_context_flags_occur(notes):
    labels = Counter(e["label"] for n in notes for e in n["entities"])
    assert set(labels) == set(ENTITY_LABELS)
    for flag in FLAGS:
        assert sum(e[flag] for n in notes for e in n["entities"]) > 50, flag
    # Family mentions live in FAMILY HISTORY; hypothetical ones in instructions or plans.
    family = Counter(_section_of(n, e) for n in notes for e in n["entities"] if e["family"])
    assert family.most_common(1)[0][0] == "FAMILY_HISTORY"


def test_same_drug_is_treatment_and_allergen_far_from_headers(notes, nlp):
    shared = [
        n
        for n in notes
        if _mentions(n, ("MEDICATIONS",), "TREATMENT") & _mentions(n, ("ALLERGIES",), "ALLERGEN")
    ]
    assert len(shared) > 30
    far = {"ALLERGIES": 0, "MEDICATIONS": 0}
    for note in sorted(notes, key=lambda n: -len(n["text"]))[:15]:
        doc = nlp.make_doc(note["text"])
        for sec in note["sections"]:
            if sec["name"] not in far:
                continue
            header = doc.char_span(sec["start"], sec["end"])
            for ent in note["entities"]:
                if sec["start"] <= ent["start"] < sec["end"]:
                    far[sec["name"]] += doc.char_span(ent["start"], ent["end"]).start - header.start > 200
    assert far["ALLERGIES"] > 0 and far["MEDICATIONS"] > 0


def test_allergy_and_medication_items_share_local_templates(notes):
    """Only the section header tells the two lists apart, not the item wording."""

    def patterns(note: Dict, name: str) -> List[str]:
        text, out = note["text"], []
        for ent in note["entities"]:
            if _section_of(note, ent) == name:
                start = text.rfind("\n", 0, ent["start"]) + 1
                end = text.find("\n", ent["end"])
                line = text[start : ent["start"]] + "<D>" + text[ent["end"] : end if end >= 0 else None]
                out.append(re.sub(r"\d+", "0", line))
        return out

    allergy = [p for n in notes for p in patterns(n, "ALLERGIES")]
    meds = {p for n in notes for p in patterns(n, "MEDICATIONS")}
    assert sum(p in meds for p in allergy) / len(allergy) > 0.95
    assert not any(re.search(r"allerg|reaction|rash|hives|anaphyla", p, re.I) for p in allergy)


def test_a_drug_name_says_little_about_its_list(notes):
    """Allergies are drawn like another patient's home list: guessing the list from the drug
    name alone does barely better than always guessing the larger list."""
    from spacy_clinlong.corpus.synth.vocab import DRUG_NAMES

    by_drug: Dict[str, Counter] = {}
    for note in notes:
        for ent in note["entities"]:
            name, section = note["text"][ent["start"] : ent["end"]], _section_of(note, ent)
            if section in ("ALLERGIES", "MEDICATIONS") and name in DRUG_NAMES:
                by_drug.setdefault(name, Counter())[section] += 1
    total = sum(sum(c.values()) for c in by_drug.values())
    by_name = sum(max(c.values()) for c in by_drug.values()) / total
    larger = max(sum(c[s] for c in by_drug.values()) for s in ("ALLERGIES", "MEDICATIONS")) / total
    assert total > 1000
    assert by_name - larger < 0.06


def test_cats_follow_the_annotations(notes):
    for note in notes:
        affirmed = {
            note["text"][e["start"] : e["end"]].lower()
            for e in note["entities"]
            if e["label"] == "PROBLEM" and not (e["negated"] or e["family"] or e["hypothetical"])
        }
        for label in CONDITION_LABELS:
            terms = {t.lower() for t in CONDITION_TERMS[label]}
            assert note["cats"][label] == int(bool(affirmed & terms)), (note["id"], label)
        conflict = _mentions(note, ("ALLERGIES",), "ALLERGEN") & _mentions(
            note, FINAL_MED_SECTIONS, "TREATMENT"
        )
        assert note["cats"]["ALLERGY_CONFLICT"] == int(bool(conflict)), note["id"]
    # Distractors: notes negative for a label still mention it (negated, family or hypothetical).
    for label in CONDITION_LABELS:
        terms = {t.lower() for t in CONDITION_TERMS[label]}
        assert any(
            note["cats"][label] == 0
            and any(note["text"][e["start"] : e["end"]].lower() in terms for e in note["entities"])
            for note in notes
        ), label


def test_cat_rates_are_balanced(notes):
    for label in CAT_LABELS:
        rate = sum(n["cats"][label] for n in notes[:200]) / 200
        assert 0.15 <= rate <= 0.85, (label, rate)


def test_qa_answers_are_exact_and_some_impossible(notes):
    qas = [qa for n in notes for qa in n["qas"]]
    assert all(3 <= len(n["qas"]) <= 8 for n in notes)
    for note in notes:
        for qa in note["qas"]:
            assert qa["is_impossible"] == (not qa["answers"])
            for ans in qa["answers"]:
                assert (
                    note["text"][ans["answer_start"] : ans["answer_start"] + len(ans["text"])] == ans["text"]
                )
    impossible = sum(qa["is_impossible"] for qa in qas) / len(qas)
    assert 0.15 <= impossible <= 0.35
    assert len({qa["id"] for qa in qas}) == len(qas)


def test_qa_excerpts_keep_answers_exact_and_the_line_above(notes):
    import random

    from spacy_clinlong.corpus.synth.qa import qa_excerpt

    for i, note in enumerate(notes[:60]):
        excerpt = qa_excerpt(note, random.Random(i))
        text, lines = excerpt["text"], note["text"].splitlines(keepends=True)
        assert len(text) < len(note["text"]) and excerpt["entities"] == [] and excerpt["cats"] == {}
        kept = text.splitlines(keepends=True)
        rest = iter(lines)
        assert all(line in rest for line in kept)  # whole lines of the note, in order
        for before, after in zip(note["qas"], excerpt["qas"], strict=True):
            assert {k: v for k, v in before.items() if k != "answers"} == {
                k: v for k, v in after.items() if k != "answers"
            }
            for old, new in zip(before["answers"], after["answers"], strict=True):
                start = new["answer_start"]
                assert text[start : start + len(new["text"])] == new["text"] == old["text"]
                line, original = text[:start].count("\n"), note["text"][: old["answer_start"]].count("\n")
                if original:  # the line above (often the section header) is kept
                    assert line >= 1 and kept[line - 1] == lines[original - 1]


def test_length_distribution(notes):
    words = sorted(len(n["text"].split()) for n in notes)
    assert words[0] <= 300 and words[-1] >= 4000
    assert 200 <= words[0] and words[-1] <= 4700
    assert 700 <= words[len(words) // 2] <= 2000
    assert sum(500 <= w <= 3000 for w in words) / len(words) > 0.6


def test_write_corpus_rejects_bad_splits(tmp_path):
    with pytest.raises(ValueError):
        write_corpus(generate_notes(2), tmp_path, splits=(0.5, 0.5, 0.5))


def test_cli_writes_readable_files(tmp_path, nlp):
    from spacy_clinlong.cli import app

    out = tmp_path / "corpus"
    result = CliRunner().invoke(app, ["synth", "--n", "20", "--seed", "1", "--qa-excerpts", str(out)])
    assert result.exit_code == 0, result.output
    notes = generate_notes(20, seed=1)
    # Counts only: not a line of any note reaches the console.
    assert not any(line in result.output for n in notes for line in n["text"].splitlines() if len(line) > 30)
    docs = list(DocBin().from_disk(out / "train.spacy").get_docs(nlp.vocab))
    assert len(docs) == 16
    assert docs[0].text == notes[0]["text"]
    assert len(docs[0].ents) == len(notes[0]["entities"])
    assert docs[0].cats == {k: float(v) for k, v in notes[0]["cats"].items()}
    assert [s.label_ for s in docs[0].spans["sections"]] == [s["name"] for s in notes[0]["sections"]]
    ent = notes[0]["entities"][0]
    assert docs[0].user_data[("._.", "is_negated", ent["start"], ent["end"])] == ent["negated"]
    assert len(list(srsly.read_jsonl(out / "dev.jsonl"))) == 2
    squad = srsly.read_json(out / "qa_test.json")
    assert squad["version"] == "v2.0" and len(squad["data"]) == 2
    assert squad["data"][0]["paragraphs"][0]["context"] == notes[18]["text"]
    excerpts = list(DocBin().from_disk(out / "train_qa_excerpts.spacy").get_docs(nlp.vocab))
    assert len(excerpts) == 16 and not (out / "test_qa_excerpts.spacy").exists()
    assert [qa["id"] for qa in excerpts[0].user_data["clinlong_qa"]] == [qa["id"] for qa in notes[0]["qas"]]
    assert len(excerpts[0].text) < len(notes[0]["text"]) and not excerpts[0].ents
    assert len(list(DocBin().from_disk(out / "dev_qa_excerpts.spacy").get_docs(nlp.vocab))) == 2


def test_cli_rejects_invalid_n(tmp_path):
    from spacy_clinlong.cli import app

    result = CliRunner().invoke(app, ["synth", "--n", "0", str(tmp_path / "x")])
    assert result.exit_code != 0
    assert "--n" in result.output
