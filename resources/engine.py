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
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from foureyes.resources.errors import ConfigurationError, StoreUnavailableError
from foureyes.resources.redaction import redact_url, scrub

_WRITE_OPTION = "foureyes_write"
_COPY_FROM = 200  # below this many rows, COPY's own round trips cost more than one INSERT batch
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


def insert_rows(conn: sa.Connection, table: sa.Table, rows: list[dict[str, object]]) -> None:
    """Insert many rows fast, inside the caller's transaction; JSON columns arrive as JSON text.

    SQLite gets the driver's ``executemany``, PostgreSQL psycopg's ``COPY`` (which escapes
    every value), anything else SQLAlchemy's executemany. Timestamps must be timezone-aware.
    """
    if not rows:
        return
    names = list(rows[0])
    preparer = conn.dialect.identifier_preparer
    target = f"{preparer.format_table(table)} ({', '.join(preparer.quote(n) for n in names)})"
    columns = [[row[n] for row in rows] for n in names]
    if conn.dialect.name == "sqlite":
        for i, name in enumerate(names):
            if isinstance(table.c[name].type, sa.DateTime):
                columns[i] = list(map(sqlite_timestamp, columns[i]))
        sql = f"INSERT INTO {target} VALUES ({', '.join('?' for _ in names)})"
        conn.connection.driver_connection.cursor().executemany(sql, zip(*columns, strict=True))
    elif conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg" and len(rows) >= _COPY_FROM:
        with (
            conn.connection.driver_connection.cursor() as cursor,
            cursor.copy(f"COPY {target} FROM STDIN") as copy,
        ):
            for row in zip(*columns, strict=True):
                copy.write_row(row)
    elif conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":  # a few rows: one pipelined batch
        sql = f"INSERT INTO {target} VALUES ({', '.join('%s' for _ in names)})"
        with conn.connection.driver_connection.cursor() as cursor:
            cursor.executemany(sql, list(zip(*columns, strict=True)))
    else:
        conn.execute(table.insert(), [{**r, **_parsed_json(table, r)} for r in rows])


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
