"""Streaming note text for pretraining: a directory of .txt, or a JSONL, CSV or Parquet file.

The notes are read by the one note reader (`spacy_clinlong.io.NoteInput`):
files one at a time and JSONL/CSV line by line, so a corpus of millions of
notes costs the memory of one note. A bad record is skipped with the reason
annotate gives it (`spacy_clinlong.io.REASONS`: undecodable, invalid_json,
malformed_csv, missing_text, empty ...), counted, and logged with its file and
line, never its text. Ids are not needed.
"""

import logging
import zlib
from collections import Counter
from pathlib import Path
from typing import Iterator, List, Optional, Set, Tuple

from ..io import InputError, NoteInput, judge

logger = logging.getLogger("spacy_clinlong.pretraining")


class CorpusError(InputError):
    """A pretraining corpus that cannot be read at all."""


class NoteSource:
    """A re-iterable stream of note texts from a directory, JSONL, CSV or Parquet file.

    path (Path): A directory of .txt files (searched recursively, in sorted
        order), a .jsonl, .csv or .parquet file.
    text_field (str): The JSONL key or CSV/Parquet column that holds the note.
    follow_symlinks (bool): Read .txt symlinks that lead outside the directory (the
        default, as `pretrain` always has); False skips them as `outside_input`.
    """

    def __init__(self, path: Path, *, text_field: str = "text", follow_symlinks: bool = True) -> None:
        self.path = Path(path)
        self.text_field = text_field
        self.skipped: Counter = Counter()
        try:
            self.notes = NoteInput(
                self.path, id_field=None, text_field=text_field, follow_symlinks=follow_symlinks
            )
        except InputError as err:
            raise CorpusError(str(err)) from None
        self.kind = self.notes.kind

    def __iter__(self) -> Iterator[str]:
        """YIELDS (str): Each good note's text, in a fixed order."""
        self.skipped = Counter()
        try:
            for record, _ in self.notes.records():
                reason = judge(record, need_id=False)
                if reason is None:
                    yield record.text
                else:
                    self.skipped[reason] += 1
                    logger.warning("Skipped a note: %s (%s)", reason, record.source)
        except InputError as err:  # a directory with no .txt files
            raise CorpusError(str(err)) from None


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
