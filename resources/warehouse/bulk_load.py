"""The fast paths that move a partition's rows in and out of each database.

SQLite takes multi-row INSERTs on the raw sqlite3 cursor; PostgreSQL takes binary ``COPY`` in and
CSV ``COPY`` out through psycopg 3. Any other SQLAlchemy dialect gets portable Core statements.
Rows are encoded a chunk at a time, which bounds memory. Every function runs on a connection
inside the caller's transaction: none of them commits.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterator
from itertools import repeat

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from foureyes.resources.engine import sqlite_insert_many
from foureyes.resources.warehouse.columns import (
    BOOLEAN,
    DATE,
    FLOAT,
    INTEGER,
    TEXT,
    TIMESTAMP,
    TIMESTAMPTZ,
    StoredColumn,
    encode_for_sql,
    restore,
)

PARTITION_COLUMN = "partition_key"
ROW_COLUMN = "_row"
_TEXT_PREFIX = "v"
_NAT = np.iinfo(np.int64).min  # numpy's NaT, as an integer
# Microseconds since the epoch, exactly: EXTRACT gives an exact numeric since PostgreSQL 14, and a
# float before, exact only for the whole seconds and the microseconds taken apart.
_NUMERIC_EXTRACT_SINCE = (14,)
_EPOCH_MICROSECONDS = "(EXTRACT(EPOCH FROM {0}) * 1000000)::int8"
_EPOCH_MICROSECONDS_OLD = (
    "(EXTRACT(EPOCH FROM date_trunc('second', {0}))::int8 * 1000000 + EXTRACT(MICROSECONDS FROM {0})::int8 % 1000000)"
)
_CHUNK_ROWS = 65_536  # rows encoded to Python values at a time
_PG_TYPES = {
    INTEGER: "int8",
    FLOAT: "float8",
    BOOLEAN: "bool",
    TEXT: "text",
    TIMESTAMP: "timestamp",
    TIMESTAMPTZ: "timestamptz",
    DATE: "date",
}


def insert_partition(
    conn: sa.Connection,
    table: sa.Table,
    partition: str,
    frame: pd.DataFrame,
    columns: list[StoredColumn],
) -> None:
    """Insert ``frame`` as the rows of ``partition`` (the caller deleted the old ones)."""
    if frame.empty:
        return
    dialect = conn.dialect.name
    if dialect == "sqlite":
        _insert_sqlite(conn, table, partition, frame, columns)
    elif dialect == "postgresql" and conn.dialect.driver == "psycopg":
        _copy_in_postgres(conn, table, partition, frame, columns)
    else:
        _insert_portable(conn, table, partition, frame, columns)


def select_partition(conn: sa.Connection, table: sa.Table, partition: str, columns: list[StoredColumn]) -> pd.DataFrame:
    """Read ``partition``'s rows in written order and restore the written dtypes."""
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        return _copy_out_postgres(conn, table, partition, columns)
    names = [c.name for c in columns]
    if conn.dialect.name == "sqlite":
        cursor = conn.connection.driver_connection.cursor()
        rows = cursor.execute(_sqlite_select(table, tuple(names)), (partition,)).fetchall()
        cursor.close()
    else:
        rows = [tuple(row) for row in conn.execute(_select(table, tuple(names)), {"partition": partition})]
    # One object matrix, sliced into columns: a fraction of the cost of transposing with zip.
    matrix = np.array(rows, dtype=object).reshape(len(rows), len(names))
    return restore({name: matrix[:, i] for i, name in enumerate(names)}, columns)


@functools.lru_cache(maxsize=512)
def _select(table: sa.Table, names: tuple[str, ...]) -> sa.Select:
    return (
        sa.select(*(table.c[n] for n in names))
        .where(table.c[PARTITION_COLUMN] == sa.bindparam("partition"))
        .order_by(table.c[ROW_COLUMN])
    )


@functools.lru_cache(maxsize=512)
def _sqlite_select(table: sa.Table, names: tuple[str, ...]) -> str:
    """The compiled SELECT of a partition, for the driver: compiling costs more than a small read."""
    return str(_select(table, names).compile(dialect=sqlite.dialect()))


def _row_chunks(
    partition: str, frame: pd.DataFrame, columns: list[StoredColumn], *, sqlite: bool
) -> Iterator[tuple[int, Iterator[tuple]]]:
    """``(size, rows)`` per chunk of the frame; a row is ``(partition, row number, *values)``."""
    for start in range(0, len(frame), _CHUNK_ROWS):
        chunk = frame.iloc[start : start + _CHUNK_ROWS]
        values = encode_for_sql(chunk, columns, sqlite=sqlite)
        yield len(chunk), zip(repeat(partition), range(start, start + len(chunk)), *values, strict=False)


def _insert_sqlite(conn, table, partition, frame, columns) -> None:
    names = [PARTITION_COLUMN, ROW_COLUMN, *(c.name for c in columns)]
    insert = f"INSERT INTO {_qualified(conn, table)} ({', '.join(_quote(conn, n) for n in names)}) VALUES "
    cursor = conn.connection.driver_connection.cursor()
    try:
        for size, rows in _row_chunks(partition, frame, columns, sqlite=True):
            sqlite_insert_many(cursor, insert, len(names), rows, size)
    finally:
        cursor.close()


def _insert_portable(conn, table, partition, frame, columns) -> None:
    names = [c.name for c in columns]
    encoded = encode_for_sql(frame, columns, sqlite=False)
    conn.execute(
        table.insert(),
        [
            {PARTITION_COLUMN: partition, ROW_COLUMN: i, **dict(zip(names, row, strict=True))}
            for i, row in enumerate(zip(*encoded, strict=True))
        ],
    )


def _copy_in_postgres(conn, table, partition, frame, columns) -> None:
    """Binary COPY: values travel typed, so floats, times and odd strings arrive exactly.

    Encoding chunk by chunk, inside the COPY, lets the server store one chunk while Python
    encodes the next.
    """
    from psycopg import sql

    names = [PARTITION_COLUMN, ROW_COLUMN, *(c.name for c in columns)]
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        _pg_identifier(table), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    with conn.connection.driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
        copy.set_types(["text", "int8", *(_PG_TYPES[c.kind] for c in columns)])
        for _, rows in _row_chunks(partition, frame, columns, sqlite=False):
            for row in rows:
                copy.write_row(row)


def _copy_out_postgres(conn, table, partition, columns) -> pd.DataFrame:
    """CSV COPY out, parsed by pandas' C reader: the fastest way back into a frame.

    CSV cannot tell an empty string from NULL, so text columns are sent with a one-character
    prefix: an empty field is then always NULL. They are parsed as categories, so the prefix is
    stripped once per distinct value, not once per row. Booleans travel as 0/1, and times as
    microseconds since the epoch, with NULL as the integer numpy reads as NaT: parsing integers
    is far cheaper than parsing text.
    """
    from psycopg import sql

    names = [c.name for c in columns]
    if not names:
        return pd.DataFrame()
    statement = sql.SQL("COPY (SELECT {} FROM {} WHERE {} = {} ORDER BY {}) TO STDOUT (FORMAT csv)").format(
        sql.SQL(", ").join(_csv_expression(c, conn.dialect.server_version_info) for c in columns),
        _pg_identifier(table),
        sql.Identifier(PARTITION_COLUMN),
        sql.Literal(partition),
        sql.Identifier(ROW_COLUMN),
    )
    buffer = io.BytesIO()
    with conn.connection.driver_connection.cursor() as cursor:
        cursor.execute("SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO'; SET LOCAL extra_float_digits = 3")
        with cursor.copy(statement) as copy:
            for chunk in copy:
                buffer.write(chunk)
    buffer.seek(0)
    parsed = pd.read_csv(
        buffer,
        header=None,
        names=names,
        dtype={c.name: _csv_dtype(c) for c in columns},
        na_values=[""],
        keep_default_na=False,
        engine="c",
        float_precision="round_trip",
    )
    raw = {}
    for column in columns:
        values = parsed[column.name]
        if column.kind == TEXT:
            values = values.cat.rename_categories(lambda text: text[1:]).astype(object)
        elif column.kind in (TIMESTAMP, TIMESTAMPTZ):
            values = pd.Series(values.to_numpy().view("datetime64[us]"))
        raw[column.name] = values
    return restore(raw, columns)


def _csv_expression(column: StoredColumn, server_version: tuple[int, ...]):
    from psycopg import sql

    name = sql.Identifier(column.name)
    if column.kind == TEXT:
        return sql.SQL("({} || {})").format(sql.Literal(_TEXT_PREFIX), name)
    if column.kind == BOOLEAN:
        return sql.SQL("({}::int)").format(name)
    if column.kind in (TIMESTAMP, TIMESTAMPTZ):
        micros = _EPOCH_MICROSECONDS if server_version >= _NUMERIC_EXTRACT_SINCE else _EPOCH_MICROSECONDS_OLD
        return sql.SQL("COALESCE({}, {})").format(sql.SQL(micros).format(name), sql.Literal(_NAT))
    return name


def _csv_dtype(column: StoredColumn) -> object:
    """Let the C parser produce numbers and categories directly; dates are restored from text."""
    if column.kind in (FLOAT, BOOLEAN):
        return "float64"
    if column.kind in (TIMESTAMP, TIMESTAMPTZ):
        return "int64"
    if column.kind == INTEGER:
        return column.dtype if column.dtype[0].islower() else "Int64"
    if column.kind == TEXT:
        return "category"
    return object


def _pg_identifier(table: sa.Table):
    from psycopg import sql

    return sql.Identifier(table.schema, table.name) if table.schema else sql.Identifier(table.name)


def _quote(conn: sa.Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def _qualified(conn: sa.Connection, table: sa.Table) -> str:
    return conn.dialect.identifier_preparer.format_table(table)
