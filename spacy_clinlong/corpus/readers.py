"""Corpus readers for `spacy train` configs, and `convert_corpus` for the CLI.

Both go through `iter_docs`, so a config reader and `python -m spacy_clinlong
convert` parse a corpus the same way. A reader is used like `spacy.Corpus.v1`:

    [corpora.train]
    @readers = "spacy-clinlong.BratCorpus.v1"
    path = "corpus/maccrobat/train"
    limit = 0
    max_length = 0

It returns a callable `(nlp) -> Iterator[Example]` that converts the corpus
on every call (every epoch) and yields `Example(nlp.make_doc(text), reference)`.
The last call's `ConversionReport` is its `report` attribute.
"""

from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Union

from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from spacy.util import registry

from ..io import InputError
from .blank import blank_tokenizer
from .brat import iter_brat_docs
from .i2b2 import iter_i2b2_docs
from .report import ConversionReport
from .squad import iter_squad_docs
from .tabular import iter_tabular_docs

FORMATS = ("brat", "i2b2", "squad", "jsonl", "csv")


def iter_docs(
    fmt: str, nlp: Language, path: Union[str, Path], report: ConversionReport, **options: Any
) -> Iterator[Doc]:
    """Convert a corpus in any supported format to reference Docs.

    fmt (str): One of FORMATS.
    nlp (Language): Its tokenizer makes the Docs.
    path (Union[str, Path]): The input file or directory.
    report (ConversionReport): Where counts and problems are recorded.
    **options: Format options: span_key (brat, i2b2, jsonl), text_field,
        labels_field, labels (jsonl, csv), id_field (csv). None means default.
    YIELDS (Doc): The converted Docs.
    """
    options = {k: v for k, v in options.items() if v is not None}
    if fmt == "brat":
        return iter_brat_docs(nlp, path, report, **options)
    if fmt == "i2b2":
        return iter_i2b2_docs(nlp, path, report, **options)
    if fmt == "squad":
        return iter_squad_docs(nlp, path, report, **options)
    if fmt in ("jsonl", "csv"):
        return iter_tabular_docs(nlp, path, report, fmt=fmt, **options)
    raise ValueError(f"Unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


def convert_corpus(
    fmt: str, input_path: Union[str, Path], output_path: Union[str, Path], *, lang: str = "en", **options: Any
) -> ConversionReport:
    """Convert a corpus to a DocBin file (user_data kept).

    fmt (str): One of FORMATS.
    input_path (Union[str, Path]): The input file or directory.
    output_path (Union[str, Path]): The .spacy file to write (written only if a Doc converted).
    lang (str): Language of the blank tokenizer (`blank_tokenizer(lang)`).
    **options: Format options, as for `iter_docs`.
    RETURNS (ConversionReport): What was converted and skipped.
    RAISES (InputError): When a file cannot be read at all (a directory given
        for a file, no permission); bad content is reported, never raised.
    """
    input_path = Path(input_path)
    if not input_path.exists():
        raise FileNotFoundError(f"Input path does not exist: {input_path}")
    nlp = blank_tokenizer(lang)
    report = ConversionReport()
    docbin = DocBin(store_user_data=True)
    try:
        for doc in iter_docs(fmt, nlp, input_path, report, **options):
            docbin.add(doc)
    except OSError as err:
        raise InputError(f"Cannot read {err.filename or input_path}: {err.strerror or err}") from None
    if report.n_docs:
        output_path = Path(output_path)
        output_path.parent.mkdir(parents=True, exist_ok=True)
        docbin.to_disk(output_path)
    return report


class ConvertedCorpus:
    """Iterate Examples from a corpus converted on the fly, like `spacy.Corpus`.

    fmt (str): One of FORMATS.
    path (Path): The input file or directory.
    limit (int): Stop after this many Examples; 0 for no limit.
    max_length (int): Skip documents longer than this many tokens; 0 for no limit.
    options (Dict[str, Any]): Format options, as for `iter_docs`.
    """

    def __init__(
        self,
        fmt: str,
        path: Optional[Path],
        *,
        limit: int = 0,
        max_length: int = 0,
        options: Optional[Dict[str, Any]] = None,
    ) -> None:
        if path is None:
            raise ValueError(f"No path given for the {fmt} corpus reader (set it in [paths] or [corpora])")
        if fmt not in FORMATS:
            raise ValueError(f"Unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
        self.fmt, self.path, self.limit, self.max_length = fmt, Path(path), limit, max_length
        self.options = dict(options or {})
        self.report = ConversionReport()

    def __call__(self, nlp: Language) -> Iterator[Example]:
        """Convert the corpus and yield its Examples.

        nlp (Language): The current pipeline; its tokenizer makes both Docs.
        YIELDS (Example): Example(nlp.make_doc(text), reference).
        """
        if not self.path.exists():
            raise ValueError(f"Corpus path does not exist: {self.path}")
        self.report = ConversionReport()
        n = 0
        for reference in iter_docs(self.fmt, nlp, self.path, self.report, **self.options):
            if self.max_length and len(reference) > self.max_length:
                self.report.count("too_long_for_max_length")
                continue
            yield Example(nlp.make_doc(reference.text), reference)
            n += 1
            if self.limit and n >= self.limit:
                break


@registry.readers("spacy-clinlong.BratCorpus.v1")
def create_brat_reader(
    path: Optional[Path], *, span_key: str = "brat", limit: int = 0, max_length: int = 0
) -> Callable[[Language], Iterator[Example]]:
    """Read BRAT standoff (.txt + .ann) as Examples.

    path (Optional[Path]): A directory (searched recursively) or one .txt file.
    span_key (str): Span group with every entity (discontinuous: one span per fragment).
    limit (int): Stop after this many Examples; 0 for no limit.
    max_length (int): Skip documents longer than this many tokens; 0 for no limit.
    RETURNS (Callable[[Language], Iterator[Example]]): The corpus.
    """
    return ConvertedCorpus("brat", path, limit=limit, max_length=max_length, options={"span_key": span_key})


@registry.readers("spacy-clinlong.I2b2Corpus.v1")
def create_i2b2_reader(
    path: Optional[Path], *, span_key: str = "i2b2", limit: int = 0, max_length: int = 0
) -> Callable[[Language], Iterator[Example]]:
    """Read i2b2 2010 concept files (.txt + .con, optional .ast) as Examples.

    path (Optional[Path]): A directory (searched recursively) or one .txt file.
    span_key (str): Span group with every concept.
    limit (int): Stop after this many Examples; 0 for no limit.
    max_length (int): Skip documents longer than this many tokens; 0 for no limit.
    RETURNS (Callable[[Language], Iterator[Example]]): The corpus.
    """
    return ConvertedCorpus("i2b2", path, limit=limit, max_length=max_length, options={"span_key": span_key})


@registry.readers("spacy-clinlong.SquadCorpus.v1")
def create_squad_reader(
    path: Optional[Path], *, limit: int = 0, max_length: int = 0
) -> Callable[[Language], Iterator[Example]]:
    """Read SQuAD v1/v2 or emrQA JSON as Examples, questions in `user_data["clinlong_qa"]`.

    path (Optional[Path]): A .json file or a directory of them.
    limit (int): Stop after this many Examples; 0 for no limit.
    max_length (int): Skip contexts longer than this many tokens; 0 for no limit.
    RETURNS (Callable[[Language], Iterator[Example]]): The corpus.
    """
    return ConvertedCorpus("squad", path, limit=limit, max_length=max_length)


@registry.readers("spacy-clinlong.JsonlCorpus.v1")
def create_jsonl_reader(
    path: Optional[Path],
    *,
    text_field: str = "text",
    labels_field: Optional[str] = None,
    labels: Optional[List[str]] = None,
    span_key: str = "sc",
    limit: int = 0,
    max_length: int = 0,
) -> Callable[[Language], Iterator[Example]]:
    """Read JSONL with text, labels and/or spans as Examples.

    path (Optional[Path]): The .jsonl file.
    text_field (str): The key holding the text.
    labels_field (Optional[str]): The key holding labels; default cats, labels or label.
    labels (Optional[List[str]]): The label set for doc.cats; default: all seen in the
        file (give it so that train and dev share one set).
    span_key (str): Span group with every span.
    limit (int): Stop after this many Examples; 0 for no limit.
    max_length (int): Skip documents longer than this many tokens; 0 for no limit.
    RETURNS (Callable[[Language], Iterator[Example]]): The corpus.
    """
    options = {"text_field": text_field, "labels_field": labels_field, "labels": labels, "span_key": span_key}
    return ConvertedCorpus("jsonl", path, limit=limit, max_length=max_length, options=options)


@registry.readers("spacy-clinlong.CsvCorpus.v1")
def create_csv_reader(
    path: Optional[Path],
    *,
    text_field: str = "text",
    labels_field: Optional[str] = None,
    id_field: str = "id",
    labels: Optional[List[str]] = None,
    limit: int = 0,
    max_length: int = 0,
) -> Callable[[Language], Iterator[Example]]:
    """Read CSV with a text column and a label column or 0/1 label columns as Examples.

    path (Optional[Path]): The .csv file.
    text_field (str): The text column.
    labels_field (Optional[str]): The label column (several labels split on | or ;);
        default "label"/"labels" if present, else the 0/1 columns.
    id_field (str): The id column, if present.
    labels (Optional[List[str]]): The label set for doc.cats; default: all seen in the file.
    limit (int): Stop after this many Examples; 0 for no limit.
    max_length (int): Skip documents longer than this many tokens; 0 for no limit.
    RETURNS (Callable[[Language], Iterator[Example]]): The corpus.
    """
    options = {"text_field": text_field, "labels_field": labels_field, "id_field": id_field, "labels": labels}
    return ConvertedCorpus("csv", path, limit=limit, max_length=max_length, options=options)
