"""medspaCy after the model: ConText flags and sections on the model's entities, quiet PyRuSH,
the pipeline's own tokenizer, the JSON view, and a round trip through to_disk/spacy.load."""

import json
import subprocess
import sys

import pytest
import spacy
from spacy.tokens import Span

from spacy_clinlong.integrations.medspacy import add_medspacy, doc_to_json

NOTE = (
    "HISTORY OF PRESENT ILLNESS: Denies chest pain. Reports cough for two days.\n"
    "FAMILY HISTORY: Mother with diabetes.\n"
    "PAST MEDICAL HISTORY: Hypertension.\n"
)


def ruler_pipeline():
    """A stand-in for a trained ner: fixed entities, so the rules' effect is exact."""
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns(
        [{"label": "PROBLEM", "pattern": p} for p in ("chest pain", "cough", "diabetes")]
        + [{"label": "PROBLEM", "pattern": "Hypertension"}]
    )
    return nlp


def ents_by_text(doc):
    return {ent.text: ent for ent in doc.ents}


def test_context_flags_and_sections_on_the_pipeline_entities():
    nlp = add_medspacy(ruler_pipeline())
    assert nlp.pipe_names == [
        "entity_ruler",
        "clinlong_sentences",
        "medspacy_sectionizer",
        "medspacy_context",
        "medspacy_doc_consumer",
    ]
    doc = nlp(NOTE)
    ents = ents_by_text(doc)
    assert ents["chest pain"]._.is_negated is True
    assert ents["cough"]._.is_negated is False and ents["cough"]._.is_family is False
    assert ents["diabetes"]._.is_family is True
    assert ents["chest pain"]._.section_category == "history_of_present_illness"
    assert ents["diabetes"]._.section_category == "family_history"
    assert ents["Hypertension"]._.section_category == "past_medical_history"
    assert ents["Hypertension"]._.is_historical is True


def test_the_pipeline_tokenizer_stays():
    nlp = ruler_pipeline()
    tokenizer = nlp.tokenizer
    add_medspacy(nlp)
    assert nlp.tokenizer is tokenizer
    assert [t.text for t in nlp("x-ray 5mg")] == [t.text for t in spacy.blank("en")("x-ray 5mg")]


def test_target_rules_add_to_the_model_entities_without_overriding_them():
    from medspacy.target_matcher import TargetRule

    nlp = add_medspacy(
        ruler_pipeline(), target_rules=[TargetRule("afib", "PROBLEM"), TargetRule("chest pain", "SYMPTOM")]
    )
    doc = nlp("No afib. Denies chest pain.")
    labels = {ent.text: ent.label_ for ent in doc.ents}
    assert labels == {"afib": "PROBLEM", "chest pain": "PROBLEM"}  # the model's label wins the overlap
    assert ents_by_text(doc)["afib"]._.is_negated is True
    assert "clinlong_target_ents" in nlp.pipe_names


def test_rules_do_not_log_or_warn_note_text(capfd, recwarn):
    from medspacy.target_matcher import TargetRule

    nlp = add_medspacy(ruler_pipeline(), target_rules=[TargetRule("zyxwvut chest pain", "PROBLEM")])
    nlp("Zyxwvut chest pain. Second sentence here.")
    assert not any("zyxwvut" in str(w.message).lower() for w in recwarn)
    captured = capfd.readouterr()
    assert "Zyxwvut" not in captured.err and "Zyxwvut" not in captured.out
    assert "DEBUG" not in captured.err


def test_own_sentences_are_kept_or_required():
    nlp = ruler_pipeline()
    nlp.add_pipe("sentencizer")
    add_medspacy(nlp, sentences="own")
    assert "clinlong_pyrush" not in nlp.pipe_names and "clinlong_sentences" not in nlp.pipe_names
    assert ents_by_text(nlp("Denies chest pain."))["chest pain"]._.is_negated is True
    with pytest.raises(ValueError, match="sets sentences"):
        add_medspacy(ruler_pipeline(), sentences="own")
    with pytest.raises(ValueError, match="sentences must be"):
        add_medspacy(ruler_pipeline(), sentences="spacy")


def test_json_view_of_a_doc():
    nlp = add_medspacy(ruler_pipeline())
    doc = nlp(NOTE)
    doc.cats = {"DIABETES": 0.25}
    view = doc_to_json(doc, note_id="n-1")
    assert json.loads(json.dumps(view)) == view
    assert view["id"] == "n-1" and view["length"] == len(NOTE) and view["cats"] == {"DIABETES": 0.25}
    chest = next(e for e in view["entities"] if e["text"] == "chest pain")
    assert NOTE[chest["start"] : chest["end"]] == "chest pain"
    assert chest["label"] == "PROBLEM" and chest["negated"] is True and chest["family"] is False
    assert chest["section"] == "history_of_present_illness"
    assert {s["category"] for s in view["sections"]} >= {"history_of_present_illness", "family_history"}
    assert "answers" not in view


def test_json_view_carries_answers(tiny_models):
    from spacy_clinlong.pipes.extensions import install_extensions

    install_extensions()
    nlp = spacy.blank("en")
    doc = nlp("Metformin 500 mg twice daily.")
    doc._.questions = ["What dose of metformin?", "What is the patient allergic to?"]
    answer = doc[1:3]
    answer._.score = 3.5
    doc._.answers = [answer, None]
    view = doc_to_json(doc)
    assert view["answers"] == [
        {
            "question": "What dose of metformin?",
            "answer": {"start": 10, "end": 16, "text": "500 mg", "score": 3.5},
        },
        {"question": "What is the patient allergic to?", "answer": None},
    ]
    assert view["entities"] == [] and view["id"] is None


def test_json_view_gives_each_question_its_exact_characters(tiny_models):
    """Two answers inside the same tokens: each keeps its own characters, not the token span's."""
    from spacy_clinlong.pipes.extensions import install_extensions, store_answers

    install_extensions()
    doc = spacy.blank("en")("Dose 500mg/day then stop.")
    doc._.questions = ["Dose?", "Unit?"]
    assert doc[1].text == "500mg"
    store_answers(doc, [(1, 2, 2.0, 5, 8), (1, 2, 1.0, 8, 10)])
    view = doc_to_json(doc)
    assert [a["answer"]["text"] for a in view["answers"]] == ["500", "mg"]
    assert [(a["answer"]["start"], a["answer"]["end"]) for a in view["answers"]] == [(5, 8), (8, 10)]
    assert [a["answer"]["score"] for a in view["answers"]] == [2.0, 1.0]


def test_transformer_entities_get_context_and_the_pipeline_round_trips(tiny_models, tmp_path):
    """Entities from a transformer ner (untrained weights, fixed by a ruler after it) keep ConText
    flags through to_disk and spacy.load with the medspaCy components loaded by name."""
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "transformer",
        config={
            "model": {
                "@architectures": "spacy-clinlong.LongTransformerModel.v1",
                "name": str(tiny_models("longformer")),
            }
        },
    )
    ruler = nlp.add_pipe("entity_ruler")
    nlp.initialize()
    ruler.add_patterns(
        [{"label": "PROBLEM", "pattern": "chest pain"}, {"label": "PROBLEM", "pattern": "diabetes"}]
    )
    add_medspacy(nlp)
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    assert loaded.pipe_names == nlp.pipe_names
    doc = loaded(NOTE)
    assert doc._.trf_data is not None
    ents = ents_by_text(doc)
    assert ents["chest pain"]._.is_negated is True and ents["diabetes"]._.is_family is True
    assert Span.has_extension("section_category") and ents["diabetes"]._.section_category == "family_history"
    # A fresh process finds medspaCy's factories by spaCy's entry points, without importing it.
    script = (
        "import spacy, sys; nlp = spacy.load(sys.argv[1]); "
        "doc = nlp('FAMILY HISTORY: Mother with diabetes.'); "
        "print([(e.text, e._.is_family) for e in doc.ents])"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "pipeline")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "('diabetes', True)" in result.stdout
    assert "DEBUG" not in result.stderr


# clinlong_context: medspaCy's ConText, graph built group by group, so its work grows with the note.
PROBLEMS = (
    "chest pain",
    "cough",
    "diabetes",
    "hypertension",
    "pneumonia",
    "fever",
    "effusion",
    "nausea",
    "history",
)
SENTENCES = (
    "Denies chest pain.",
    "No evidence of pneumonia or effusion.",
    "Reports cough for two days.",
    "History of hypertension.",
    "Mother with diabetes.",
    "If fever develops, return to clinic.",
    "Possible pneumonia, but no fever.",
    "No chest pain, cough, or nausea.",
    "Patient denies fever but reports cough.",
    "Family history of diabetes and hypertension.",
    "Rule out pneumonia.",
    "No increase in cough.",
    "Hypertension.\n",
    "FAMILY HISTORY: Mother with diabetes.\n",
    "Chest pain resolved.",
    "No history of nausea.",
    "Cough\n\n",
    "Brother with fever",
    "Past history of effusion; no pneumonia.",
)
CONTEXT_CONFIGS = {
    "default": {},
    "window": {"max_scope": 3},
    "prune": {"prune_on_target_overlap": True},
    "targets": {"max_targets": 1},
}


def context_pipeline(factory, config):
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns(
        [{"label": "PROBLEM", "pattern": [{"LOWER": w} for w in p.split()]} for p in PROBLEMS]
    )
    add_medspacy(nlp, sectionizer=False, context=False, doc_consumer=False)
    nlp.add_pipe(factory, config=config)
    return nlp


def context_view(doc):
    """Everything ConText sets: its graph (modifiers, scopes, edges in order) and each entity's flags."""
    graph = doc._.context_graph
    modifier = lambda m: (m.category, m.modifier_span, m.scope_span)  # noqa: E731
    return {
        "modifiers": [modifier(m) for m in graph.modifiers],
        "edges": [((t.start, t.end), modifier(m)) for t, m in graph.edges],
        "ents": [
            (
                e.start,
                e.end,
                e._.is_negated,
                e._.is_historical,
                e._.is_family,
                e._.is_hypothetical,
                e._.is_uncertain,
                [modifier(m) for m in e._.modifiers],
            )
            for e in doc.ents
        ],
    }


def random_note(seed, n=60):
    import random

    rng = random.Random(seed)
    return "".join(rng.choice(SENTENCES) + rng.choice((" ", " ", "\n")) for _ in range(n))


@pytest.fixture(scope="module", params=sorted(CONTEXT_CONFIGS))
def context_pair(request):
    config = CONTEXT_CONFIGS[request.param]
    return context_pipeline("medspacy_context", config), context_pipeline("clinlong_context", config)


@pytest.mark.parametrize(
    "text", [NOTE, random_note(0), random_note(1), random_note(2)], ids=["note", "r0", "r1", "r2"]
)
def test_clinlong_context_sets_what_medspacy_context_sets(context_pair, text):
    stock, ours = context_pair
    expected, got = context_view(stock(text)), context_view(ours(text))
    assert got == expected
    assert any(e[2] for e in got["ents"]) and any(e[4] for e in got["ents"])  # negated and family entities


def test_add_medspacy_uses_clinlong_context_and_it_round_trips(tmp_path):
    from medspacy.context import ConTextRule

    rules = tmp_path / "rules.json"
    ConTextRule.to_json([ConTextRule("without", "NEGATED_EXISTENCE", direction="FORWARD")], str(rules))
    nlp = add_medspacy(ruler_pipeline(), context_rules=rules, doc_consumer=False)
    assert nlp.get_pipe_meta("medspacy_context").factory == "clinlong_context"
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    for pipeline in (nlp, loaded):
        ents = ents_by_text(pipeline("Without chest pain. Denies cough."))
        # Only the rule file's rule: "denies" is not in it.
        assert ents["chest pain"]._.is_negated is True and ents["cough"]._.is_negated is False


def count_graph_pairs(monkeypatch):
    """Record, for each ConTextGraph run, the modifier pairs and target/modifier pairs it compares."""
    from medspacy.context import ConTextGraph

    pairs = []
    update_scopes, apply_modifiers = ConTextGraph.update_scopes, ConTextGraph.apply_modifiers

    def counted_update(graph):
        pairs.append(len(graph.modifiers) * (len(graph.modifiers) - 1) // 2)
        update_scopes(graph)

    def counted_apply(graph):
        pairs.append(len(graph.targets) * len(graph.modifiers))
        apply_modifiers(graph)

    monkeypatch.setattr(ConTextGraph, "update_scopes", counted_update)
    monkeypatch.setattr(ConTextGraph, "apply_modifiers", counted_apply)
    return pairs


def test_clinlong_context_work_grows_linearly_with_the_note(monkeypatch):
    pairs = count_graph_pairs(monkeypatch)
    block = random_note(3, n=20) + "\n"
    work = {}
    for factory in ("medspacy_context", "clinlong_context"):
        nlp = context_pipeline(factory, {})
        for copies in (2, 16):
            pairs.clear()
            nlp(block * copies)
            work[factory, copies] = (sum(pairs), max(pairs))
    assert work["clinlong_context", 16][0] == 8 * work["clinlong_context", 2][0]  # 8x the note, 8x the pairs
    assert work["clinlong_context", 16][1] == work["clinlong_context", 2][1]  # no graph grows with the note
    assert work["medspacy_context", 16][0] > 50 * work["medspacy_context", 2][0]  # medspaCy's: ~64x


def test_quiet_pyrush_sets_pyrush_sentences_in_one_write():
    from PyRuSH import PyRuSHSentencizer

    from spacy_clinlong.integrations.medspacy.pipes import QuietPyRuSH, set_sentence_starts

    nlp = spacy.blank("en")
    ours, stock = QuietPyRuSH(nlp, "ours"), PyRuSHSentencizer(nlp, name="stock")
    for text in (NOTE, random_note(4), "", "Cough", "  \n\nNo fever"):
        expected = [t.is_sent_start for t in stock(nlp.make_doc(text))]
        assert [t.is_sent_start for t in ours(nlp.make_doc(text))] == expected
        assert [[t.is_sent_start for t in d] for d in ours.pipe([nlp.make_doc(text)])] == [expected]
    parsed = nlp.make_doc("No fever.")
    parsed[0].dep_ = "neg"
    with pytest.raises(ValueError, match="E043"):
        set_sentence_starts(parsed, [True, False, False])


def test_add_medspacy_pyrush_choice_adds_pyrush():
    nlp = add_medspacy(ruler_pipeline(), sentences="pyrush", doc_consumer=False)
    assert "clinlong_pyrush" in nlp.pipe_names and "clinlong_sentences" not in nlp.pipe_names
    assert ents_by_text(nlp(NOTE))["chest pain"]._.is_negated is True


def dense_entity_doc(nlp, text):
    """A doc with an entity on every other long word: many entities, in every section."""
    from spacy.tokens import Span

    doc = nlp.make_doc(text)
    ents, last = [], -2
    for token in doc:
        if token.is_alpha and len(token) > 5 and token.i > last + 1:
            ents.append(Span(doc, token.i, token.i + 1, label="PROBLEM"))
            last = token.i
    doc.ents = ents
    doc.spans["medspacy_spans"] = ents[::3]
    return doc


@pytest.mark.parametrize("dtypes", [("ents", "section", "context"), "all", ("ents",)])
def test_clinlong_doc_consumer_writes_what_medspacys_writes(dtypes):
    from medspacy.io.doc_consumer import DocConsumer

    from spacy_clinlong.integrations.medspacy.doc_consumer import FastDocConsumer

    nlp = add_medspacy(spacy.blank("en"), doc_consumer=False)
    text = (
        NOTE
        + "\n"
        + "".join(random_note(seed) + "\nPLAN:\n" for seed in range(5, 9))
        + "Intro without header."
    )
    doc = dense_entity_doc(nlp, text)
    for _, component in nlp.pipeline:
        component(doc)
    assert len(doc.ents) > 100 and len(doc._.context_graph.edges) > 5 and len(doc._.sections) > 3
    DocConsumer(nlp, dtypes=dtypes)(doc)
    expected = doc._.data
    FastDocConsumer(nlp, dtypes=dtypes)(doc)
    assert doc._.data == expected
    assert [list(columns) for columns in doc._.data.values()] == [
        list(columns) for columns in expected.values()
    ]


def test_clinlong_doc_consumer_on_empty_docs_and_custom_attributes():
    from medspacy.io.doc_consumer import DocConsumer

    from spacy_clinlong.integrations.medspacy.doc_consumer import FastDocConsumer

    if not Span.has_extension("clinlong_test_score"):
        Span.set_extension("clinlong_test_score", default=0.5)
    nlp = add_medspacy(ruler_pipeline(), doc_consumer=False)
    attrs = {"ents": ["text", "label_", "clinlong_test_score", "section_title", "is_negated", "start"]}
    for text in ("", "No fever.", NOTE):
        doc = nlp(text)
        if doc.ents:
            doc.ents[0]._.clinlong_test_score = 0.9
        expected = DocConsumer(nlp, dtypes=("ents",), dtype_attrs=attrs)(doc)._.data
        assert FastDocConsumer(nlp, dtypes=("ents",), dtype_attrs=attrs)(doc)._.data == expected
        assert expected["ents"]["clinlong_test_score"][:1] == ([0.9] if doc.ents else [])


def test_add_medspacy_uses_clinlong_doc_consumer_and_it_round_trips(tmp_path):
    nlp = add_medspacy(ruler_pipeline())
    assert nlp.get_pipe_meta("medspacy_doc_consumer").factory == "clinlong_doc_consumer"
    assert nlp.get_pipe_meta("clinlong_sentences").factory == "clinlong_sentences"
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    assert loaded.pipe_names == nlp.pipe_names
    assert loaded(NOTE)._.data == nlp(NOTE)._.data
    assert loaded(NOTE)._.data["ents"]["is_family"] == [False, False, True, False]


def test_lower_matcher_matches_what_spacys_matcher_matches():
    from medspacy.context import ConText
    from spacy.matcher import Matcher

    from spacy_clinlong.integrations.medspacy.lower_matcher import LowerMatcher

    nlp = spacy.blank("en")
    rules = [r for r in ConText(nlp).rules if isinstance(r.pattern, list)]
    stock, ours = Matcher(nlp.vocab), LowerMatcher(nlp.vocab)
    for rule in rules:
        stock.add(rule._rule_id, [rule.pattern])
        ours.add(rule._rule_id, [rule.pattern])
    extra = " ".join(
        "may be ruled out for no new evidence of not significant not have evidence of her mother's "
        "can rule her out against was not is negative".split()
    )
    doc = nlp.make_doc(" ".join(random_note(seed) for seed in range(10, 14)) + " " + extra + " not")
    assert ours.exact and len(stock(doc)) > 50
    assert ours(doc) == stock(doc)  # the same matches, in the same order
    assert ours(nlp.make_doc("")) == [] == stock(nlp.make_doc(""))
    # Anything but LOWER words hands the call to spaCy's Matcher.
    ours.add("shape", [[{"SHAPE": "dd"}]])
    assert not ours.exact and ours(nlp.make_doc("No 12 fever")) == stock(nlp.make_doc("No 12 fever")) + [
        (nlp.vocab.strings["shape"], 1, 2)
    ]
