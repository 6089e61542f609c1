"""Streaming note text for pretraining: a directory of .txt, a JSONL file, or a CSV column.

Nothing is loaded whole: files are read one at a time and JSONL/CSV line by
line, so a corpus of millions of notes costs the memory of one note. A bad
record (undecodable bytes, invalid JSON, a missing or empty text field) is
counted by reason and its file and line are logged, never its text.
"""
import csv
import json
import logging
import zlib
from collections import Counter
from pathlib import Path
from typing import Iterator, List, Optional, Set, Tuple

logger = logging.getLogger("spacy_clinlong.pretraining")

NOTE_SUFFIXES = (".txt",)
JSONL_SUFFIXES = (".jsonl", ".ndjson")
CSV_SUFFIXES = (".csv",)


class CorpusError(ValueError):
    """A pretraining corpus that cannot be read at all."""


class NoteSource:
    """A re-iterable stream of note texts from a directory, JSONL or CSV.

    path (Path): A directory of .txt files (searched recursively, in sorted
        order), a .jsonl file or a .csv file.
    text_field (str): The JSONL key or CSV column that holds the note.
    """

    def __init__(self, path: Path, *, text_field: str = "text") -> None:
        self.path = Path(path)
        self.text_field = text_field
        self.skipped: Counter = Counter()
        if not self.path.exists():
            raise CorpusError(f"Corpus {str(self.path)!r} does not exist.")
        if self.path.is_dir():
            self.kind = "txt"
        elif self.path.suffix.lower() in JSONL_SUFFIXES:
            self.kind = "jsonl"
        elif self.path.suffix.lower() in CSV_SUFFIXES:
            self.kind = "csv"
        else:
            raise CorpusError(
                f"Corpus {str(self.path)!r}: expected a directory of .txt files, a .jsonl "
                f"file or a .csv file, not {self.path.suffix or 'a file without a suffix'!r}."
            )

    def __iter__(self) -> Iterator[str]:
        """YIELDS (str): Each good note's text, in a fixed order."""
        self.skipped = Counter()
        reader = {"txt": self._iter_txt, "jsonl": self._iter_jsonl, "csv": self._iter_csv}[self.kind]
        yield from reader()

    def _skip(self, reason: str, where: Path, line: int = 0) -> None:
        self.skipped[reason] += 1
        logger.warning("Skipped a note: %s (%s%s)", reason, where, f":{line}" if line else "")

    def _iter_txt(self) -> Iterator[str]:
        files = sorted(p for p in self.path.rglob("*") if p.is_file() and p.suffix.lower() in NOTE_SUFFIXES)
        if not files:
            raise CorpusError(f"Corpus directory {str(self.path)!r} has no .txt files.")
        for file in files:
            try:
                text = file.read_bytes().decode("utf-8-sig")
            except UnicodeDecodeError:
                self._skip("undecodable", file)
                continue
            if not text.strip():
                self._skip("empty", file)
                continue
            yield text

    def _iter_jsonl(self) -> Iterator[str]:
        with self.path.open("rb") as handle:
            for lineno, raw in enumerate(handle, start=1):
                if lineno == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError:
                    self._skip("undecodable", self.path, lineno)
                    continue
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    self._skip("invalid_json", self.path, lineno)
                    continue
                text = obj.get(self.text_field) if isinstance(obj, dict) else None
                if not isinstance(text, str) or not text.strip():
                    self._skip("missing_text", self.path, lineno)
                    continue
                yield text

    def _iter_csv(self) -> Iterator[str]:
        # Whole notes can exceed csv's default 128 KiB field limit.
        csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
        with self.path.open("r", encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None or self.text_field not in header:
                raise CorpusError(f"Corpus {str(self.path)!r} has no column {self.text_field!r}.")
            column = header.index(self.text_field)
            start = reader.line_num + 1
            try:
                for row in reader:
                    lineno, start = start, reader.line_num + 1
                    if not row:
                        continue
                    text = row[column] if column < len(row) else ""
                    if any("\udc80" <= ch <= "\udcff" for ch in text):
                        self._skip("undecodable", self.path, lineno)
                    elif not text.strip():
                        self._skip("missing_text", self.path, lineno)
                    else:
                        yield text
            except csv.Error:
                # e.g. a NUL byte: what came before it is kept.
                self._skip("malformed_csv", self.path, start)


def is_held_out(index: int, fraction: float, seed: int) -> bool:
    """Whether note `index` belongs to the held-out share, by a stable hash.

    RETURNS (bool): True for about `fraction` of indices, the same on every run.
    """
    return zlib.crc32(f"{seed}:{index}".encode()) % 100_000 < fraction * 100_000


def split_held_out(
    source: NoteSource, *, fraction: float, max_notes: int, seed: int
) -> Tuple[List[str], Set[int]]:
    """Take the held-out notes out of a stream (one pass, stopping at `max_notes`).

    source (NoteSource): The corpus.
    fraction (float): Share of notes to hold out.
    max_notes (int): At most this many are held out; the scan stops there.
    seed (int): Seed of the split.
    RETURNS (Tuple[List[str], Set[int]]): The held-out texts and their indices
        in the stream (which training skips).
    """
    texts: List[str] = []
    indices: Set[int] = set()
    if fraction <= 0 or max_notes <= 0:
        return texts, indices
    for i, text in enumerate(source):
        if is_held_out(i, fraction, seed):
            texts.append(text)
            indices.add(i)
            if len(texts) >= max_notes:
                break
    return texts, indices


def read_all(source: NoteSource, limit: Optional[int] = None) -> List[str]:
    """RETURNS (List[str]): The first `limit` notes (all when None) of a small corpus."""
    out: List[str] = []
    for text in source:
        out.append(text)
        if limit is not None and len(out) >= limit:
            break
    return out
