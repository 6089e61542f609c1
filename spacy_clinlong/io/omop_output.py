"""NOTE_NLP out: OMOP CDM v5.4 rows from annotated docs, written one shard per transaction, each shard once.

`note_nlp_rows` turns the JSON view of a doc (`doc_to_json`) into NOTE_NLP rows, one per
entity, and `note_result_rows` its note labels (`doc.cats`) and answers. `NoteNlpWriter`
writes a shard's rows, results, bad records and manifest row in one transaction, so a
shard is in the database whole or not at all, and only once: a rerun after a crash, or
a second process on the same shard, finds the manifest row and writes nothing.

Tables (in the writer's `schema`, e.g. OMOP's `cdm`; each created if missing, an existing
one used as it is once its columns are checked):

- `note_nlp`: OMOP CDM v5.4 NOTE_NLP, one row per entity. When created here it gets the
  CDM's primary key on note_nlp_id and its two indexes (note_id, note_nlp_concept_id).
- `clinlong_job`: job_key (PK), identity (JSON: what the job was run with, for the
  caller to compare on resume), updated_at.
- `clinlong_manifest`: one row per shard written: job_key, shard (PRIMARY KEY (job_key,
  shard): the exactly-once guard), notes, failed, errors (the caller's counts),
  note_nlp_rows, results, the shard's first and last note_nlp_id, written_at.
- `clinlong_errors`: bad records: job_key, shard, record_index, note_id (as text),
  reason, source, length, detail. Never their text.
- `clinlong_note_results`: document-level results: job_key, shard, note_id, kind ("cat"
  or "answer"), name (the label or the question), value (score), answer_start,
  answer_end (characters), answer_text (at most 250 characters).

note_nlp_id is allocated inside the shard's transaction, after a lock every writer of
the table takes (PostgreSQL: `pg_advisory_xact_lock`; SQLite: `BEGIN IMMEDIATE`), as
max(note_nlp_id) + 1 onwards: writers never collide and a shard's ids are consecutive.
"""

import csv
import json
import re
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any, Dict, Iterator, List, Mapping, Optional, Set, Union

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError

from ..about import __version__

# OHDSI/CommonDataModel inst/ddl/5.4/postgresql/OMOPCDM_postgresql_5.4_ddl.sql, in its order (types and
# NOT NULL as there, except that both ids are BIGINT: the official file says integer, but note ids
# here are 64-bit (io.reasons.INT_ID_RANGE) and OMOP allows bigint ids; an existing integer table works).
NOTE_NLP_COLUMNS = (
    "note_nlp_id",
    "note_id",
    "section_concept_id",
    "snippet",
    "offset",
    "lexical_variant",
    "note_nlp_concept_id",
    "note_nlp_source_concept_id",
    "nlp_system",
    "nlp_date",
    "nlp_datetime",
    "term_exists",
    "term_temporal",
    "term_modifiers",
)
#: The ConText flags of `doc_to_json` (is_negated ... without "is_"), in term_modifiers' order.
FLAGS = ("negated", "historical", "family", "hypothetical", "uncertain")
#: An entity with any of these flags is not asserted to exist in the patient.
NOT_PRESENT = ("negated", "hypothetical", "family", "uncertain")
_EMPTY: Mapping[str, int] = MappingProxyType({})
_SPACES = re.compile(r"\s+")


def _clip(text: str, limit: int) -> str:
    # PostgreSQL text cannot hold NUL (an escaped \u0000 in JSONL notes would fail the whole shard).
    return text.replace("\x00", "")[:limit]


@dataclass(frozen=True)
class OutputTables:
    """The writer's tables, all on one MetaData."""

    metadata: sa.MetaData
    note_nlp: sa.Table
    job: sa.Table
    manifest: sa.Table
    errors: sa.Table
    results: sa.Table


def build_tables(schema: Optional[str] = None) -> OutputTables:
    """Define NOTE_NLP and the package's own tables.

    schema (Optional[str]): The schema they live in (OMOP's `cdm`), None for the default.
    RETURNS (OutputTables): The tables.
    """
    md = sa.MetaData(schema=schema)
    note_nlp = sa.Table(
        "note_nlp",
        md,
        # The CDM's primary_keys.sql: xpk_note_nlp. Its indices.sql: the two indexes below.
        sa.Column("note_nlp_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("note_id", sa.BigInteger, nullable=False),
        sa.Column("section_concept_id", sa.Integer),
        sa.Column("snippet", sa.String(250)),
        sa.Column("offset", sa.String(50), quote=True),  # a reserved word in PostgreSQL
        sa.Column("lexical_variant", sa.String(250), nullable=False),
        sa.Column("note_nlp_concept_id", sa.Integer),
        sa.Column("note_nlp_source_concept_id", sa.Integer),
        sa.Column("nlp_system", sa.String(250)),
        sa.Column("nlp_date", sa.Date, nullable=False),
        sa.Column("nlp_datetime", sa.DateTime),
        sa.Column("term_exists", sa.String(1)),
        sa.Column("term_temporal", sa.String(50)),
        sa.Column("term_modifiers", sa.String(2000)),
        sa.Index("idx_note_nlp_note_id", "note_id"),
        sa.Index("idx_note_nlp_concept_id", "note_nlp_concept_id"),
    )
    job = sa.Table(
        "clinlong_job",
        md,
        sa.Column("job_key", sa.String(255), primary_key=True),
        sa.Column("identity", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    manifest = sa.Table(
        "clinlong_manifest",
        md,
        sa.Column("job_key", sa.String(255), primary_key=True),
        sa.Column("shard", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("notes", sa.Integer),
        sa.Column("failed", sa.Integer),
        sa.Column("errors", sa.Integer),
        sa.Column("note_nlp_rows", sa.Integer, nullable=False),
        sa.Column("results", sa.Integer, nullable=False),
        sa.Column("first_note_nlp_id", sa.BigInteger),
        sa.Column("last_note_nlp_id", sa.BigInteger),
        sa.Column("written_at", sa.DateTime, nullable=False),
    )
    errors = sa.Table(
        "clinlong_errors",
        md,
        sa.Column("job_key", sa.String(255), primary_key=True),
        sa.Column("shard", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("record_index", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("note_id", sa.Text),
        sa.Column("reason", sa.String(50), nullable=False),
        sa.Column("source", sa.Text),
        sa.Column("length", sa.BigInteger),
        sa.Column("detail", sa.String(250)),
    )
    results = sa.Table(
        "clinlong_note_results",
        md,
        sa.Column("job_key", sa.String(255), nullable=False),
        sa.Column("shard", sa.Integer, nullable=False),
        sa.Column("note_id", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(6), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("value", sa.Float),
        sa.Column("answer_start", sa.Integer),
        sa.Column("answer_end", sa.Integer),
        sa.Column("answer_text", sa.String(250)),
        sa.CheckConstraint("kind IN ('cat', 'answer')", name="ck_clinlong_note_results_kind"),
        sa.Index("idx_clinlong_note_results_note", "job_key", "note_id"),
    )
    return OutputTables(md, note_nlp, job, manifest, errors, results)


def nlp_system_name(meta: Mapping[str, Any]) -> str:
    """RETURNS (str): NOTE_NLP's nlp_system for a pipeline's meta: "spacy-clinlong 0.1.0: en_x 1.0.0"."""
    name = f"{meta.get('lang', 'xx')}_{meta.get('name', 'pipeline')}"
    return f"spacy-clinlong {__version__}: {name} {meta.get('version', '0.0.0')}"[:250]


def read_concepts(path: Union[str, Path]) -> Dict[str, int]:
    """Read a concept map (section name, label or term to an OMOP concept id).

    path (Union[str, Path]): A .json object {"name": id}, or a .csv / .tsv of rows name,id (a
        header row whose id is not a number is skipped).
    RETURNS (Dict[str, int]): The map.
    """
    path = Path(path)
    if path.suffix.lower() == ".json":
        pairs = list(json.loads(path.read_text(encoding="utf-8")).items())
    else:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
        with open(path, newline="", encoding="utf-8") as handle:
            pairs = [tuple(row) for row in csv.reader(handle, delimiter=delimiter) if row]
        if pairs and len(pairs[0]) == 2 and not str(pairs[0][1]).strip().lstrip("-").isdigit():
            pairs = pairs[1:]
    out: Dict[str, int] = {}
    for number, pair in enumerate(pairs, start=1):
        value = pair[1] if len(pair) == 2 else None
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{path}: entry {number} is not a name and an integer concept id")
        out[str(pair[0]).strip()] = value
    return out


def snippet_for(text: str, start: int, end: int, window: int) -> str:
    """RETURNS (str): At most 250 characters around text[start:end], whitespace collapsed, the
    entity kept whole where it fits and the context trimmed evenly."""
    entity = _SPACES.sub(" ", text[start:end]).strip()
    left = _SPACES.sub(" ", text[max(0, start - window) : start]).lstrip()
    right = _SPACES.sub(" ", text[end : end + window]).rstrip()
    room = 250 - len(entity)
    if room <= 0:
        return entity[:250]
    keep_left = min(len(left), max(room // 2, room - len(right)))
    keep_right = min(len(right), room - keep_left)
    return (left[len(left) - keep_left :] + entity + right[:keep_right]).strip()


def _section_of(ent: Mapping[str, Any], sections: List[Mapping[str, Any]]) -> Optional[str]:
    if "section" in ent:
        return ent["section"]
    for section in reversed(sections):
        if section["start"] <= ent["start"] < section["end"]:
            return section["category"]
    return None


def note_nlp_rows(
    doc_json: Mapping[str, Any],
    note_id: int,
    *,
    nlp_system: str,
    nlp_date: date,
    nlp_datetime: Optional[datetime],
    section_concepts: Mapping[str, int] = _EMPTY,
    concepts: Mapping[str, int] = _EMPTY,
    snippet_window: int = 50,
    text: Optional[str] = None,
) -> List[Dict[str, Any]]:
    """Map a doc's entities to NOTE_NLP rows (without note_nlp_id: the writer allocates it).

    doc_json (Mapping[str, Any]): The JSON view of the doc (`doc_to_json`).
    note_id (int): NOTE.note_id of the note.
    nlp_system (str): e.g. `nlp_system_name(nlp.meta)`; cut to 250 characters.
    nlp_date (date): When the pipeline ran.
    nlp_datetime (Optional[datetime]): The same with its time; an aware one is stored as UTC.
    section_concepts (Mapping[str, int]): medspaCy section name to section_concept_id (else 0).
    concepts (Mapping[str, int]): Lowercase term, else label, to note_nlp_concept_id (else 0).
    snippet_window (int): Characters of context on each side of the entity in the snippet.
    text (Optional[str]): The note's text, for snippets (else doc_json["text"]; without either
        the snippet is the entity alone: the JSON view carries no text).
    RETURNS (List[Dict[str, Any]]): One row per entity, keyed by NOTE_NLP's columns.
    """
    if text is None:
        text = doc_json.get("text")
    if nlp_datetime is not None and nlp_datetime.tzinfo is not None:
        # PostgreSQL's timestamp (without time zone) silently drops an offset.
        nlp_datetime = nlp_datetime.astimezone(timezone.utc).replace(tzinfo=None)
    sections = doc_json.get("sections") or []
    rows = []
    for ent in doc_json.get("entities", []):
        start, end, label = ent["start"], ent["end"], ent["label"]
        term = ent.get("text") or (text[start:end] if text is not None else "")
        flags = {flag: ent[flag] for flag in FLAGS if ent.get(flag) is not None}
        modifiers = [f"{flag}={str(value).lower()}" for flag, value in flags.items()] + [f"label={label}"]
        concept = concepts.get(term.lower(), concepts.get(label, 0))
        section = _section_of(ent, sections)
        rows.append(
            {
                "note_id": note_id,
                "section_concept_id": section_concepts.get(section, 0) if section else 0,
                "snippet": _clip(
                    snippet_for(text, start, end, snippet_window)
                    if text is not None
                    else _SPACES.sub(" ", term).strip(),
                    250,
                ),
                "offset": str(start),
                "lexical_variant": _clip(term, 250),
                "note_nlp_concept_id": concept,
                "note_nlp_source_concept_id": 0,
                "nlp_system": nlp_system[:250],
                "nlp_date": nlp_date,
                "nlp_datetime": nlp_datetime,
                "term_exists": "n" if any(flags.get(flag) for flag in NOT_PRESENT) else "y",
                "term_temporal": "past" if flags.get("historical") else None,
                "term_modifiers": ",".join(modifiers)[:2000],
            }
        )
    return rows


def note_result_rows(doc_json: Mapping[str, Any], note_id: int) -> List[Dict[str, Any]]:
    """Map a doc's note labels and answers to `clinlong_note_results` rows.

    doc_json (Mapping[str, Any]): The JSON view of the doc (`doc_to_json`).
    note_id (int): NOTE.note_id of the note.
    RETURNS (List[Dict[str, Any]]): One row per label (kind "cat", value its score) and per
        question (kind "answer"; value, offsets and text None where it has no answer).
    """
    rows = []
    empty = {"answer_start": None, "answer_end": None, "answer_text": None}
    for label, score in (doc_json.get("cats") or {}).items():
        rows.append({"note_id": note_id, "kind": "cat", "name": label, "value": float(score), **empty})
    for item in doc_json.get("answers") or []:
        answer = item.get("answer")
        row = {"note_id": note_id, "kind": "answer", "name": item["question"], "value": None, **empty}
        if answer is not None:
            row.update(
                value=answer.get("score"),
                answer_start=answer["start"],
                answer_end=answer["end"],
                answer_text=_clip(answer.get("text") or "", 250),
            )
        rows.append(row)
    return rows


class OutputError(RuntimeError):
    """The database refused a shard or a table: names tables, columns and codes, never a value."""


def database_url(url: Union[str, URL]) -> URL:
    """RETURNS (URL): The URL to connect with: `postgresql://` through psycopg 3, or SQLite."""
    url = make_url(url)
    backend, driver = url.get_backend_name(), url.get_driver_name()
    if backend == "postgresql" and url.drivername == "postgresql":
        return url.set(drivername="postgresql+psycopg")
    if (backend, driver) in (("postgresql", "psycopg"), ("sqlite", "pysqlite")):
        return url
    shown = url.render_as_string(hide_password=True)
    raise ValueError(
        f"{shown}: NOTE_NLP is written to PostgreSQL (psycopg 3) or SQLite, not {url.drivername}"
    )


def _clean_error(err: Exception, where: str) -> OutputError:
    """A database error without its message: PostgreSQL's repeat the failing row or COPY line."""
    orig = getattr(err, "orig", err)
    diag = getattr(orig, "diag", None)
    parts = [type(orig).__name__]
    if getattr(orig, "sqlstate", None):
        parts.append(f"SQLSTATE {orig.sqlstate}")
    if getattr(orig, "sqlite_errorname", None):
        parts.append(orig.sqlite_errorname)
        if orig.sqlite_errorname.startswith("SQLITE_CONSTRAINT"):
            parts.append(str(orig))  # "NOT NULL constraint failed: table.column": names only
    if diag is not None:
        parts += [f"{key} {getattr(diag, key)}" for key in ("table_name", "column_name", "constraint_name")]
        parts = [part for part in parts if not part.endswith(" None")]
    return OutputError(f"{where}: {', '.join(parts)}")


class NoteNlpWriter:
    """Write NOTE_NLP rows a shard at a time, each shard in one transaction and only once."""

    def __init__(self, url: Union[str, URL], *, schema: Optional[str] = None) -> None:
        """Connect, and create the tables that are missing (checking those that exist).

        url (Union[str, URL]): `postgresql://...` (psycopg 3) or `sqlite:///path`.
        schema (Optional[str]): The tables' schema (OMOP's `cdm`); created if missing on PostgreSQL.
        """
        self.url = database_url(url)
        self.shown_url = self.url.render_as_string(hide_password=True)
        self.schema = schema
        self.tables = build_tables(schema)
        self.is_postgres = self.url.get_backend_name() == "postgresql"
        # hide_parameters: SQLAlchemy's errors and logs would otherwise quote rows (note text).
        self.engine = sa.create_engine(
            self.url, hide_parameters=True, **({} if self.is_postgres else {"connect_args": {"timeout": 600}})
        )
        if not self.is_postgres:
            _serialize_sqlite_writers(self.engine)
        # One lock per table: every writer of this note_nlp, whatever the job, allocates ids under it.
        self.lock_key = zlib.crc32(f"spacy-clinlong note_nlp {schema or ''}".encode("utf-8"))
        try:
            with self._writing() as conn:
                self._lock(conn)
                if self.is_postgres and schema:
                    conn.execute(sa.schema.CreateSchema(schema, if_not_exists=True))
                self.tables.metadata.create_all(conn, checkfirst=True)
                self._check_columns(conn)
        except DBAPIError as err:
            raise _clean_error(err, f"Preparing the tables in {self.shown_url}") from None

    def _lock(self, conn: Connection) -> None:
        # SQLite: BEGIN IMMEDIATE (see _serialize_sqlite_writers) already holds the write lock.
        if self.is_postgres:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": self.lock_key})

    def _check_columns(self, conn: Connection) -> None:
        inspector = sa.inspect(conn)
        for table in self.tables.metadata.sorted_tables:
            have = {
                column["name"].lower() for column in inspector.get_columns(table.name, schema=self.schema)
            }
            missing = [column.name for column in table.columns if column.name not in have]
            if missing:
                raise OutputError(
                    f"Table {table.fullname} in {self.shown_url} lacks column(s) {', '.join(missing)}; "
                    f"{'OMOP CDM v5.4 NOTE_NLP' if table is self.tables.note_nlp else 'spacy-clinlong'} has them"
                )

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """A transaction that takes SQLite's write lock at BEGIN (see _serialize_sqlite_writers)."""
        with self.engine.connect().execution_options(clinlong_write=True) as conn, conn.begin():
            yield conn

    def close(self) -> None:
        """Close the writer's connections."""
        self.engine.dispose()

    def done_shards(self, job_key: str) -> Set[int]:
        """RETURNS (Set[int]): The shards of a job that are written."""
        manifest = self.tables.manifest
        with self.engine.connect() as conn:
            return set(conn.scalars(sa.select(manifest.c.shard).where(manifest.c.job_key == job_key)))

    def job_identity(self, job_key: str) -> Optional[Dict[str, Any]]:
        """RETURNS (Optional[Dict[str, Any]]): What the job was recorded as run with, or None."""
        job = self.tables.job
        with self.engine.connect() as conn:
            return conn.scalar(sa.select(job.c.identity).where(job.c.job_key == job_key))

    def set_job_identity(self, job_key: str, identity: Mapping[str, Any]) -> None:
        """Record (or replace) what a job is run with; comparing it with a rerun's is the caller's.

        job_key (str): The job.
        identity (Mapping[str, Any]): Plain JSON data (model, input digest, settings ...).
        """
        insert = (postgresql if self.is_postgres else sqlite).insert
        values = {"job_key": job_key, "identity": dict(identity), "updated_at": _utcnow()}
        statement = insert(self.tables.job).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=["job_key"],
            set_={"identity": values["identity"], "updated_at": values["updated_at"]},
        )
        with self._writing() as conn:
            conn.execute(statement)

    def write_shard(
        self,
        job_key: str,
        shard: int,
        rows: List[Dict[str, Any]],
        results: List[Dict[str, Any]],
        errors: List[Dict[str, Any]],
        counts: Mapping[str, int],
    ) -> bool:
        """Write a shard's NOTE_NLP rows, results, bad records and manifest row in one transaction.

        job_key (str): The job.
        shard (int): The shard's number.
        rows (List[Dict[str, Any]]): `note_nlp_rows` of its notes; note_nlp_id is allocated here.
        results (List[Dict[str, Any]]): `note_result_rows` of its notes.
        errors (List[Dict[str, Any]]): Its bad records, as annotate's error entries (index, id,
            reason, source, length, detail).
        counts (Mapping[str, int]): "notes", "failed", "errors" for the manifest (others ignored).
        RETURNS (bool): True if written now; False (nothing written) if the shard was written before.
        """
        where = f"Writing shard {shard} of job {job_key!r} to {self.shown_url}"
        t = self.tables
        try:
            with self._writing() as conn:
                self._lock(conn)
                if self._has_shard(conn, job_key, shard):
                    return False
                first = conn.scalar(sa.select(sa.func.coalesce(sa.func.max(t.note_nlp.c.note_nlp_id), 0))) + 1
                self._write_note_nlp(conn, rows, first, where)
                if errors:
                    conn.execute(t.errors.insert(), [_error_row(job_key, shard, entry) for entry in errors])
                if results:
                    conn.execute(t.results.insert(), [dict(r, job_key=job_key, shard=shard) for r in results])
                manifest_row = {
                    "job_key": job_key,
                    "shard": shard,
                    **{key: counts.get(key) for key in ("notes", "failed", "errors")},
                    "note_nlp_rows": len(rows),
                    "results": len(results),
                    "first_note_nlp_id": first if rows else None,
                    "last_note_nlp_id": first + len(rows) - 1 if rows else None,
                    "written_at": _utcnow(),
                }
                conn.execute(t.manifest.insert().values(manifest_row))
        except IntegrityError as err:
            # Another writer's manifest row for this shard won (the transaction is rolled back).
            if shard in self.done_shards(job_key):
                return False
            raise _clean_error(err, where) from None
        except DBAPIError as err:
            raise _clean_error(err, where) from None
        return True

    def _has_shard(self, conn: Connection, job_key: str, shard: int) -> bool:
        manifest = self.tables.manifest
        query = sa.select(manifest.c.shard).where(manifest.c.job_key == job_key, manifest.c.shard == shard)
        return conn.scalar(query) is not None

    def _write_note_nlp(self, conn: Connection, rows: List[Dict[str, Any]], first: int, where: str) -> None:
        if not rows:
            return
        if not self.is_postgres:
            ids = range(first, first + len(rows))
            conn.execute(
                self.tables.note_nlp.insert(), [dict(row, note_nlp_id=i) for i, row in zip(ids, rows)]
            )
            return
        import psycopg

        preparer = conn.dialect.identifier_preparer
        columns = ", ".join(preparer.quote(name) for name in NOTE_NLP_COLUMNS)
        sql = f"COPY {preparer.format_table(self.tables.note_nlp)} ({columns}) FROM STDIN"
        fields = NOTE_NLP_COLUMNS[1:]
        # The raw psycopg connection is the one SQLAlchemy's transaction runs on: COPY joins it.
        raw = conn.connection.driver_connection
        try:
            with raw.cursor() as cursor, cursor.copy(sql) as copy:
                for number, row in enumerate(rows, start=first):
                    copy.write_row((number, *[row.get(name) for name in fields]))
        except psycopg.Error as err:
            # Its message quotes the failing COPY line.
            raise _clean_error(err, where) from None


def _error_row(job_key: str, shard: int, entry: Mapping[str, Any]) -> Dict[str, Any]:
    note_id = entry.get("id")
    detail = entry.get("detail")
    return {
        "job_key": job_key,
        "shard": shard,
        "record_index": entry["index"],
        "note_id": None if note_id is None else str(note_id),
        "reason": entry.get("reason"),
        "source": None if entry.get("source") is None else str(entry["source"]),
        "length": entry.get("length"),
        "detail": None if detail is None else str(detail)[:250],
    }


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _serialize_sqlite_writers(engine: sa.engine.Engine) -> None:
    """Make every SQLite write transaction BEGIN IMMEDIATE: it takes the write lock at once, so a shard's
    max(note_nlp_id) and manifest check hold until it commits (the pysqlite recipe in SQLAlchemy's docs).
    The database file is switched to WAL journaling, which it keeps."""

    @sa.event.listens_for(engine, "connect")
    def _connect(dbapi_connection, record):
        dbapi_connection.isolation_level = None  # pysqlite's own BEGIN would be deferred
        # WAL: readers (done_shards, a progress query) need not wait while a big shard is written.
        dbapi_connection.execute("PRAGMA journal_mode=WAL")

    @sa.event.listens_for(engine, "begin")
    def _begin(conn):
        # A read (and anyone else's use of writer.engine) begins deferred, and need not wait.
        conn.exec_driver_sql(
            "BEGIN IMMEDIATE" if conn.get_execution_options().get("clinlong_write") else "BEGIN"
        )
