"""Reading notes: the one streaming note reader (.txt folder, JSONL, CSV, Parquet) and its reason names."""

from .csv_rows import FIELD_LIMIT, CsvRow, csv_header, csv_row_start, csv_rows
from .database import (
    DatabaseInput,
    database_error,
    engine_url,
    is_database_url,
    is_url,
    redact_url,
    shown_name,
)
from .jsonl import JSON_ERRORS, JsonLine, json_error, jsonl_lines
from .reader import InputError, NoteInput, RawRecord, input_kind, judge
from .reasons import INT_ID_RANGE, REASONS, has_surrogates, id_problem, integer_id, reason_name

__all__ = [
    "FIELD_LIMIT",
    "INT_ID_RANGE",
    "JSON_ERRORS",
    "REASONS",
    "CsvRow",
    "DatabaseInput",
    "InputError",
    "JsonLine",
    "NoteInput",
    "RawRecord",
    "csv_header",
    "csv_row_start",
    "csv_rows",
    "database_error",
    "engine_url",
    "has_surrogates",
    "id_problem",
    "input_kind",
    "integer_id",
    "is_database_url",
    "is_url",
    "json_error",
    "jsonl_lines",
    "judge",
    "reason_name",
    "redact_url",
    "shown_name",
]
