"""Hostile input for every `convert` format: one bad record never stops a conversion.

Each test feeds a converter arbitrary bytes, arbitrary JSON, or a valid file
mangled byte by byte, and checks what `convert` relies on: no exception, every
Doc converted serializes to a DocBin with its user data and reads back, every
problem has a known reason, and the report prints (as UTF-8) without note text.
In process and with a shared tokenizer, so the file runs in seconds.
"""

import json
import tempfile
from pathlib import Path

import pytest
import spacy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spacy.tokens import DocBin

from spacy_clinlong.corpus import ConversionReport, iter_docs
from spacy_clinlong.io import REASONS

SECRET = "zanzibarine"
# The converters' own reasons, besides annotate's (REASONS): a new one must be added here on purpose.
CONVERTER_REASONS = {
    "answer_text_mismatch",
    "dangling_reference",
    "empty_span",
    "malformed_labels",
    "malformed_line",
    "malformed_question",
    "malformed_span",
    "missing_ann",
    "missing_answer_text",
    "missing_con",
    "missing_data",
    "missing_labels_field",
    "missing_paragraphs",
    "missing_question",
    "missing_text_field",
    "no_tokens",
    "no_valid_answer",
    "offset_out_of_range",
    "text_mismatch",
    "unsupported_answer_start",
}
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Characters that break parsers or Docs, mixed into arbitrary text: lone surrogates (a JSON
# escape of half an emoji, a surrogateescape'd byte), NUL, quotes, separators, line ends.
SPECIAL = [
    "\ud83d",
    "\udcff",
    "\x00",
    '"',
    "'",
    ",",
    ";",
    "|",
    ":",
    "\t",
    "\n",
    "\r",
    " ",
    "\u2028",
    "\ufeff",
]
# Joined from a list: st.text() drops surrogates from a mixed alphabet.
TEXT = st.lists(st.characters(exclude_categories=()) | st.sampled_from(SPECIAL), max_size=30).map("".join)
SCALARS = st.none() | st.booleans() | st.integers() | st.integers(min_value=2**63 - 2) | st.floats() | TEXT
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
# Byte runs a mangler splices in: what truncation, a stray quote, a bad byte or deep nesting look like.
PAYLOADS = st.binary(max_size=8) | st.sampled_from(
    [
        b'"',
        b"\n",
        b"\r\n",
        b"\t",
        b",",
        b";",
        b":",
        b"\xff",
        b"\xed\xa0\xbd",
        b"\\ud83d",
        b"[" * 3000,
        b"{",
        b"}",
        b"99999999999999999999",
        b"-1",
        b" ",
        b"\x00",
    ]
)


@st.composite
def mangled(draw, data: bytes) -> bytes:
    """Apply 1-4 random edits (delete, insert, replace, truncate, duplicate) to a valid file."""
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(data)))
        j = draw(st.integers(i, min(len(data), i + 20)))
        kind = draw(st.sampled_from(["delete", "insert", "replace", "truncate", "duplicate"]))
        if kind == "delete":
            data = data[:i] + data[j:]
        elif kind == "insert":
            data = data[:i] + draw(PAYLOADS) + data[i:]
        elif kind == "replace":
            data = data[:i] + draw(PAYLOADS) + data[j:]
        elif kind == "truncate":
            data = data[:i]
        else:
            data = data[:j] + data[i:j] + data[j:]
    return data


@pytest.fixture(scope="module")
def nlp():
    # One tokenizer for every example: spacy.blank takes a second or more on a busy machine.
    return spacy.blank("en")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def _write(workdir: Path, files: dict) -> Path:
    """Write {name: bytes} into a fresh directory and return it."""
    root = Path(tempfile.mkdtemp(dir=workdir))
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


def _check(nlp, fmt: str, path: Path, *, secret: bool = True) -> ConversionReport:
    """Convert as `convert` does and check the properties it relies on."""
    report = ConversionReport()
    docs = list(iter_docs(fmt, nlp, path, report))
    assert len(docs) == report.n_docs
    # What convert_corpus writes: a DocBin with user data, which must also read back.
    data = DocBin(store_user_data=True, docs=docs).to_bytes()
    back = list(DocBin(store_user_data=True).from_bytes(data).get_docs(nlp.vocab))
    assert [d.text for d in back] == [d.text for d in docs]
    assert {p.reason for p in report.problems} <= set(REASONS) | CONVERTER_REASONS
    summary = report.summary()
    summary.encode("utf-8")  # typer.echo must be able to print it
    json.dumps(report.to_dict(), default=str).encode("utf-8")
    if secret:
        assert SECRET not in summary
    return report


# JSONL ----------------------------------------------------------------------

JSONL_VALID = (
    "\n".join(
        json.dumps(r)
        for r in [
            {"id": "n1", "text": f"Has {SECRET} asthma.", "cats": {"ASTHMA": 1, "CHF": 0}},
            {"id": 2, "text": "Has CHF.", "label": "CHF", "entities": [[4, 7, "DX"]]},
            {"text": "Has COPD.", "labels": ["COPD"], "spans": [{"start": 4, "end": 8, "label": "DX"}]},
        ]
    ).encode()
    + b"\n"
)
RECORDS = st.dictionaries(
    st.sampled_from(["id", "text", "cats", "label", "labels", "entities", "spans"]) | TEXT, JSON, max_size=5
)
SPAN = st.tuples(st.integers(-3, 40), st.integers(-3, 40), TEXT).map(list)
SHAPED = st.fixed_dictionaries(
    {"text": TEXT},
    optional={
        "id": SCALARS,
        "cats": st.dictionaries(TEXT, SCALARS, max_size=3),
        "labels": st.lists(SCALARS, max_size=3),
        "entities": st.lists(
            SPAN | st.fixed_dictionaries({"start": SCALARS, "end": SCALARS, "label": SCALARS}), max_size=3
        ),
    },
)


@FUZZ
@given(data=st.binary(max_size=2000))
def test_jsonl_arbitrary_bytes(nlp, workdir, data):
    _check(nlp, "jsonl", _write(workdir, {"x.jsonl": data}) / "x.jsonl")


@FUZZ
@given(lines=st.lists(JSON | RECORDS | SHAPED, max_size=6))
def test_jsonl_arbitrary_json(nlp, workdir, lines):
    # ensure_ascii (the default) writes lone surrogates as escapes, as other tools do.
    data = "\n".join(json.dumps(line) for line in lines).encode()
    _check(nlp, "jsonl", _write(workdir, {"x.jsonl": data}) / "x.jsonl")


@FUZZ
@given(data=mangled(JSONL_VALID))
def test_jsonl_mangled(nlp, workdir, data):
    _check(nlp, "jsonl", _write(workdir, {"x.jsonl": data}) / "x.jsonl")


# CSV ------------------------------------------------------------------------

CSV_VALID = (
    f'id,text,label\n1,"Has asthma,\nand {SECRET} CHF.",ASTHMA|CHF\n2,Has "COPD".,COPD\n3,"Fine ""now"".",\n'
).encode()
CSV_BINARY = f"text,asthma,chf\nA {SECRET} note.,1,0\nAnother.,0,true\n".encode()


@FUZZ
@given(data=st.binary(max_size=2000))
def test_csv_arbitrary_bytes(nlp, workdir, data):
    _check(nlp, "csv", _write(workdir, {"x.csv": b"text,label\n" + data}) / "x.csv")


@FUZZ
@given(data=mangled(CSV_VALID) | mangled(CSV_BINARY))
def test_csv_mangled(nlp, workdir, data):
    _check(nlp, "csv", _write(workdir, {"x.csv": data}) / "x.csv")


# BRAT -----------------------------------------------------------------------

BRAT_TXT = f"Patient denies chest pain. Left {SECRET} knee swelling.\n".encode()
KNEE = BRAT_TXT.index(b"knee")
BRAT_ANN = (
    "\n".join(
        [
            "T1\tSign_symptom 15 25\tchest pain",
            "T2\tBiological_structure 15 20\tchest",
            f"T3\tSign_symptom {KNEE} {KNEE + 4};{KNEE + 5} {KNEE + 13}\tknee swelling",
            "E1\tSign_symptom:T1",
            "A1\tPOLARITY E1 NEG",
            "A2\tNegation T3",
            "R1\tMODIFY Arg1:T2 Arg2:E1",
            "*\tOVERLAP E1 T3",
            "#1\tAnnotatorNotes T1\tnote",
            "N1\tReference T1 UMLS:C0008031\tchest pain",
        ]
    ).encode()
    + b"\n"
)


@FUZZ
@given(txt=st.binary(max_size=300), ann=st.binary(max_size=600))
def test_brat_arbitrary_bytes(nlp, workdir, txt, ann):
    _check(nlp, "brat", _write(workdir, {"a.txt": txt, "a.ann": ann}))


@FUZZ
@given(txt=st.just(BRAT_TXT) | mangled(BRAT_TXT), ann=mangled(BRAT_ANN))
def test_brat_mangled(nlp, workdir, txt, ann):
    _check(nlp, "brat", _write(workdir, {"a.txt": txt, "a.ann": ann}))


# i2b2 -----------------------------------------------------------------------

I2B2_TXT = f"Admission note .\nHe had chest pain and {SECRET} .\nGiven aspirin 81 mg .\n".encode()
I2B2_CON = b'c="chest pain" 2:2 2:3||t="problem"\nc="aspirin 81 mg" 3:1 3:3||t="treatment"\n'
I2B2_AST = b'c="chest pain" 2:2 2:3||t="problem"||a="absent"\n'


@FUZZ
@given(txt=st.binary(max_size=300), con=st.binary(max_size=300))
def test_i2b2_arbitrary_bytes(nlp, workdir, txt, con):
    _check(nlp, "i2b2", _write(workdir, {"n.txt": txt, "n.con": con, "n.ast": con}))


@FUZZ
@given(txt=st.just(I2B2_TXT) | mangled(I2B2_TXT), con=mangled(I2B2_CON), ast=mangled(I2B2_AST))
def test_i2b2_mangled(nlp, workdir, txt, con, ast):
    _check(nlp, "i2b2", _write(workdir, {"n.txt": txt, "n.con": con, "n.ast": ast}))


# SQuAD / emrQA --------------------------------------------------------------

SQUAD_CONTEXT = f"The patient has {SECRET} diabetes. Metformin 500 mg was started."
MET, DOSE = SQUAD_CONTEXT.index("Metformin"), SQUAD_CONTEXT.index("500 mg")
SQUAD_QAS = [
    {"id": "q1", "question": "What was started?", "answers": [{"text": "Metformin", "answer_start": MET}]},
    {
        "id": [["a", "b"]],
        "question": ["Dose?", "How much?"],  # emrQA: a list id, paraphrases
        "answers": [{"text": "500 mg", "answer_start": DOSE}],
    },
    {"id": "q3", "question": "Allergies?", "answers": [], "is_impossible": True},
]
SQUAD_VALID = json.dumps(
    {
        "version": "v2.0",
        "data": [{"title": "t", "paragraphs": [{"context": SQUAD_CONTEXT, "qas": SQUAD_QAS}]}],
    }
).encode()
ANSWER = st.fixed_dictionaries({}, optional={"text": TEXT | JSON, "answer_start": st.integers(-3, 80) | JSON})
QA = st.fixed_dictionaries(
    {},
    optional={
        "id": JSON,
        "question": TEXT | st.lists(TEXT, max_size=3) | JSON,
        "is_impossible": JSON,
        "answers": st.lists(ANSWER, max_size=3) | JSON,
    },
)
PARAGRAPH = st.fixed_dictionaries(
    {},
    optional={
        "context": st.just(SQUAD_CONTEXT) | TEXT | st.lists(TEXT, max_size=3) | JSON,
        "qas": st.lists(QA, max_size=3),
    },
)
# Well-formed down to the paragraphs (arbitrary JSON as a whole is tested above), so most examples
# reach the contexts and questions.
ARTICLE = st.fixed_dictionaries(
    {"paragraphs": st.lists(PARAGRAPH, min_size=1, max_size=3)}, optional={"title": JSON}
)
SQUAD = st.fixed_dictionaries({"data": st.lists(ARTICLE, min_size=1, max_size=3)})


@FUZZ
@given(data=st.binary(max_size=2000) | JSON.map(lambda v: json.dumps(v).encode()))
def test_squad_arbitrary_bytes_and_json(nlp, workdir, data):
    _check(nlp, "squad", _write(workdir, {"q.json": data}) / "q.json")


@FUZZ
@given(data=SQUAD)
def test_squad_shaped_json(nlp, workdir, data):
    _check(nlp, "squad", _write(workdir, {"q.json": json.dumps(data).encode()}) / "q.json")


@FUZZ
@given(data=mangled(SQUAD_VALID))
def test_squad_mangled(nlp, workdir, data):
    _check(nlp, "squad", _write(workdir, {"q.json": data}) / "q.json")


def test_brat_event_without_trigger_is_reported(nlp, workdir):
    # Found by reading, not by chance: the trigger was taken as the part after ":" of the first argument.
    ann = BRAT_ANN + b"E2\tSign_symptom T1\n"
    report = _check(nlp, "brat", _write(workdir, {"a.txt": BRAT_TXT, "a.ann": ann}))
    assert report.n_docs == 1 and report.counts["events"] == 1
    assert [(p.line, p.reason) for p in report.problems] == [(11, "malformed_line")]
