"""Entity recall by distance from the section header (the compare step's long-range view)."""

import pytest
import spacy
import srsly
from spacy.tokens import DocBin, Span

from spacy_clinlong.evaluation.long_range import bucket_of, long_range_scores
from spacy_clinlong.evaluation.summary import summarize


def _gold(nlp):
    filler = " ".join(["x"] * 140)
    return _gold_from(
        nlp, f"ALLERGIES: Penicillin\n{filler} Penicillin\nMEDICATIONS: Penicillin\nSOCIAL HISTORY: none"
    )


def _gold_from(nlp, text):
    doc = nlp.make_doc(text)
    pen = [t.i for t in doc if t.text == "Penicillin"]
    meds = [t.i for t in doc if t.text == "MEDICATIONS"][0]
    social = [t.i for t in doc if t.text == "SOCIAL"][0]
    doc.spans["sections"] = [
        Span(doc, 0, meds, label="ALLERGIES"),
        Span(doc, meds, social, label="MEDICATIONS"),
        Span(doc, social, len(doc), label="SOCIAL_HISTORY"),
    ]
    doc.ents = [
        Span(doc, pen[0], pen[0] + 1, label="ALLERGEN"),  # 2 tokens from its header: near
        Span(doc, pen[1], pen[1] + 1, label="ALLERGEN"),  # > 128 tokens from it: far
        Span(doc, pen[2], pen[2] + 1, label="TREATMENT"),  # near, MEDICATIONS
    ]
    return doc


@pytest.fixture
def ruler_nlp():
    # A reader without context: every Penicillin is an ALLERGEN.
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([{"label": "ALLERGEN", "pattern": "Penicillin"}])
    return nlp


def test_buckets_by_distance_from_the_section_start(ruler_nlp):
    scores = long_range_scores(ruler_nlp, [_gold(ruler_nlp)])
    per = scores["longrange_per_bucket"]
    assert per["ALLERGEN near"] == {"r": 1.0, "n": 1}
    assert per["ALLERGEN far"] == {"r": 1.0, "n": 1}
    assert per["TREATMENT near"] == {"r": 0.0, "n": 1}
    assert per["all near"] == {"r": 0.5, "n": 2}
    assert scores["longrange_far_recall"] == 1.0 and scores["longrange_far_n"] == 1
    assert [bucket_of(d) for d in (0, 64, 65, 128, 129)] == ["near", "near", "mid", "mid", "far"]
    assert "ALLERGEN >256" not in per  # 141 tokens from its header


def test_items_beyond_256_tokens_are_counted_once_more(ruler_nlp):
    doc = _gold(ruler_nlp)
    text = doc.text.replace("x " * 140, "x " * 300)
    longer = _gold_from(ruler_nlp, text)
    per = long_range_scores(ruler_nlp, [longer])["longrange_per_bucket"]
    assert per["ALLERGEN far"] == {"r": 1.0, "n": 1} and per["ALLERGEN >256"] == {"r": 1.0, "n": 1}
    assert per["all >256"]["n"] == 1


def test_counts_only_the_list_sections_and_labels(ruler_nlp):
    scores = long_range_scores(ruler_nlp, [_gold(ruler_nlp)], sections=["MEDICATIONS"], labels=["TREATMENT"])
    assert set(scores["longrange_per_bucket"]) == {"TREATMENT near", "all near"}
    assert scores["longrange_far_recall"] is None and scores["longrange_far_n"] == 0


def test_docs_without_sections_are_refused_without_their_text(ruler_nlp):
    doc = ruler_nlp.make_doc("Secret note text with Penicillin.")
    with pytest.raises(ValueError, match="doc.spans\\['sections'\\]") as err:
        long_range_scores(ruler_nlp, [doc])
    assert "Secret" not in str(err.value)
    with pytest.raises(ValueError, match="No gold docs"):
        long_range_scores(ruler_nlp, [])


def test_cli_writes_json_that_summarize_tables(ruler_nlp, tmp_path):
    from typer.testing import CliRunner

    from spacy_clinlong.cli import app

    ruler_nlp.to_disk(tmp_path / "model")
    DocBin(docs=[_gold(ruler_nlp)]).to_disk(tmp_path / "gold.spacy")
    out = tmp_path / "metrics" / "longrange_long.json"
    result = CliRunner().invoke(
        app, ["long-range", str(tmp_path / "model"), str(tmp_path / "gold.spacy"), str(out)]
    )
    assert result.exit_code == 0, result.output
    assert srsly.read_json(out)["longrange_per_bucket"]["ALLERGEN far"]["r"] == 1.0
    srsly.write_json(
        tmp_path / "metrics" / "longrange_strided.json",
        {
            "longrange_far_recall": 0.25,
            "longrange_far_n": 1,
            "longrange_per_bucket": {"ALLERGEN far": {"r": 0.25, "n": 1}},
        },
    )
    summary = summarize(tmp_path / "metrics")
    assert "| longrange | long | longrange_far_recall | 1.000 |" in summary
    assert "| ALLERGEN far | 1.000 | 0.250 | +0.750 |" in summary
