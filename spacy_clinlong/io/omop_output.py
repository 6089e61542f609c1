"""NOTE_NLP out: OMOP CDM v5.4 rows (see `omop_mapping`) written one shard per transaction, each shard once.

`NoteNlpWriter` writes a shard's rows, results, bad records and manifest row in one
transaction, so a shard is in the database whole or not at all, and only once: a rerun
after a crash, or a second process on the same shard, finds the manifest row and writes
nothing. A job's identity and plan live in the same database, so any process that can
reach it can resume the job.

Tables (in the writer's `schema`, e.g. OMOP's `cdm`; each created if missing, an existing
one used as it is once its columns are checked):

- `note_nlp`: OMOP CDM v5.4 NOTE_NLP, one row per entity. When created here it gets the
  CDM's primary key on note_nlp_id and its two indexes (note_id, note_nlp_concept_id).
- `clinlong_job`: job_key (PK), identity (JSON: what the job was run with, for the
  caller to compare on resume), input (JSON: the input's fingerprint), shards (planned),
  created_at, completed_at and summary (JSON) once the job is complete.
- `clinlong_plan`: job_key, shard (PK), the shard's plan entry (JSON text).
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

import json
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Dict, Iterator, List, Mapping, Optional, Set, Union

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError

from .database import redact_url

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


@dataclass(frozen=True)
class OutputTables:
    """The writer's tables, all on one MetaData."""

    metadata: sa.MetaData
    note_nlp: sa.Table
    job: sa.Table
    plan: sa.Table
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
        sa.Column("input", sa.JSON),
        sa.Column("shards", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("completed_at", sa.DateTime),
        sa.Column("summary", sa.JSON),
    )
    plan = sa.Table(
        "clinlong_plan",
        md,
        sa.Column("job_key", sa.String(255), primary_key=True),
        sa.Column("shard", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("entry", sa.Text, nullable=False),
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
    return OutputTables(md, note_nlp, job, plan, manifest, errors, results)


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
    shown = redact_url(url)
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
        self.shown_url = redact_url(self.url)
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

    def job(self, job_key: str) -> Optional[Dict[str, Any]]:
        """RETURNS (Optional[Dict[str, Any]]): The job's row (identity, input, shards, completed_at,
        summary), or None for a job not started."""
        job = self.tables.job
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(job).where(job.c.job_key == job_key)).mappings().first()
        return None if row is None else dict(row)

    def start_job(
        self, job_key: str, identity: Mapping[str, Any], input_info: Any, plan: List[Dict[str, Any]]
    ) -> bool:
        """Record a job and its plan in one transaction, unless another process did first.

        job_key (str): The job.
        identity (Mapping[str, Any]): Plain JSON data (model, settings ...), compared on resume by the caller.
        input_info (Any): The input's fingerprint (JSON data).
        plan (List[Dict[str, Any]]): The shards, each a JSON-able dict with its number under "shard".
        RETURNS (bool): True if recorded now; False if the job was already there (nothing written).
        """
        t = self.tables
        row = {
            "job_key": job_key,
            "identity": dict(identity),
            "input": input_info,
            "shards": len(plan),
            "created_at": _utcnow(),
        }
        try:
            with self._writing() as conn:
                self._lock(conn)
                if conn.scalar(sa.select(t.job.c.job_key).where(t.job.c.job_key == job_key)) is not None:
                    return False
                conn.execute(t.job.insert().values(row))
                if plan:
                    entries = [
                        {"job_key": job_key, "shard": entry["shard"], "entry": json.dumps(entry)}
                        for entry in plan
                    ]
                    conn.execute(t.plan.insert(), entries)
        except IntegrityError:
            if self.job(job_key) is not None:
                return False
            raise
        except DBAPIError as err:
            raise _clean_error(err, f"Recording job {job_key!r} in {self.shown_url}") from None
        return True

    def plan(self, job_key: str) -> List[Dict[str, Any]]:
        """RETURNS (List[Dict[str, Any]]): The job's shards, in order."""
        plan = self.tables.plan
        query = sa.select(plan.c.entry).where(plan.c.job_key == job_key).order_by(plan.c.shard)
        with self.engine.connect() as conn:
            return [json.loads(entry) for entry in conn.scalars(query)]

    def written_shard(self, job_key: str, shard: int) -> Optional[Dict[str, Any]]:
        """RETURNS (Optional[Dict[str, Any]]): The shard's manifest row, or None while it is not written."""
        manifest = self.tables.manifest
        query = sa.select(manifest).where(manifest.c.job_key == job_key, manifest.c.shard == shard)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else dict(row)

    def manifest(self, job_key: str) -> Dict[int, Dict[str, Any]]:
        """RETURNS (Dict[int, Dict[str, Any]]): Each written shard's manifest row, by shard."""
        manifest = self.tables.manifest
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(manifest).where(manifest.c.job_key == job_key)).mappings()
            return {row["shard"]: dict(row) for row in rows}

    def error_reasons(self, job_key: str) -> Dict[str, int]:
        """RETURNS (Dict[str, int]): How many bad records the job has written, by reason."""
        errors = self.tables.errors
        query = (
            sa.select(errors.c.reason, sa.func.count())
            .where(errors.c.job_key == job_key)
            .group_by(errors.c.reason)
            .order_by(errors.c.reason)
        )
        with self.engine.connect() as conn:
            return {reason: n for reason, n in conn.execute(query)}

    def complete_job(self, job_key: str, summary: Mapping[str, Any]) -> None:
        """Mark a job complete with its summary (counts only)."""
        job = self.tables.job
        statement = (
            job.update().where(job.c.job_key == job_key).values(completed_at=_utcnow(), summary=dict(summary))
        )
        with self._writing() as conn:
            conn.execute(statement)

    def discard_job(self, job_key: str) -> int:
        """Remove a job and everything it wrote (its NOTE_NLP rows by their recorded id ranges), at once.

        job_key (str): The job.
        RETURNS (int): The NOTE_NLP rows removed.
        """
        t = self.tables
        m = t.manifest
        ranges = sa.select(m.c.first_note_nlp_id, m.c.last_note_nlp_id).where(
            m.c.job_key == job_key, m.c.first_note_nlp_id.is_not(None)
        )
        removed = 0
        try:
            with self._writing() as conn:
                self._lock(conn)
                for first, last in conn.execute(ranges).all():
                    note_nlp_id = t.note_nlp.c.note_nlp_id
                    removed += conn.execute(
                        t.note_nlp.delete().where(note_nlp_id.between(first, last))
                    ).rowcount
                for table in (t.results, t.errors, t.manifest, t.plan, t.job):
                    conn.execute(table.delete().where(table.c.job_key == job_key))
        except DBAPIError as err:
            raise _clean_error(err, f"Removing job {job_key!r} from {self.shown_url}") from None
        return removed

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
