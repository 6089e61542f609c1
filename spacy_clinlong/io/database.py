"""Notes from a database table (the OMOP CDM NOTE table), read as numbered records like `NoteInput`'s."""

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Tuple, Union

from .reader import InputError, RawRecord
from .reasons import has_surrogates

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

#: The backends a note table can live in, and the drivers each may name (None: the URL names none).
DRIVERS = {"sqlite": (None, "pysqlite"), "postgresql": (None, "psycopg")}
_SCHEME = re.compile(r"^([a-z][a-z0-9]*)(?:\+([a-z0-9_]+))?://")
# A source names an id, never a text; an id this long is cut (a BLOB id in SQLite can be any size).
_SOURCE_ID_CHARS = 80


def is_database_url(text: str) -> bool:
    """Whether an input names a database rather than a file: a SQLite or PostgreSQL SQLAlchemy URL.

    text (str): An input as given (a path or a URL).
    RETURNS (bool): True for `sqlite://...` and `postgresql[+driver]://...`.
    """
    match = _SCHEME.match(text) if isinstance(text, str) else None
    return match is not None and match.group(1) in DRIVERS


def is_url(text: str) -> bool:
    """RETURNS (bool): Whether a path as given is rather a URL (`scheme://...`) of any kind."""
    return isinstance(text, str) and _SCHEME.match(text) is not None


def shown_name(text: str) -> str:
    """RETURNS (str): A path or URL as it may be printed and stored: a database URL without its
    password (`redact_url`), a path as given."""
    return redact_url(text) if is_database_url(text) else text


def redact_url(url: Union[str, "URL"]) -> str:
    """The form of a database URL that may appear in a message: every password replaced by ***.

    url (Union[str, URL]): A SQLAlchemy URL.
    RETURNS (str): The URL without its password (in the user info or in the query string).
    """
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
    except Exception:  # not parsable (or no SQLAlchemy): nothing of it is safe to show
        match = _SCHEME.match(url) if isinstance(url, str) else None
        return f"{match.group(0) if match else ''}***"
    # libpq also takes password= and sslpassword= in the query string.
    secret = {key: "***" for key in parsed.query if "password" in key.lower()}
    if secret:
        parsed = parsed.update_query_dict(secret)
    text = parsed.render_as_string(hide_password=True)
    return text.replace("=%2A%2A%2A", "=***")


def _sqlalchemy():
    try:
        import sqlalchemy
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise InputError("Reading a database needs SQLAlchemy: pip install 'spacy-clinlong[db]'.") from err
    return sqlalchemy


def engine_url(url: Union[str, "URL"]) -> "URL":
    """The SQLAlchemy URL to connect with: `postgresql://` goes through psycopg 3, never psycopg2.

    url (Union[str, URL]): A SQLite or PostgreSQL URL.
    RETURNS (URL): The URL with its driver.
    RAISES (InputError): For another backend or driver (the message shows the URL redacted).
    """
    sa = _sqlalchemy()
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise InputError(f"Input {redact_url(url)!r} is not a database URL.") from None
    backend = parsed.get_backend_name()
    # The driver the URL names (get_driver_name() would give the dialect's default).
    driver = parsed.drivername.partition("+")[2] or None
    if backend not in DRIVERS or driver not in DRIVERS[backend]:
        raise InputError(
            f"Database {redact_url(parsed)!r}: {parsed.drivername} is not supported "
            "(use sqlite:///FILE, postgresql:// or postgresql+psycopg://)."
        )
    if backend == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def database_error(err: BaseException) -> str:
    """Name a database error without its message, which can quote a password or a note's text.

    err (BaseException): The error (SQLAlchemy's, or the driver's).
    RETURNS (str): The driver's error class, with PostgreSQL's SQLSTATE code when there is one.
    """
    orig = getattr(err, "orig", None) or err
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None)
    return f"{type(orig).__name__}, {sqlstate}" if sqlstate else type(orig).__name__


def _lenient_text(dbapi_connection, _record) -> None:
    # sqlite3 raises on a TEXT value that is not UTF-8 and the whole read would stop; read it
    # with its bad bytes escaped instead, so that note alone is reported as undecodable.
    dbapi_connection.text_factory = lambda raw: raw.decode("utf-8", "surrogateescape")


def _match(name: str, names: List[str]) -> Optional[str]:
    """RETURNS (Optional[str]): `name` as the database spells it: exact, else the one case-insensitive match."""
    if name in names:
        return name
    folded = [other for other in names if other.lower() == name.lower()]
    return folded[0] if len(folded) == 1 else None


class DatabaseInput:
    """A table (or view) of notes in a SQLite or PostgreSQL database, as numbered records.

    Rows are read in id order by keyset pagination (`id > last id ORDER BY id LIMIT
    page_size`), one page per query and the connection released between pages, so
    memory depends on `page_size` and the notes' length, not on their number, and a
    shard is an id range that can be read again from its locator alone:
    {"index", "after" (the last id read), "same" (how many rows with that id were
    read)}. Index the id column (OMOP's note_id is the primary key): each page is a
    range scan on it.

    Rows whose id is NULL cannot be reached by id order: they are read first, each
    one a record with no id (annotate reports it as `missing_id`, pretraining can
    still use its text), ordered by text, with the locator {"index", "after": None,
    "nulls" (how many were read)}.

    Duplicate ids arrive next to each other (`ordered_ids` is True), so a caller can
    find them by comparing an id with the one before, in flat memory. Rows that share
    an id are ordered by text, unless the id column is a primary key or unique; their
    order then does not matter.

    A value that is not a usable id or text becomes a record with a reason, as in the
    file readers: bytes text (BLOB, bytea) is read as UTF-8 if it is, else is
    `undecodable`; a SQLite TEXT value that is not UTF-8 is `undecodable`; a text that is
    neither (a number ...) is `missing_text`, and an id that is not an integer or a
    string (a REAL or BLOB that SQLite's typing let in) `invalid_id`. A record's source
    names the table and id (`note:note_id=123`), never the text.

    url (str): A SQLAlchemy URL: `sqlite:///notes.db`, `postgresql://user:pw@host/db`
        (read through psycopg 3). Messages show it with its password replaced by ***.
    table (str): The table or view, `schema.table` for one outside the default schema
        (OMOP often lives in `cdm`).
    id_field (str): The id column: an integer or a string type.
    text_field (str): The text column.
    where (Optional[str]): An SQL condition rows must meet (e.g. "note_type_concept_id =
        44814637"), as written in the database's dialect.
    page_size (int): Rows fetched per query.
    RAISES (InputError): At construction, when the database cannot be reached, or the
        table, a column or the condition is wrong (one line, the URL redacted).
    """

    kind = "database"
    #: Records come in id order: duplicates are adjacent (see the class docstring).
    ordered_ids = True

    def __init__(
        self,
        url: str,
        *,
        table: str = "note",
        id_field: str = "note_id",
        text_field: str = "note_text",
        where: Optional[str] = None,
        page_size: int = 1000,
    ) -> None:
        if page_size < 1:
            raise ValueError(f"page_size must be >= 1, got {page_size}")
        sa = _sqlalchemy()
        self.url = url
        self.table = table
        self.id_field = id_field
        self.text_field = text_field
        self.where = where or None
        self.page_size = page_size
        self._redacted = redact_url(url)
        parsed = engine_url(url)
        self._sqlite = parsed.get_backend_name() == "sqlite"
        if self._sqlite and parsed.database not in (None, "", ":memory:") and not parsed.query.get("uri"):
            # sqlite3 would create an empty file and report a missing table.
            if not Path(parsed.database).is_file():
                raise InputError(f"Database {self._redacted!r}: no SQLite file {parsed.database!r}.")
        connect_args = {}
        if not self._sqlite and "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = 10
        try:
            self._engine = sa.create_engine(parsed, connect_args=connect_args)
        except ImportError:
            raise InputError(
                f"Database {self._redacted!r}: its driver is not installed: pip install 'spacy-clinlong[db]'."
            ) from None
        if self._sqlite:
            sa.event.listen(self._engine, "connect", _lenient_text)
        self._check()

    def __repr__(self) -> str:
        return f"DatabaseInput({self._redacted!r}, table={self.table!r})"

    @property
    def fields(self) -> List[str]:
        """RETURNS (List[str]): The columns read: the id's and the text's."""
        return [self.id_field, self.text_field]

    def close(self) -> None:
        """Close the pooled connections (a later read opens new ones)."""
        self._engine.dispose()

    def _fail(self, what: str, err: BaseException) -> InputError:
        """RETURNS (InputError): One line with the redacted URL and the error's name, never its message."""
        return InputError(f"{what} {self.table!r} in {self._redacted!r} failed ({database_error(err)}).")

    def _check(self) -> None:
        """Find the table and its columns as the database spells them; check the condition compiles."""
        sa = _sqlalchemy()
        try:
            conn = self._engine.connect()
        except sa.exc.SQLAlchemyError as err:
            raise InputError(f"Cannot connect to {self._redacted!r} ({database_error(err)}).") from None
        with conn:
            try:
                self._reflect(sa.inspect(conn))
                if self.where is not None:
                    conn.execute(self._select().limit(0)).all()
            except sa.exc.SQLAlchemyError as err:
                what = "Checking" if self.where is None else "Checking the condition on"
                raise self._fail(what, err) from None

    def _reflect(self, inspector) -> None:
        sa = _sqlalchemy()
        schema, _, name = self.table.rpartition(".")
        schema = schema or None
        where = f"in {self._redacted!r}"
        if schema is not None:
            schema = _match(schema, inspector.get_schema_names())
            if schema is None:
                raise InputError(f"Table {self.table!r}: no such schema {where}.")
        names = inspector.get_table_names(schema) + inspector.get_view_names(schema)
        try:
            names += inspector.get_materialized_view_names(schema)
        except NotImplementedError:  # SQLite has none
            pass
        found = _match(name, names)
        if found is None:
            raise InputError(f"Table {self.table!r}: no such table or view {where}.")
        columns = {column["name"]: column for column in inspector.get_columns(found, schema)}
        matched = {}
        for field in self.fields:
            matched[field] = _match(field, list(columns))
            if matched[field] is None:
                raise InputError(
                    f"Table {self.table!r} has no column {field!r} ({len(columns)} columns) {where}."
                )
        id_column = columns[matched[self.id_field]]
        if not isinstance(id_column["type"], (sa.Integer, sa.String, sa.types.NullType)):
            raise InputError(
                f"Column {self.table}.{self.id_field} is {id_column['type']!r}: note ids are integers or "
                f"strings ({where})."
            )
        self._nullable_id = bool(id_column.get("nullable", True))
        self._unique_id = self._is_unique(inspector, found, schema, matched[self.id_field])
        self._table = sa.table(
            found, sa.column(matched[self.id_field]), sa.column(matched[self.text_field]), schema=schema
        )
        self._id = self._table.c[matched[self.id_field]]
        self._text = self._table.c[matched[self.text_field]]
        self._text_sized = isinstance(
            columns[matched[self.text_field]]["type"], (sa.String, sa.LargeBinary, sa.types.NullType)
        )

    @staticmethod
    def _is_unique(inspector, table: str, schema: Optional[str], column: str) -> bool:
        """RETURNS (bool): Whether the id column alone is the primary key or unique (views: never)."""
        keys = [inspector.get_pk_constraint(table, schema).get("constrained_columns") or []]
        try:
            keys += [c["column_names"] for c in inspector.get_unique_constraints(table, schema)]
            for index in inspector.get_indexes(table, schema):
                # A partial unique index (`... WHERE ...`) leaves the other rows free to repeat an id.
                if index.get("unique") and not any(
                    k.endswith("_where") for k in index.get("dialect_options", {})
                ):
                    keys.append(index["column_names"])
        except NotImplementedError:  # pragma: no cover - both our backends implement them
            pass
        return [column] in keys

    # Reading ------------------------------------------------------------------

    def _select(self, *columns):
        sa = _sqlalchemy()
        query = sa.select(*(columns or (self._id, self._text))).select_from(self._table)
        if self.where is not None:
            # Escaped colons: text() would take `:name` (even inside quotes) for a bind parameter.
            query = query.where(sa.text("(" + self.where.replace(":", "\\:") + ")"))
        return query

    def _fetch(self, query) -> List[Tuple[Any, Any]]:
        """RETURNS (List[Tuple[Any, Any]]): One page, the connection back in the pool before the caller
        works on it (no transaction stays open while notes are annotated)."""
        sa = _sqlalchemy()
        try:
            with self._engine.connect() as conn:
                return [tuple(row) for row in conn.execute(query)]
        except sa.exc.SQLAlchemyError as err:
            raise self._fail("Reading", err) from None

    def _pages(self, condition, order, offset: int) -> Iterator[List[Tuple[Any, Any]]]:
        """Pages by offset: only for the rows id order cannot tell apart (NULL ids, one id's duplicates)."""
        while True:
            rows = self._fetch(
                self._select().where(condition).order_by(*order).limit(self.page_size).offset(offset)
            )
            yield rows
            if len(rows) < self.page_size:
                return
            offset += len(rows)

    def _record(self, index: int, note_id: Any, text: Any, source: str) -> RawRecord:
        if isinstance(text, bytes):  # BLOB / bytea, as Parquet's binary columns: UTF-8 or undecodable
            try:
                return RawRecord(index, note_id, text.decode("utf-8"), source, length=len(text))
            except UnicodeDecodeError:
                return RawRecord(index, note_id, None, source, reason="undecodable", length=len(text))
        return RawRecord(index, note_id, text, source)

    def _source(self, note_id: Any) -> str:
        shown = str(note_id) if isinstance(note_id, int) and not isinstance(note_id, bool) else repr(note_id)
        if len(shown) > _SOURCE_ID_CHARS:
            shown = shown[: _SOURCE_ID_CHARS - 3] + "..."
        return f"{self.table}:{self.id_field}={shown}"

    def records(self, locator: Optional[Dict[str, Any]] = None) -> Iterator[Tuple[RawRecord, Dict[str, Any]]]:
        """Read records from the first row on, or from a shard's locator on.

        locator (Optional[Dict[str, Any]]): Where to start (as yielded with an earlier
            record): {"index", and "after" + "same" (id order), or "nulls" (NULL ids)}.
        YIELDS (Tuple[RawRecord, Dict[str, Any]]): Each record with the locator of the
            record that follows it.
        RAISES (InputError): When a query fails (one line, the URL redacted).
        """
        locator = dict(locator or {"index": 0})
        index = locator.get("index", 0)
        after = locator.get("after")
        if after is None and self._nullable_id:
            nulls = locator.get("nulls", 0)
            for rows in self._pages(self._id.is_(None), [self._text], nulls):
                for _, text in rows:
                    nulls += 1
                    record = self._record(index, None, text, f"{self.table}:{self.id_field}=NULL #{nulls}")
                    index += 1
                    yield record, {"index": index, "after": None, "nulls": nulls}
        after = None if after is None else _id_from_locator(after)
        same = locator.get("same", 0)
        order = [self._id] if self._unique_id else [self._id, self._text]
        while True:
            if after is not None and not self._unique_id:
                # A page (or a shard) can end inside a run of duplicate ids: the run's rest comes first.
                for rows in self._pages(self._id == self._bind(after), [self._text], same):
                    for note_id, text in rows:
                        same += 1
                        record = self._record(index, note_id, text, self._source(note_id))
                        index += 1
                        yield record, {"index": index, "after": _id_to_locator(after), "same": same}
            condition = self._id.is_not(None) if after is None else self._id > self._bind(after)
            rows = self._fetch(self._select().where(condition).order_by(*order).limit(self.page_size))
            for note_id, text in rows:
                if after is not None and note_id == after:
                    same += 1
                else:
                    after, same = note_id, 1
                record = self._record(index, note_id, text, self._source(note_id))
                index += 1
                yield record, {"index": index, "after": _id_to_locator(after), "same": same}
            if len(rows) < self.page_size:
                return

    def _bind(self, note_id: Any):
        """The id as an SQL value, compared as the database stores it."""
        sa = _sqlalchemy()
        if isinstance(note_id, str) and self._sqlite and has_surrogates(note_id):
            # A TEXT value that was not UTF-8 (read with its bytes escaped): those bytes, as TEXT again.
            return sa.cast(sa.literal(note_id.encode("utf-8", "surrogateescape"), sa.LargeBinary), sa.Text)
        if isinstance(note_id, bytes):
            return sa.literal(note_id, sa.LargeBinary)
        return sa.literal(note_id)

    def fingerprint(self) -> Dict[str, Any]:
        """A summary of the rows read, to notice a changed table between runs.

        It holds the number of rows and of NULL ids, the smallest and largest id and the
        total size of the texts (characters in SQLite, bytes in PostgreSQL), under
        `where`. It misses an edit that keeps all of these: a text changed to one of the
        same size, or two texts whose sizes change by opposite amounts. Annotate's
        per-shard digest of every record's content catches those when the shard is read.

        RETURNS (Dict[str, Any]): {"rows", "null_ids", "min_id", "max_id", "text_size"} (JSON-safe).
        """
        sa = _sqlalchemy()
        size = sa.func.length if self._sqlite else sa.func.octet_length
        text_size = sa.func.sum(size(self._text)) if self._text_sized else sa.func.count(self._text)
        query = self._select(
            sa.func.count(), sa.func.count(self._id), sa.func.min(self._id), sa.func.max(self._id), text_size
        )
        rows, ids, low, high, total = self._fetch(query)[0]
        return {
            "rows": int(rows),
            "null_ids": int(rows) - int(ids),
            "min_id": _id_to_locator(low),
            "max_id": _id_to_locator(high),
            "text_size": int(total or 0),
        }


def _id_to_locator(note_id: Any) -> Any:
    """RETURNS (Any): An id as a locator (a plan is JSON) holds it: bytes as {"bytes": hex}, a SQLite
    text that was not UTF-8 as {"text_bytes": hex}, any other id as is."""
    if isinstance(note_id, bytes):
        return {"bytes": note_id.hex()}
    if isinstance(note_id, str) and has_surrogates(note_id):
        return {"text_bytes": note_id.encode("utf-8", "surrogateescape").hex()}
    return note_id


def _id_from_locator(value: Any) -> Any:
    """RETURNS (Any): The id as read from the database, from its locator form."""
    if isinstance(value, dict):
        if "bytes" in value:
            return bytes.fromhex(value["bytes"])
        return bytes.fromhex(value["text_bytes"]).decode("utf-8", "surrogateescape")
    return value
