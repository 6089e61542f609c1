"""Strict CSV read row by row from a byte offset, a bad row reported with its lines and skipped."""

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

#: The longest field csv may read: whole notes pass its default 128 KiB. 2**31 - 1 is the
#: most a C long holds on every platform.
FIELD_LIMIT = 2**31 - 1


def parse_next(reader) -> List[str]:
    """next(reader), with csv's field limit raised for this one row.

    csv's limit is process-wide and checked while a row is parsed, so it is
    raised around each row and put back before control returns: a reader
    suspended between rows leaves the limit as the process had it. (Another
    thread parsing CSV at that very moment sees the raised limit.)

    reader (Iterator[List[str]]): A `csv.reader`.
    RETURNS (List[str]): Its next row.
    RAISES (StopIteration, csv.Error): As `next(reader)` does.
    """
    previous = csv.field_size_limit()
    csv.field_size_limit(max(previous, FIELD_LIMIT))
    try:
        return next(reader)
    finally:
        csv.field_size_limit(previous)


def csv_header(path: Path) -> Tuple[List[str], int]:
    """The header of a CSV file: the cells of its first line, and that line's length in bytes.

    path (Path): The file.
    RETURNS (Tuple[List[str], int]): The column names (none if the line cannot be
        parsed; an undecodable byte is a lone surrogate) and where the rows start.
    """
    with Path(path).open("rb") as handle:
        first = handle.readline()
    try:
        header = parse_next(csv.reader([first.decode("utf-8-sig", errors="surrogateescape")]))
    except (StopIteration, csv.Error):
        header = []
    return header, len(first)


def csv_row_start(line: str, columns: int) -> bool:
    """Whether a line, met while skipping a malformed CSV row, can start the next row.

    After a row that strict parsing refused, reading on from the next line could
    take the continuation of a quoted multi-line note for a row of its own (a
    note fragment under a wrong id). So the lines after a bad row whose quotes
    are left open are skipped with it until its quotes close, or until a line
    that is a whole row by itself: balanced quotes, and as many cells as the header.

    line (str): The line, its end kept.
    columns (int): The header's number of columns.
    RETURNS (bool): Whether parsing may go on from this line.
    """
    if line.count('"') % 2:
        return False
    reader = csv.reader([line], strict=True)
    rows: List[List[str]] = []
    try:
        while len(rows) < 2:
            rows.append(parse_next(reader))
    except StopIteration:
        pass
    except csv.Error:
        return False
    return len(rows) == 1 and len(rows[0]) == columns


@dataclass
class CsvRow:
    """A row of a CSV file, or the run of lines that csv could not parse as one.

    cells (Optional[List[str]]): The cells; None for a bad row.
    line (int): Its first line, 1-based.
    last_line (int): Its last line (a quoted note spans several; a bad row takes
        the lines skipped with it).
    start (int): The byte offset of its first line.
    end (int): The byte offset after its last line, where the next row starts.
    error (Optional[str]): Why csv refused a bad row (its message, or "quote not
        closed" at the end of the file); never text.
    """

    cells: Optional[List[str]]
    line: int
    last_line: int
    start: int
    end: int
    error: Optional[str] = None


def csv_rows(path: Path, *, columns: int, offset: int, line: int) -> Iterator[CsvRow]:
    """Read the rows of a CSV file from a byte offset on, blank lines left out.

    Strict, because the lenient parser reads a quote left open as a cell that
    runs on to the next quote or the end of the file, silently swallowing the
    rows in between. After a bad row a new parser starts at the next line, or,
    where the bad row's quotes are left open, at the first line that can start
    a row (`csv_row_start`). Bytes that are not UTF-8 become lone surrogates,
    so one bad byte spoils only its own row.

    path (Path): The file.
    columns (int): The header's number of columns.
    offset (int): Where to start: the end of the header, or a row's `end`.
    line (int): The 1-based number of the line at `offset`.
    YIELDS (CsvRow): Each row, good or bad, in order.
    """
    starts: List[Tuple[int, int, int]] = []  # (byte offset, line, quotes) of each line parsed
    exhausted = False

    def lines(handle):
        nonlocal offset, line, exhausted
        for raw in handle:
            starts.append((offset, line, raw.count(b'"')))
            offset, line = offset + len(raw), line + 1
            yield raw.decode("utf-8", errors="surrogateescape")
        exhausted = True

    with Path(path).open("rb") as handle:
        while True:  # one parser per run of good rows: a bad row restarts it
            handle.seek(offset)
            del starts[:]
            exhausted = False
            reader = csv.reader(lines(handle), strict=True)
            while True:
                try:
                    cells = parse_next(reader)
                except StopIteration:
                    return
                except csv.Error as err:
                    # At the end of the file, csv's "unexpected end of data" is a quote never closed.
                    error = "quote not closed" if exhausted else str(err)
                    break
                row_offset, row_line, _ = starts[0] if starts else (offset, line, 0)
                del starts[:]
                if cells:
                    yield CsvRow(cells, row_line, line - 1, row_offset, offset)
            row_offset, row_line, _ = starts[0]
            quotes_open = sum(quotes for _, _, quotes in starts) % 2 == 1
            handle.seek(offset)
            while quotes_open:
                raw = handle.readline()
                if not raw or csv_row_start(raw.decode("utf-8", errors="surrogateescape"), columns):
                    break
                offset, line = offset + len(raw), line + 1
                quotes_open = bool(raw.count(b'"') % 2) != quotes_open
            yield CsvRow(None, row_line, line - 1, row_offset, offset, error)
