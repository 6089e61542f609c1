"""Converters and readers: BRAT, i2b2 2010, SQuAD/emrQA, JSONL, CSV.

Fixtures are tiny files written to tmp_path. The word "zanzibarine" in
every fixture text stands in for clinical text: it must never appear in a
summary, a problem or CLI output.
"""

import json

import pytest
import spacy
from spacy.tokens import DocBin
from spacy.training import Example
from spacy.util import registry
from typer.testing import CliRunner

from spacy_clinlong.cli import app
from spacy_clinlong.cli.convert import Format
from spacy_clinlong.corpus import FORMATS, ConversionReport, iter_docs
from spacy_clinlong.io import REASONS, NoteInput, judge

SECRET = "zanzibarine"
BRAT_TXT = f"Patient denies chest pain. Left {SECRET} knee swelling noted.\n"
#           0         1         2         3         4         5
#           0123456789012345678901234567890123456789012345678901234567890


def _brat_ann(text: str) -> str:
    def at(word, nth=0):
        i = -1
        for _ in range(nth + 1):
            i = text.index(word, i + 1)
        return i, i + len(word)

    cs, ce = at("chest")
    ps, pe = at("pain")
    ks, ke = at("knee")
    ss, se = at("swelling")
    ls, le = at("Left")
    return "\n".join(
        [
            f"T1\tSign_symptom {cs} {pe}\tchest pain",
            f"T2\tBiological_structure {cs} {ce}\tchest",  # overlaps T1, shorter
            f"T3\tSign_symptom {ks} {ke};{ss} {se}\tknee swelling",  # discontinuous (skips nothing but a space)
            f"T4\tBiological_structure {ls} {le};{ks} {ke}\tLeft knee",  # discontinuous across the secret word
            f"T5\tSign_symptom {ps} {pe}\tpain ",  # trailing whitespace in the .ann text
            "E1\tSign_symptom:T1 ",
            "A1\tPOLARITY E1 NEG",
            "A2\tTREND T3 INC",
            "R1\tMODIFY Arg1:T2 Arg2:E1",
            "*\tOVERLAP E1 T5",
            f"#1\tAnnotatorNotes T1\t{SECRET} note",
            "",
        ]
    )


@pytest.fixture(scope="module")
def nlp():
    return spacy.blank("en")


@pytest.fixture()
def brat_dir(tmp_path):
    d = tmp_path / "brat"
    d.mkdir()
    (d / "a.txt").write_text(BRAT_TXT, encoding="utf-8")
    (d / "a.ann").write_text(_brat_ann(BRAT_TXT), encoding="utf-8")
    bad_txt = f"Mild {SECRET} fever today.\n"
    (d / "b.txt").write_text(bad_txt, encoding="utf-8")
    (d / "b.ann").write_text(
        "\n".join(
            [
                "T1\tSign_symptom 17 22\tfever",  # correct
                "T2\tSign_symptom 200 205\tfever",  # line 2: outside the text
                "T3\tSign_symptom 0 4\tSevere",  # line 3: text does not match
                "T4\tSign_symptom 1 3\til",  # line 4: inside a token: expanded
                "A1\tNegation T4",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    (d / "c.txt").write_text(f"No annotations for {SECRET}.\n", encoding="utf-8")  # no .ann
    (d / "d.txt").write_bytes(b"ok line\nbad \xff byte\n")
    (d / "d.ann").write_text("", encoding="utf-8")
    return d


def _convert(nlp, fmt, path, **opts):
    report = ConversionReport()
    docs = list(iter_docs(fmt, nlp, path, report, **opts))
    return docs, report


def _assert_clean(report):
    assert SECRET not in report.summary()
    assert SECRET not in json.dumps(report.to_dict(), default=str)


def test_brat_spans_ents_attributes_and_skips(nlp, brat_dir):
    docs, report = _convert(nlp, "brat", brat_dir)
    by_id = {doc.user_data["note_id"]: doc for doc in docs}
    assert sorted(by_id) == ["a", "b"]
    a = by_id["a"]
    group = [(s.text, s.label_) for s in a.spans["brat"]]
    # Discontinuous entities: one span per fragment, same label.
    assert ("knee", "Sign_symptom") in group and ("swelling", "Sign_symptom") in group
    assert ("Left", "Biological_structure") in group and ("knee", "Biological_structure") in group
    assert ("chest pain", "Sign_symptom") in group and ("chest", "Biological_structure") in group
    assert ("pain", "Sign_symptom") in group  # trailing .ann whitespace trimmed, not skipped
    assert len(a.spans["brat"]) == 7
    ents = [(e.text, e.label_) for e in a.ents]
    assert ("chest pain", "Sign_symptom") in ents and ("chest", "Biological_structure") not in ents
    for i, e in enumerate(a.ents[1:]):
        assert a.ents[i].end <= e.start
    records = {r["id"]: r for r in a.user_data["brat_entities"]}
    ks = BRAT_TXT.index("knee")
    assert records["T3"]["fragments"] == [[ks, ks + 4], [ks + 5, ks + 13]]
    cs, pe = BRAT_TXT.index("chest"), BRAT_TXT.index("pain") + 4
    assert a.user_data[("._.", "is_negated", cs, pe)] is True  # POLARITY NEG on event E1 -> trigger T1
    assert a.user_data[("brat_attr", "TREND", ks, ks + 4)] == "INC"
    rel = a.user_data["brat_relations"][0]
    assert rel["type"] == "MODIFY" and [arg["id"] for arg in rel["args"]] == ["T2", "T1"]
    assert rel["args"][1]["start"] == cs
    b = by_id["b"]
    assert [(s.start_char, s.end_char) for s in b.spans["brat"]] == [(17, 22), (0, 4)]
    assert b.user_data[("._.", "is_negated", 0, 4)] is True  # keyed by the expanded span
    assert report.counts["adjusted"] == 1 and report.counts["discontinuous"] == 2
    assert report.counts["brat_entities"] == 5 + 2
    problems = {(p.file, p.line, p.reason) for p in report.problems}
    assert ("b.ann", 2, "offset_out_of_range") in problems
    assert ("b.ann", 3, "text_mismatch") in problems
    assert ("c.txt", None, "missing_ann") in problems
    assert ("d.txt", 2, "undecodable") in problems
    assert report.skipped == {
        "offset_out_of_range": 1,
        "text_mismatch": 1,
        "missing_ann": 1,
        "undecodable": 1,
    }
    _assert_clean(report)


def test_i2b2_line_token_offsets(nlp, tmp_path):
    text = f"Admission note .\nHe had chest pain and {SECRET} .\nGiven aspirin 81 mg daily .\n"
    (tmp_path / "txt").mkdir()
    (tmp_path / "concept").mkdir()
    (tmp_path / "txt" / "n1.txt").write_text(text, encoding="utf-8")
    (tmp_path / "concept" / "n1.con").write_text(
        "\n".join(
            [
                'c="chest pain" 2:2 2:3||t="problem"',
                'c="aspirin" 3:1 3:1||t="treatment"',
                'c="Aspirin 81 mg" 3:1 3:3||t="treatment"',  # case differs: still matches
                'c="fever" 2:2 2:2||t="problem"',  # line 4: text mismatch
                'c="x" 9:0 9:0||t="test"',  # line 5: no such line
                "not a concept line",  # line 6
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    (tmp_path / "ast").mkdir()
    (tmp_path / "ast" / "n1.ast").write_text(
        'c="chest pain" 2:2 2:3||t="problem"||a="absent"\n', encoding="utf-8"
    )
    docs, report = _convert(nlp, "i2b2", tmp_path)
    assert len(docs) == 1
    doc = docs[0]
    start = text.index("chest")
    spans = [(s.start_char, s.end_char, s.label_) for s in doc.spans["i2b2"]]
    asp = text.index("aspirin")
    assert spans == [
        (start, start + 10, "PROBLEM"),
        (asp, asp + 7, "TREATMENT"),
        (asp, asp + 13, "TREATMENT"),
    ]
    assert [(e.text, e.label_) for e in doc.ents] == [
        ("chest pain", "PROBLEM"),
        ("aspirin 81 mg", "TREATMENT"),
    ]
    assert doc.user_data[("._.", "is_negated", start, start + 10)] is True
    assert {(p.file, p.line, p.reason) for p in report.problems} == {
        ("n1.con", 4, "text_mismatch"),
        ("n1.con", 5, "offset_out_of_range"),
        ("n1.con", 6, "malformed_line"),
    }
    _assert_clean(report)


def _squad(version2: bool):
    context = f"The patient has {SECRET} diabetes. Metformin 500 mg was started."
    qa1 = {
        "id": "q1",
        "question": "What was started?",
        "answers": [{"text": "Metformin 500 mg", "answer_start": context.index("Metformin")}],
    }
    qa2 = {"id": "q2", "question": "Bad offset?", "answers": [{"text": "diabetes", "answer_start": 3}]}
    qas = [qa1, qa2]
    if version2:
        qa1["is_impossible"] = False
        qas.append({"id": "q3", "question": "Allergies?", "answers": [], "is_impossible": True})
    return context, {
        "version": "v2.0" if version2 else "1.1",
        "data": [{"title": "t", "paragraphs": [{"context": context, "qas": qas}, {"qas": []}]}],
    }


@pytest.mark.parametrize("version2", [False, True])
def test_squad_v1_v2(nlp, tmp_path, version2):
    context, data = _squad(version2)
    path = tmp_path / "qa.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    docs, report = _convert(nlp, "squad", path)
    assert len(docs) == 1 and docs[0].text == context
    qas = docs[0].user_data["clinlong_qa"]
    assert [q["id"] for q in qas] == (["q1", "q3"] if version2 else ["q1"])
    answer = qas[0]["answers"][0]
    assert set(qas[0]) == {"id", "question", "answers", "is_impossible"} and qas[0]["is_impossible"] is False
    assert (
        context[answer["answer_start"] : answer["answer_start"] + len(answer["text"])] == "Metformin 500 mg"
    )
    if version2:
        assert qas[1]["is_impossible"] is True and qas[1]["answers"] == []
    assert report.skipped == {"answer_text_mismatch": 1, "no_valid_answer": 1, "missing_text": 1}
    assert any(p.where == "data[0].paragraphs[0].qas[1].answers[0] start 3" for p in report.problems)
    _assert_clean(report)


def test_emrqa_list_context_and_paraphrases(nlp, tmp_path):
    lines = ["Record date: 2088-01-01", f"Pt on lisinopril 10 mg for {SECRET} HTN ."]
    context = "\n".join(lines)
    start = context.index("lisinopril")
    data = {
        "data": [
            {
                "title": "note-1",
                "paragraphs": [
                    {
                        "note_id": "1",
                        "context": lines,
                        "qas": [
                            {
                                "id": [["a", "b"]],
                                "question": ["What meds?", "Which medications?"],
                                "answers": [
                                    {
                                        "text": "lisinopril",
                                        "answer_start": start,
                                        "evidence": "...",
                                        "answer_entity_type": "single",
                                    }
                                ],
                            },
                            {
                                "id": "q2",
                                "question": "Dose?",
                                "answers": [{"text": "10 mg", "answer_start": [2, 3]}],
                            },
                        ],
                    }
                ],
            }
        ]
    }
    path = tmp_path / "emrqa.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    docs, report = _convert(nlp, "squad", path)
    qas = docs[0].user_data["clinlong_qa"]
    assert docs[0].text == context
    assert [q["question"] for q in qas] == ["What meds?", "Which medications?"]
    assert len({q["id"] for q in qas}) == 2
    assert all(context[q["answers"][0]["answer_start"] :].startswith("lisinopril") for q in qas)
    assert report.skipped == {"unsupported_answer_start": 1, "no_valid_answer": 1}
    _assert_clean(report)


def test_jsonl_cats_spans_and_bad_lines(nlp, tmp_path):
    path = tmp_path / "notes.jsonl"
    good = [
        {"id": "n1", "text": f"Has {SECRET} asthma.", "cats": {"ASTHMA": 1, "CHF": 0}},
        {"text": "Has CHF.", "label": "CHF"},
        {"text": "Has COPD and CHF.", "labels": ["COPD", "CHF"]},
        {
            "text": "Has asthma.",
            "entities": [[4, 10, "DX"], {"start": 4, "end": 11, "label": "DX"}, [50, 60, "DX"]],
        },
    ]
    raw = (
        [json.dumps(r).encode() for r in good[:2]]
        + [b"{not json", json.dumps({"txt": "x"}).encode(), b'{"text": "bad \xff"}']
        + [json.dumps(r).encode() for r in good[2:]]
    )
    path.write_bytes(b"\n".join(raw) + b"\n")
    docs, report = _convert(nlp, "jsonl", path)
    assert len(docs) == 4
    labels = ["ASTHMA", "CHF", "COPD"]
    assert docs[0].cats == {"ASTHMA": 1.0, "CHF": 0.0, "COPD": 0.0} and docs[0].user_data["note_id"] == "n1"
    assert docs[1].cats == {"ASTHMA": 0.0, "CHF": 1.0, "COPD": 0.0}
    assert docs[2].cats == {"ASTHMA": 0.0, "CHF": 1.0, "COPD": 1.0}
    assert all(list(d.cats) == labels for d in docs)
    assert [(s.text, s.label_) for s in docs[3].spans["sc"]] == [("asthma", "DX"), ("asthma.", "DX")]
    assert [e.text for e in docs[3].ents] == ["asthma."]
    assert {(p.line, p.reason) for p in report.problems} == {
        (3, "invalid_json"),
        (4, "missing_text"),
        (5, "undecodable"),
        (7, "offset_out_of_range"),
    }
    _assert_clean(report)


def test_csv_label_column_and_binary_columns(nlp, tmp_path):
    multi = tmp_path / "multi.csv"
    multi.write_bytes(
        (
            f'id,text,dx\n1,"Has asthma,\nand CHF.",ASTHMA|CHF\n2,,CHF\n3,Fine.,\n4,{SECRET} copd.,COPD;CHF\n'
        ).encode()
        + b"5,bad \xff,CHF\n"
    )
    docs, report = _convert(nlp, "csv", multi, labels_field="dx")
    assert [d.user_data["note_id"] for d in docs] == ["1", "3", "4"]
    assert docs[0].text == "Has asthma,\nand CHF."
    assert docs[0].cats == {"ASTHMA": 1.0, "CHF": 1.0, "COPD": 0.0}
    assert docs[1].cats == {"ASTHMA": 0.0, "CHF": 0.0, "COPD": 0.0}
    assert docs[2].cats == {"ASTHMA": 0.0, "CHF": 1.0, "COPD": 1.0}
    assert {(p.line, p.reason) for p in report.problems} == {(4, "empty"), (7, "undecodable")}
    binary = tmp_path / "binary.csv"
    binary.write_text("text,asthma,chf,source\nA note.,1,0,clinic\nAnother.,0,1,ward\n", encoding="utf-8")
    docs, report = _convert(nlp, "csv", binary)
    assert [d.cats for d in docs] == [{"asthma": 1.0, "chf": 0.0}, {"asthma": 0.0, "chf": 1.0}]
    _assert_clean(report)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_tabular_files_stream_row_by_row(nlp, tmp_path, fmt):
    import csv

    long_note = f"Plan {SECRET}. " * 12_000  # past csv's default 128 KiB field limit
    rows = [("1", long_note, "A"), ("2", "", "B"), ("3", "Short note.", "C")]
    path = tmp_path / f"notes.{fmt}"
    with path.open("w", encoding="utf-8", newline="") as handle:
        if fmt == "csv":
            csv.writer(handle).writerows([("id", "text", "label"), *rows])
        else:
            handle.writelines(json.dumps({"id": i, "text": t, "label": lab}) + "\n" for i, t, lab in rows)
    before = csv.field_size_limit()
    report = ConversionReport()
    docs = iter_docs(fmt, nlp, path, report)
    first = next(docs)
    # The first Doc comes before the next row is read, yet its cats span the labels of the whole file.
    assert first.text == long_note and first.cats == {"A": 1.0, "C": 0.0}
    assert report.n_docs == 1 and not report.problems and csv.field_size_limit() == before
    assert [d.user_data["note_id"] for d in docs] == ["3"]
    assert [(p.line, p.reason) for p in report.problems] == [(3 if fmt == "csv" else 2, "empty")]  # once
    _assert_clean(report)


def _cli_convert(tmp_path, path, fmt):
    out = tmp_path / "out.spacy"
    result = CliRunner().invoke(app, ["convert", str(path), str(out), "--format", fmt])
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output and "Traceback" not in result.output
    docs = list(DocBin().from_disk(out).get_docs(spacy.blank("en").vocab))
    return docs, result.output


def test_cli_jsonl_deeply_nested_line_is_invalid_json(tmp_path):
    path = tmp_path / "deep.jsonl"
    deep = "[" * 100_000
    path.write_text(f'{{"id": "a", "text": "{SECRET} one."}}\n{deep}\n{{"id": "b", "text": "Two."}}\n')
    docs, output = _cli_convert(tmp_path, path, "jsonl")
    assert [d.user_data["note_id"] for d in docs] == ["a", "b"]
    assert "deep.jsonl:2: invalid_json (nested too deep)" in output


def test_cli_jsonl_bad_texts_and_ids_are_reported(tmp_path):
    lines = [
        r'{"id": "sur", "text": "x\ud83d y"}',  # the JSON escape: json.loads gives a lone surrogate
        json.dumps({"id": "long", "text": SECRET * (1_000_000 // len(SECRET) + 1)}),  # over nlp.max_length
        json.dumps({"id": "ws", "text": " \n\t "}),
        r'{"id": "x\udc80", "text": "Fine."}',
        json.dumps({"id": True, "text": "Fine."}),
        json.dumps({"id": 2**63, "text": "Fine."}),
        json.dumps({"id": -(2**63) - 1, "text": "Fine."}),
        json.dumps({"id": 1.5, "text": "Fine."}),
        json.dumps({"id": ["a"], "text": "Fine."}),
        json.dumps({"id": 2**63 - 1, "text": f"{SECRET} kept."}),
        json.dumps({"id": "ok", "text": "Kept."}),
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    docs, output = _cli_convert(tmp_path, path, "jsonl")
    assert [d.user_data["note_id"] for d in docs] == [str(2**63 - 1), "ok"]
    reasons = ["undecodable", "too_long", "empty", "undecodable"] + ["invalid_id"] * 5
    for line, reason in enumerate(reasons, start=1):
        assert f"bad.jsonl:{line}: {reason}" in output
    assert "too_long (length 1000010, nlp.max_length 1000000)" in output


def test_cli_csv_unterminated_quote_is_reported(tmp_path):
    # csv reads a quote never closed as one cell up to the next quote or the end of the file, so
    # a row with the right number of cells could swallow the rows after it without a word.
    path = tmp_path / "quote.csv"
    path.write_text(
        f'id,text,label\n1,One.,A\n2,"Tw o {SECRET}.,B\n3,Three.,C\n4,"Four\nlines.",D\n'
        '5,Five.,E\n6,"Six""s,\n7,Seven.,F\n',
        encoding="utf-8",
    )
    docs, output = _cli_convert(tmp_path, path, "csv")
    assert [d.user_data["note_id"] for d in docs] == ["1", "5"]
    assert docs[1].cats == {"A": 0.0, "E": 1.0}
    assert """quote.csv:3: malformed_csv (',' expected after '"'; lines 3-5 lost)""" in output
    assert "quote.csv:6: malformed_csv (2 columns, header has 3)" in output  # the rest of row 4
    assert "quote.csv:8: malformed_csv (quote not closed; lines 8-9 lost)" in output
    assert "Skipped: 3 (malformed_csv 3)" in output


def test_jsonl_reasons_are_annotates(tmp_path):
    """A bad record gets the reason `annotate` gives it, by the same name."""
    path = tmp_path / "notes.jsonl"
    lines = [
        b'{"id": "a", "text": "   "}',
        b'{"id": "b", "text": "bad \xff byte"}',
        b'{"id": true, "text": "x"}',
        b'{"id": "d", "txt": "x"}',
        b'{"id": "e", "text": 5}',
        b"{broken",
        b"[1, 2]",
        b"[" * 5000,
        b'{"id": "f", "text": "' + b"y" * 60 + b'"}',
        b'{"id": "g", "text": "Fine."}',
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    nlp = spacy.blank("en")
    nlp.max_length = 50
    _, report = _convert(nlp, "jsonl", path)
    converted = {p.line: p.reason for p in report.problems}
    annotated = {
        int(rec.source.rsplit(":", 1)[1]): judge(rec, nlp.max_length) for rec, _ in NoteInput(path).records()
    }
    assert converted == {line: reason for line, reason in annotated.items() if reason is not None}
    assert set(converted.values()) == {
        "empty",
        "undecodable",
        "invalid_id",
        "missing_text",
        "invalid_json",
        "too_long",
    }
    assert set(converted.values()) <= set(REASONS)


READERS = {
    "spacy-clinlong.BratCorpus.v1": "brat",
    "spacy-clinlong.I2b2Corpus.v1": "i2b2",
    "spacy-clinlong.SquadCorpus.v1": "squad",
    "spacy-clinlong.JsonlCorpus.v1": "jsonl",
    "spacy-clinlong.CsvCorpus.v1": "csv",
}


def _small_inputs(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "a.txt").write_text(BRAT_TXT, encoding="utf-8")
    (tmp_path / "b" / "a.ann").write_text(_brat_ann(BRAT_TXT), encoding="utf-8")
    (tmp_path / "i").mkdir()
    (tmp_path / "i" / "n.txt").write_text("He had chest pain .\n", encoding="utf-8")
    (tmp_path / "i" / "n.con").write_text('c="chest pain" 1:2 1:3||t="problem"\n', encoding="utf-8")
    (tmp_path / "q.json").write_text(json.dumps(_squad(True)[1]), encoding="utf-8")
    (tmp_path / "t.jsonl").write_text(
        '{"text": "One two.", "label": "A"}\n{"text": "Three.", "label": "B"}\n'
    )
    (tmp_path / "t.csv").write_text("text,label\nOne two.,A\nThree.,B\n", encoding="utf-8")
    return {
        "brat": tmp_path / "b",
        "i2b2": tmp_path / "i",
        "squad": tmp_path / "q.json",
        "jsonl": tmp_path / "t.jsonl",
        "csv": tmp_path / "t.csv",
    }


def test_cli_formats_match_readers():
    assert tuple(f.value for f in Format) == FORMATS


@pytest.mark.parametrize("name,fmt", sorted(READERS.items()))
def test_readers_resolve_and_yield_examples(tmp_path, nlp, name, fmt):
    path = _small_inputs(tmp_path)[fmt]
    reader = registry.readers.get(name)(path)
    examples = list(reader(nlp))
    assert examples and all(isinstance(eg, Example) for eg in examples)
    eg = examples[0]
    assert eg.predicted.text == eg.reference.text and len(eg.predicted) == len(eg.reference)
    if fmt in ("brat", "i2b2"):
        assert len(eg.reference.ents) > 0
    if fmt == "squad":
        assert eg.reference.user_data["clinlong_qa"][0]["answers"]
    if fmt in ("jsonl", "csv"):
        assert [e.reference.cats for e in examples] == [{"A": 1.0, "B": 0.0}, {"A": 0.0, "B": 1.0}]
        assert len(list(registry.readers.get(name)(path, limit=1)(nlp))) == 1
        assert len(list(registry.readers.get(name)(path, max_length=2)(nlp))) == 1
    # Through a config, as `spacy train` resolves it.
    cfg = {"corpus": {"@readers": name, "path": str(path), "limit": 1}}
    resolved = registry.resolve(cfg)["corpus"]
    assert len(list(resolved(nlp))) == 1


def test_cli_round_trip_and_no_text_in_output(brat_dir, tmp_path):
    out = tmp_path / "out" / "brat.spacy"
    result = CliRunner().invoke(app, ["convert", str(brat_dir), str(out), "--format", "brat"])
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    assert "b.ann:2: offset_out_of_range" in result.output and "b.ann:3: text_mismatch" in result.output
    assert "c.txt: missing_ann" in result.output and "d.txt:2: undecodable" in result.output
    assert "docs 2" in result.output
    docs = list(DocBin().from_disk(out).get_docs(spacy.blank("en").vocab))
    assert len(docs) == 2
    a = docs[0]
    assert len(a.spans["brat"]) == 7 and len(a.ents) == 4
    assert a.user_data["brat_entities"][2]["id"] == "T3"
    cs, pe = BRAT_TXT.index("chest"), BRAT_TXT.index("pain") + 4
    assert a.user_data[("._.", "is_negated", cs, pe)] is True


def test_cli_squad_round_trip(tmp_path):
    path = tmp_path / "qa.json"
    path.write_text(json.dumps(_squad(True)[1]), encoding="utf-8")
    out = tmp_path / "qa.spacy"
    result = CliRunner().invoke(app, ["convert", str(path), str(out), "-f", "squad"])
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    doc = next(DocBin().from_disk(out).get_docs(spacy.blank("en").vocab))
    assert [q["id"] for q in doc.user_data["clinlong_qa"]] == ["q1", "q3"]


def test_cli_exit_codes(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        app, ["convert", str(tmp_path / "missing"), str(tmp_path / "o.spacy"), "-f", "brat"]
    )
    assert result.exit_code == 1 and "does not exist" in result.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text(f'{{"txt": "{SECRET}"}}\n{{broken {SECRET}\n', encoding="utf-8")
    result = runner.invoke(app, ["convert", str(bad), str(tmp_path / "o.spacy"), "-f", "jsonl"])
    assert result.exit_code == 1 and "Nothing converted" in result.output
    assert "bad.jsonl:1: missing_text" in result.output and "bad.jsonl:2: invalid_json" in result.output
    assert SECRET not in result.output
    assert not (tmp_path / "o.spacy").exists()
    # A file that cannot be read at all is one line, not a traceback.
    result = runner.invoke(app, ["convert", str(tmp_path), str(tmp_path / "o.spacy"), "-f", "jsonl"])
    assert result.exit_code == 1 and result.output.startswith("convert: Cannot read")
    assert len(result.output.strip().splitlines()) == 1


def test_an_odd_file_in_a_corpus_is_reported_and_the_rest_converts(tmp_path):
    import os

    from spacy_clinlong.corpus.readers import convert_corpus

    corpus = tmp_path / "brat"
    corpus.mkdir()
    for stem in ("a", "b", "c"):
        (corpus / f"{stem}.txt").write_text("Chest pain.\n")
    (corpus / "a.ann").mkdir()  # a folder where the .ann should be
    os.mkfifo(corpus / "b.ann")  # reading it would block forever
    (corpus / "c.ann").write_text("T1\tPROBLEM 0 10\tChest pain\n")
    report = convert_corpus("brat", corpus, tmp_path / "out.spacy")
    assert report.n_docs == 1
    assert sorted((p.file, p.reason) for p in report.problems) == [
        ("a.ann", "not_a_file"),
        ("b.ann", "not_a_file"),
    ]
