"""The fast paths that move a partition's rows in and out of each database.

SQLite takes one ``executemany`` on the raw sqlite3 cursor; PostgreSQL takes ``COPY`` in CSV
form through psycopg 3, both ways. Any other SQLAlchemy dialect gets portable Core statements.
Every function runs on a connection inside the caller's transaction: none of them commits.
"""

from __future__ import annotations

import io
from itertools import repeat

import pandas as pd
import sqlalchemy as sa

from resources.columns import (
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


def select_partition(
    conn: sa.Connection, table: sa.Table, partition: str, columns: list[StoredColumn]
) -> pd.DataFrame:
    """Read ``partition``'s rows in written order and restore the written dtypes."""
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        return _copy_out_postgres(conn, table, partition, columns)
    names = [c.name for c in columns]
    query = (
        sa.select(*(table.c[n] for n in names))
        .where(table.c[PARTITION_COLUMN] == partition)
        .order_by(table.c[ROW_COLUMN])
    )
    if conn.dialect.name == "sqlite":
        compiled = query.compile(dialect=conn.dialect)
        cursor = conn.connection.driver_connection.cursor()
        rows = cursor.execute(str(compiled), (partition,)).fetchall()
        cursor.close()
    else:
        rows = conn.execute(query).all()
    values = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    return restore(dict(zip(names, values, strict=True)), columns)


def _insert_sqlite(conn, table, partition, frame, columns) -> None:
    names = [PARTITION_COLUMN, ROW_COLUMN, *(c.name for c in columns)]
    quoted = ", ".join(_quote(conn, n) for n in names)
    marks = ", ".join("?" for _ in names)
    sql = f"INSERT INTO {_qualified(conn, table)} ({quoted}) VALUES ({marks})"
    rows = zip(
        repeat(partition),
        range(len(frame)),
        *encode_for_sql(frame, columns, temporal_as_text=True),
        strict=False,
    )
    cursor = conn.connection.driver_connection.cursor()
    cursor.executemany(sql, rows)
    cursor.close()


def _insert_portable(conn, table, partition, frame, columns) -> None:
    names = [c.name for c in columns]
    encoded = encode_for_sql(frame, columns, temporal_as_text=False)
    conn.execute(
        table.insert(),
        [
            {PARTITION_COLUMN: partition, ROW_COLUMN: i, **dict(zip(names, row, strict=True))}
            for i, row in enumerate(zip(*encoded, strict=True))
        ],
    )


def _copy_in_postgres(conn, table, partition, frame, columns) -> None:
    """Binary COPY: values travel typed, so floats, times and odd strings arrive exactly."""
    from psycopg import sql

    names = [PARTITION_COLUMN, ROW_COLUMN, *(c.name for c in columns)]
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        _pg_identifier(table), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    values = encode_for_sql(frame, columns, temporal_as_text=False)
    with conn.connection.driver_connection.cursor() as cursor, cursor.copy(statement) as copy:
        copy.set_types(["text", "int8", *(_PG_TYPES[c.kind] for c in columns)])
        for row in zip(repeat(partition), range(len(frame)), *values, strict=False):
            copy.write_row(row)


def _copy_out_postgres(conn, table, partition, columns) -> pd.DataFrame:
    """CSV COPY out, parsed by pandas' C reader: the fastest way back into a frame.

    CSV cannot tell an empty string from NULL, so text columns are sent with a one-character
    prefix: an empty field is then always NULL, and the prefix is stripped after parsing.
    """
    from psycopg import sql

    names = [c.name for c in columns]
    if not names:
        return pd.DataFrame()
    selected = [
        sql.SQL("({} || {})").format(sql.Literal(_TEXT_PREFIX), sql.Identifier(c.name))
        if c.kind == TEXT
        else sql.Identifier(c.name)
        for c in columns
    ]
    statement = sql.SQL("COPY (SELECT {} FROM {} WHERE {} = {} ORDER BY {}) TO STDOUT (FORMAT csv)").format(
        sql.SQL(", ").join(selected),
        _pg_identifier(table),
        sql.Identifier(PARTITION_COLUMN),
        sql.Literal(partition),
        sql.Identifier(ROW_COLUMN),
    )
    buffer = io.BytesIO()
    with conn.connection.driver_connection.cursor() as cursor:
        cursor.execute(
            "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO'; SET LOCAL extra_float_digits = 3"
        )
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
            values = values.str.slice(1)
        raw[column.name] = values
    return restore(raw, columns)


def _csv_dtype(column: StoredColumn) -> object:
    """Let the C parser produce numbers directly; everything else is restored from text."""
    if column.kind == FLOAT:
        return "float64"
    if column.kind == INTEGER:
        return column.dtype if column.dtype[0].islower() else "Int64"
    return object


def _pg_identifier(table: sa.Table):
    from psycopg import sql

    return sql.Identifier(table.schema, table.name) if table.schema else sql.Identifier(table.name)


def _quote(conn: sa.Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def _qualified(conn: sa.Connection, table: sa.Table) -> str:
    return conn.dialect.identifier_preparer.format_table(table)
