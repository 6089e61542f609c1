"""SQuAD v1/v2 and emrQA JSON to Docs with their questions and answers.

Each paragraph context becomes a Doc. Its questions are stored as
`doc.user_data["clinlong_qa"]`: `[{"id": str, "question": str, "answers":
[{"text": str, "answer_start": int}], "is_impossible": bool}]`, the shape the
`clinlong_qa` component trains from. v1 files have no `is_impossible`: it is
False. `doc.user_data["title"]` keeps the article title.

emrQA variants: a context given as a list of lines is joined with "\\n"; a
question given as a list of paraphrases becomes one entry per paraphrase (ids
suffixed `_0`, `_1`, ...); a list id is joined with "_". Answers must have a
character-offset `answer_start` (an int) whose slice of the context equals
the answer text; others (e.g. emrQA's `[line, token]` starts) are skipped with
a reason, and an answerable question left without answers is skipped.

JSON files have no useful line numbers per item, so problems are located by a
JSON path such as `data[3].paragraphs[0].qas[2]`.
"""

import json
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Union

from spacy.language import Language
from spacy.tokens import Doc

from ..io import JSON_ERRORS, has_surrogates, json_error
from .brat import find_files
from .convert_utils import INVALID_ID, INVALID_JSON, MISSING_TEXT, UNDECODABLE, decode, text_problem
from .report import ConversionReport

QA_KEY = "clinlong_qa"


def _answers(
    raw: Any, context: str, path: Path, where: str, report: ConversionReport
) -> List[Dict[str, Any]]:
    answers = []
    for k, ans in enumerate(raw if isinstance(raw, list) else []):
        loc = f"{where}.answers[{k}]"
        start = ans.get("answer_start") if isinstance(ans, dict) else None
        text = ans.get("text") if isinstance(ans, dict) else None
        if not isinstance(start, int) or isinstance(start, bool):
            report.skip("unsupported_answer_start", path, None, loc)
            continue
        if not isinstance(text, str) or not text:
            report.skip("missing_answer_text", path, None, loc)
            continue
        if not 0 <= start <= len(context) - len(text):
            report.skip("offset_out_of_range", path, None, f"{loc} start {start}")
            continue
        if context[start : start + len(text)] != text:
            report.skip("answer_text_mismatch", path, None, f"{loc} start {start}")
            continue
        answers.append({"text": text, "answer_start": start})
    return answers


def parse_qas(
    qas: Any, context: str, path: Path, where: str, report: ConversionReport
) -> List[Dict[str, Any]]:
    """Normalize a paragraph's questions to the `clinlong_qa` shape.

    qas (Any): The paragraph's "qas" list.
    context (str): The paragraph context.
    path (Path): The file, for the report.
    where (str): JSON path of the paragraph, for the report.
    report (ConversionReport): Where counts and problems are recorded.
    RETURNS (List[Dict[str, Any]]): The questions kept.
    """
    out = []
    for j, qa in enumerate(qas if isinstance(qas, list) else []):
        loc = f"{where}.qas[{j}]"
        if not isinstance(qa, dict):
            report.skip("malformed_question", path, None, loc)
            continue
        questions = qa.get("question")
        qid = qa.get("id", f"{path.stem}-{loc}")
        try:
            qid = "_".join(str(x) for x in qid) if isinstance(qid, list) else str(qid)
        except (RecursionError, ValueError):  # nested too deep for repr, or more digits than str() writes
            report.skip(INVALID_ID, path, None, loc)
            continue
        if isinstance(questions, str):
            pairs = [(qid, questions)]
        elif isinstance(questions, list) and questions and all(isinstance(q, str) for q in questions):
            pairs = [(f"{qid}_{k}", q) for k, q in enumerate(questions)]
        else:
            report.skip("missing_question", path, None, loc)
            continue
        if any(has_surrogates(pid) or has_surrogates(question) for pid, question in pairs):
            report.skip(UNDECODABLE, path, None, loc)
            continue
        impossible = bool(qa.get("is_impossible", False))
        answers = [] if impossible else _answers(qa.get("answers"), context, path, loc, report)
        if not impossible and not answers:
            report.skip("no_valid_answer", path, None, loc)
            continue
        for pid, question in pairs:
            out.append({"id": pid, "question": question, "answers": answers, "is_impossible": impossible})
    report.count("questions", len(out))
    report.count("unanswerable", sum(q["is_impossible"] for q in out))
    return out


def load_json(path: Path, report: ConversionReport) -> Optional[Any]:
    """Read a JSON file, reporting bad bytes or bad JSON with the line.

    path (Path): The file.
    report (ConversionReport): Where problems are recorded.
    RETURNS (Optional[Any]): The data, or None.
    """
    text = decode(path.read_bytes(), path, report, encoding="utf-8-sig")
    if text is None:
        return None
    try:
        return json.loads(text)
    except JSON_ERRORS as err:
        report.skip(INVALID_JSON, path, *json_error(err))
        return None


def squad_docs_from_file(nlp: Language, path: Path, report: ConversionReport) -> Iterator[Doc]:
    """Convert one SQuAD/emrQA JSON file to Docs, one per paragraph.

    nlp (Language): Its tokenizer makes the Docs.
    path (Path): The JSON file.
    report (ConversionReport): Where counts and problems are recorded.
    YIELDS (Doc): The converted Docs.
    """
    data = load_json(path, report)
    if data is None:
        return
    articles = data.get("data") if isinstance(data, dict) else None
    if not isinstance(articles, list):
        report.skip("missing_data", path, None, "no top-level data list")
        return
    for i, article in enumerate(articles):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            report.skip("missing_paragraphs", path, None, f"data[{i}]")
            continue
        title = article.get("title", "")
        # Not str() of a list or dict: a title is a scalar, and a deeply nested one would overflow repr.
        title = "" if isinstance(title, (list, dict)) else str(title)
        if has_surrogates(title):
            report.skip(UNDECODABLE, path, None, f"data[{i}].title")
            continue
        for j, para in enumerate(paragraphs):
            where = f"data[{i}].paragraphs[{j}]"
            context = para.get("context") if isinstance(para, dict) else None
            if isinstance(context, list) and all(isinstance(c, str) for c in context):
                context = "\n".join(context)
            if not isinstance(context, str):
                report.skip(MISSING_TEXT, path, None, where)
                continue
            problem = text_problem(context, nlp.max_length)
            if problem is not None:
                report.skip(problem[0], path, None, f"{where} {problem[1]}")
                continue
            doc = nlp.make_doc(context)
            doc.user_data[QA_KEY] = parse_qas(para.get("qas"), context, path, where, report)
            doc.user_data["title"] = title
            report.count("docs")
            yield doc


def iter_squad_docs(nlp: Language, path: Union[str, Path], report: ConversionReport) -> Iterator[Doc]:
    """Convert SQuAD v1/v2 or emrQA JSON (a file or a directory of .json) to Docs.

    nlp (Language): Its tokenizer makes the Docs.
    path (Union[str, Path]): A .json file, or a directory searched recursively.
    report (ConversionReport): Where counts and problems are recorded.
    YIELDS (Doc): One Doc per paragraph, with `user_data["clinlong_qa"]`.
    """
    path = Path(path)
    for json_path in find_files(path, ".json") if path.is_dir() else [path]:
        yield from squad_docs_from_file(nlp, json_path, report)
