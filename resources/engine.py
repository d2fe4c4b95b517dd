"""SQLAlchemy engines shared by the warehouse and the control plane.

One engine per URL per process, so that every step in a run reuses its connection pool.
SQLite gets what concurrent Dagster steps need: WAL journaling (readers never wait for the
writer), a busy timeout, and write transactions that take the write lock at BEGIN
(``BEGIN IMMEDIATE``), so that two writers queue instead of deadlocking half-way.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from itertools import chain, islice, repeat
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

from foureyes.resources.errors import ConfigurationError, StoreUnavailableError
from foureyes.resources.redaction import redact_url, scrub

_WRITE_OPTION = "foureyes_write"
_COPY_FROM = 200  # below this many rows, COPY's own round trips cost more than one INSERT batch
_SQLITE_ROWS_PER_INSERT = 64
_SQLITE_MAX_VARIABLES = 999  # the smallest limit any SQLite build has
_POSTGRES_MAX_PARAMETERS = 65_535  # the wire protocol's limit on one statement's parameters
_engines: dict[str, sa.Engine] = {}
_lock = threading.Lock()


def normalize_url(url: str) -> str:
    """Prefer psycopg 3 (shipped with foureyes) for bare PostgreSQL URLs."""
    for bare in ("postgres://", "postgresql://"):
        if url.startswith(bare):
            return "postgresql+psycopg://" + url[len(bare) :]
    return url


def engine_for(url: str) -> sa.Engine:
    """Return this process's engine for ``url``, creating it (and an SQLite file's folder)."""
    url = normalize_url(url)
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _create(url)
            _engines[url] = engine
        return engine


def dispose_all() -> None:
    """Close every pooled connection (tests and forked processes call this)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextmanager
def write_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """One transaction that takes the write lock up front on SQLite; commit or roll back."""
    with engine.execution_options(**{_WRITE_OPTION: True}).begin() as conn:
        yield conn


def keyed_insert(conn: sa.Connection, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """The dialect's INSERT, which can say what happens ON CONFLICT: one statement per keyed write.

    Two runs racing on a new key (a backfill overlapping a sensor's runs) both find no row;
    "select, then insert" (or "update, then insert") fails the second on the primary key,
    where one INSERT ... ON CONFLICT waits for the first and then takes or keeps its row.
    """
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"foureyes' stores are SQLite or PostgreSQL, not {conn.dialect.name}")


def insert_ignoring_duplicates(conn: sa.Connection, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that leaves a row whose primary key is taken as it is (see ``keyed_insert``)."""
    return keyed_insert(conn, table).on_conflict_do_nothing(index_elements=[c.name for c in table.primary_key])


def statement_batches(conn: sa.Connection, rows: Sequence[dict[str, object]]) -> Iterator[Sequence[dict[str, object]]]:
    """``rows`` in slices that each fit one multi-row ``VALUES`` statement of the dialect.

    A keyed write of many rows is one statement per slice; the slice is sized by the parameter
    limit of the smallest SQLite build or of PostgreSQL's protocol, so no store refuses it.
    """
    if not rows:
        return
    limit = _SQLITE_MAX_VARIABLES if conn.dialect.name == "sqlite" else _POSTGRES_MAX_PARAMETERS
    per_statement = max(1, limit // len(rows[0]))
    for start in range(0, len(rows), per_statement):
        yield rows[start : start + per_statement]


def insert_rows(conn: sa.Connection, table: sa.Table, rows: list[dict[str, object]]) -> None:
    """Insert many rows fast, inside the caller's transaction (see ``insert_columns``)."""
    if rows:
        insert_columns(conn, table, {name: [row[name] for row in rows] for name in rows[0]})


def insert_columns(
    conn: sa.Connection,
    table: sa.Table,
    columns: Mapping[str, Sequence[object]],
    same: Mapping[str, object] | None = None,
) -> None:
    """Insert rows given as columns, inside the caller's transaction; JSON columns arrive as JSON text.

    ``columns`` hold one value per row (all of one length), ``same`` one value shared by every row
    (a batch's id, its time): converted once, never held a million times. SQLite gets the
    driver's ``executemany`` of multi-row INSERTs, PostgreSQL psycopg's ``COPY`` (which escapes
    every value), anything else SQLAlchemy's executemany. None of them commits, so the rows are
    durable with the caller's commit, or never. Timestamps must be timezone-aware.
    """
    same = dict(same or {})
    count = len(next(iter(columns.values()))) if columns else 0
    if not count:
        return
    names = [*columns, *same]
    preparer = conn.dialect.identifier_preparer
    target = f"{preparer.format_table(table)} ({', '.join(preparer.quote(n) for n in names)})"
    if conn.dialect.name == "sqlite":
        values = [_sqlite_values(table.c[n], columns[n]) for n in columns]
        shared = [repeat(_sqlite_values(table.c[n], [v])[0], count) for n, v in same.items()]
        with _driver_errors(conn, target), closing(conn.connection.driver_connection.cursor()) as cursor:
            rows = zip(*values, *shared, strict=True)
            sqlite_insert_many(cursor, f"INSERT INTO {target} VALUES ", len(names), rows, count)
        return
    rows = zip(*columns.values(), *(repeat(v, count) for v in same.values()), strict=True)
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        with _driver_errors(conn, target), conn.connection.driver_connection.cursor() as cursor:
            if count >= _COPY_FROM:
                with cursor.copy(f"COPY {target} FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:  # a few rows: one pipelined batch
                cursor.executemany(f"INSERT INTO {target} VALUES ({', '.join('%s' for _ in names)})", list(rows))
    else:
        dicts = [dict(zip(names, row, strict=True)) for row in rows]
        conn.execute(table.insert(), [{**r, **_parsed_json(table, r)} for r in dicts])


@contextmanager
def _driver_errors(conn: sa.Connection, target: str) -> Iterator[None]:
    """The driver's own errors as SQLAlchemy's (``IntegrityError``, ``OperationalError``...), as if
    SQLAlchemy had run the statement: callers catch one family of errors whichever path wrote."""
    dbapi_error = conn.dialect.loaded_dbapi.Error
    try:
        yield
    except dbapi_error as exc:
        raise sa.exc.DBAPIError.instance(f"INSERT INTO {target}", None, exc, dbapi_error, dialect=conn.dialect) from exc


def sqlite_insert_many(cursor: sqlite3.Cursor, insert: str, width: int, rows: Iterator[tuple], count: int) -> None:
    """Run ``insert`` (``INSERT INTO t (...) VALUES ``) for ``count`` rows of ``width`` values,
    up to 64 rows per statement: SQLite's cost per statement run outweighs its cost per value.

    With 64 rows per statement, 1M rows take about 40% less time than with one row per statement.
    """
    per_insert = max(1, min(_SQLITE_ROWS_PER_INSERT, _SQLITE_MAX_VARIABLES // width))
    one_row = f"({', '.join('?' for _ in range(width))})"
    values = chain.from_iterable(islice(rows, count - count % per_insert))
    batches = zip(*[values] * (per_insert * width), strict=False)  # per_insert rows each
    cursor.executemany(insert + ", ".join([one_row] * per_insert), batches)
    cursor.executemany(insert + one_row, rows)  # the last few rows


def _sqlite_values(column: sa.Column, values: Sequence[object]) -> Sequence[object]:
    return list(map(sqlite_timestamp, values)) if isinstance(column.type, sa.DateTime) else values


@functools.lru_cache(maxsize=1024)
def sqlite_timestamp(value: dt.datetime | None) -> str | None:
    """SQLAlchemy stores SQLite timestamps as naive UTC ISO text, always with microseconds (text
    compares as time only if every row has the same width); write them exactly the same way."""
    if value is None:
        return None
    return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _parsed_json(table: sa.Table, row: dict[str, object]) -> dict[str, object]:
    return {n: json.loads(v) for n, v in row.items() if isinstance(table.c[n].type, sa.JSON) and isinstance(v, str)}


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """Timestamps read back from SQLite are naive; everything foureyes stores is UTC."""
    if value is None or value.tzinfo:
        return value
    return value.replace(tzinfo=dt.UTC)


def single_statement_reads(engine: sa.Engine) -> sa.Engine:
    """For one-statement lookups on hot paths (the last-known-good resolver).

    On PostgreSQL a separate pool in autocommit mode, without the pre-ping: no BEGIN,
    ROLLBACK or ping round trips around a query that takes a tenth of a millisecond.
    Connections are recycled after a minute instead, so a restarted server costs at most
    one failed lookup.
    """
    if engine.dialect.name != "postgresql":
        return engine
    return _variant(engine, "reads")


def relaxed_writes(engine: sa.Engine) -> sa.Engine:
    """For lineage events on PostgreSQL: single-statement autocommit writes that do not wait for
    the WAL flush (``synchronous_commit = off``). A server crash may lose the last fraction of a
    second of them; nothing else is ever written this way."""
    if engine.dialect.name != "postgresql":
        return engine
    return _variant(engine, "relaxed", "SET synchronous_commit TO OFF")


def _variant(engine: sa.Engine, suffix: str, on_connect: str | None = None) -> sa.Engine:
    """A second pool on the same database: autocommit, no pre-ping, connections recycled each minute."""
    key = f"{engine.url.render_as_string(hide_password=False)}#{suffix}"
    with _lock:
        variant = _engines.get(key)
        if variant is None:
            variant = sa.create_engine(
                engine.url,
                isolation_level="AUTOCOMMIT",
                pool_pre_ping=False,
                pool_recycle=60,
                future=True,
                connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S},
            )
            if on_connect:

                @sa.event.listens_for(variant, "connect")
                def _prepare(dbapi_conn, _record) -> None:
                    with dbapi_conn.cursor() as cursor:
                        cursor.execute(on_connect)

            _engines[key] = variant
        return variant


def snapshot_reads(engine: sa.Engine) -> sa.Engine:
    """For reads of several statements that must see one state (a catalog row and its rows).

    SQLite's read transaction already reads one snapshot of the WAL; PostgreSQL's default
    READ COMMITTED gives each statement its own, so ask for REPEATABLE READ there.
    """
    if engine.dialect.name != "postgresql":
        return engine
    return engine.execution_options(isolation_level="REPEATABLE READ")


def is_sqlite(engine: sa.Engine) -> bool:
    return engine.dialect.name == "sqlite"


def is_postgres(engine: sa.Engine) -> bool:
    return engine.dialect.name == "postgresql"


SUPPORTED_DRIVERS = {"sqlite": ("pysqlite",), "postgresql": ("psycopg", "psycopg2")}
PG_CONNECT_TIMEOUT_S = 10


def check_store_url(url: str, setting: str = "store URL") -> sa.URL:
    """Parse a store URL and refuse what foureyes cannot use, before anything connects or is created.

    Raises:
        ConfigurationError: not a SQLAlchemy URL, an unsupported database or driver, or an SQLite
            file whose directory does not exist (it is never created behind the user's back).
    """
    shown = redact_url(url)
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise ConfigurationError(
            f"{setting} {shown!r} is not a SQLAlchemy URL (expected e.g. 'sqlite:////abs/path.db' or "
            "'postgresql+psycopg://user@host:5432/db')"
        ) from None
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend not in SUPPORTED_DRIVERS or driver not in SUPPORTED_DRIVERS[backend]:
        valid = ", ".join(f"{b}+{d}" for b, drivers in SUPPORTED_DRIVERS.items() for d in drivers)
        raise ConfigurationError(f"{setting} {shown!r} uses {backend}+{driver}; foureyes stores data in {valid}")
    if backend == "sqlite" and parsed.database and parsed.database != ":memory:":
        folder = Path(parsed.database).expanduser().resolve().parent
        if not folder.is_dir():
            raise ConfigurationError(f"{setting} {shown!r}: directory {folder} does not exist (create it first)")
    return parsed


@contextmanager
def reaching(engine: sa.Engine, what: str) -> Iterator[None]:
    """Turn "the database is not there" into one clear line naming the store (without credentials)."""
    try:
        yield
    except sa.exc.OperationalError as exc:
        reason = scrub(str(getattr(exc, "orig", exc) or exc)).strip().splitlines()
        raise StoreUnavailableError(
            f"cannot reach the {what} at {redact_url(engine.url.render_as_string(hide_password=False))}: "
            f"{reason[0] if reason else type(exc).__name__}"
        ) from None


def _create(url: str) -> sa.Engine:
    parsed = check_store_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(
            url, pool_pre_ping=True, future=True, connect_args={"connect_timeout": PG_CONNECT_TIMEOUT_S}
        )
    engine = sa.create_engine(url, connect_args={"timeout": 60}, future=True)
    _make_sqlite_transactional(engine)
    return engine


def _make_sqlite_transactional(engine: sa.Engine) -> None:
    """Let SQLAlchemy, not the sqlite3 module, decide where transactions begin."""

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
