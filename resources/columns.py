"""How a pandas column is stored in a SQL column, and restored with its exact dtype.

The warehouse records each partition's columns as ``StoredColumn(name, dtype, kind)``: ``dtype``
is the pandas dtype to restore, ``kind`` the portable SQL kind it is stored as. Storing the dtype
per partition is what lets a read return exactly the frame that was written, and lets a
partition with a drifted schema be read back as it was written (never silently conformed).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import sqlalchemy as sa

from resources.errors import UnsupportedDtypeError

INTEGER, FLOAT, BOOLEAN, TEXT, TIMESTAMP, TIMESTAMPTZ, DATE = (
    "integer",
    "float",
    "boolean",
    "text",
    "timestamp",
    "timestamptz",
    "date",
)

SQL_TYPES: dict[str, sa.types.TypeEngine] = {
    INTEGER: sa.BigInteger(),
    FLOAT: sa.Float(precision=53),
    BOOLEAN: sa.Boolean(),
    TEXT: sa.Text(),
    TIMESTAMP: sa.DateTime(timezone=False),
    TIMESTAMPTZ: sa.DateTime(timezone=True),
    DATE: sa.Date(),
}

SUPPORTED = (
    "bool, boolean, int8-64, uint8-32, Int8-64, float32/64, Float32/64, str objects, string, "
    "category of str, datetime64 (naive or tz-aware), datetime.date objects"
)


@dataclass(frozen=True)
class StoredColumn:
    name: str
    dtype: str
    kind: str

    def to_json(self) -> list[str]:
        return [self.name, self.dtype, self.kind]

    @classmethod
    def from_json(cls, item: list[str]) -> StoredColumn:
        return cls(*item)


def stored_columns(frame: pd.DataFrame) -> list[StoredColumn]:
    columns = [StoredColumn(str(name), str(col.dtype), _kind(str(name), col)) for name, col in frame.items()]
    for spec in columns:
        if spec.kind == TEXT:
            _refuse_nul(spec.name, frame[spec.name])
    return columns


def _refuse_nul(name: str, col: pd.Series) -> None:
    """PostgreSQL text cannot hold NUL; refuse it everywhere so SQLite and PostgreSQL agree."""
    values = col.astype(object) if isinstance(col.dtype, pd.CategoricalDtype) else col
    has_nul = values.dropna().astype(str).str.contains("\x00", regex=False)
    if has_nul.any():
        raise UnsupportedDtypeError(
            f"column '{name}' has text containing NUL characters (\\x00) in {int(has_nul.sum())} row(s); "
            "SQL text cannot store them: strip or encode them first"
        )


def kind_of_sql_type(sql_type: sa.types.TypeEngine) -> str:
    """The kind a reflected column can hold (to refuse writing text into a float column)."""
    if isinstance(sql_type, sa.Boolean):
        return BOOLEAN
    if isinstance(sql_type, sa.Integer):
        return INTEGER
    if isinstance(sql_type, sa.Float | sa.Numeric):
        return FLOAT
    if isinstance(sql_type, sa.DateTime):
        return TIMESTAMPTZ if getattr(sql_type, "timezone", False) else TIMESTAMP
    if isinstance(sql_type, sa.Date):
        return DATE
    return TEXT


def _kind(name: str, col: pd.Series) -> str:
    dtype = col.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        return TIMESTAMPTZ
    if pd.api.types.is_datetime64_dtype(dtype):
        return TIMESTAMP
    if pd.api.types.is_bool_dtype(dtype):
        return BOOLEAN
    if pd.api.types.is_integer_dtype(dtype):
        if str(dtype).lower() == "uint64":
            raise UnsupportedDtypeError(f"column '{name}' is uint64, which SQL BIGINT cannot hold; use int64")
        return INTEGER
    if pd.api.types.is_float_dtype(dtype):
        return FLOAT
    if isinstance(dtype, pd.StringDtype):
        return TEXT
    if isinstance(dtype, pd.CategoricalDtype):
        return _object_kind(name, pd.Series(dtype.categories, dtype=object), allow=(TEXT,))
    if pd.api.types.is_object_dtype(dtype):
        return _object_kind(name, col, allow=(TEXT, DATE))
    raise UnsupportedDtypeError(
        f"column '{name}' has dtype {dtype}, which the warehouse cannot store; supported: {SUPPORTED}"
    )


def _object_kind(name: str, col: pd.Series, allow: tuple[str, ...]) -> str:
    values = col.dropna()
    if values.empty:
        return TEXT
    types = set(map(type, values))
    if types <= {str}:
        return TEXT
    if DATE in allow and types <= {dt.date}:
        return DATE
    found = ", ".join(sorted(t.__name__ for t in types))
    raise UnsupportedDtypeError(
        f"column '{name}' holds Python objects of type {found}; supported: {SUPPORTED}"
    )


def encode_for_sql(
    frame: pd.DataFrame, columns: list[StoredColumn], *, temporal_as_text: bool
) -> list[list[object]]:
    """Column-wise Python values for a DB-API driver, with None for every missing value.

    SQLite has no temporal types, so times go as ISO text there; drivers that bind real
    temporal types (psycopg's binary COPY) get ``datetime``/``date`` objects, UTC when aware.
    """
    return [_encode_column(frame[spec.name], spec, temporal_as_text) for spec in columns]


def _encode_column(col: pd.Series, spec: StoredColumn, temporal_as_text: bool) -> list[object]:
    if spec.kind in (TIMESTAMP, TIMESTAMPTZ):
        if spec.kind == TIMESTAMPTZ:
            col = col.dt.tz_convert("UTC")
            if temporal_as_text:
                col = col.dt.tz_localize(None)
        values = (
            col.dt.strftime("%Y-%m-%d %H:%M:%S.%f")
            if temporal_as_text
            else pd.Series(col.array.to_pydatetime(), index=col.index, dtype=object)
        )
        return _with_none(values, col.isna())
    if spec.kind == DATE:
        return [None if pd.isna(v) else (v.isoformat() if temporal_as_text else v) for v in col]
    missing = col.isna()
    if spec.kind == FLOAT:
        col = col.astype(float)
    if not missing.any():
        return col.tolist() if col.dtype != "category" else col.astype(object).tolist()
    return _with_none(col, missing)


def _with_none(values: pd.Series, missing: pd.Series) -> list[object]:
    return values.astype(object).where(~missing, None).tolist()


def restore(raw: dict[str, object], columns: list[StoredColumn]) -> pd.DataFrame:
    """Build the frame with the written dtypes from raw column values (lists or Series)."""
    return pd.DataFrame({spec.name: _restore_column(raw[spec.name], spec) for spec in columns})


def _restore_column(values: object, spec: StoredColumn) -> pd.Series:
    series = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
    series = series.reset_index(drop=True)
    dtype = spec.dtype
    if spec.kind in (TIMESTAMP, TIMESTAMPTZ):
        parsed = pd.to_datetime(series, format="ISO8601", utc=spec.kind == TIMESTAMPTZ)
        if spec.kind == TIMESTAMPTZ:
            tz = pd.DatetimeTZDtype.construct_from_string(dtype)
            return parsed.dt.tz_convert(tz.tz).astype(dtype)
        return parsed.astype(dtype)
    if spec.kind == DATE:
        return series.map(_to_date).astype(object)
    if spec.kind == BOOLEAN:
        series = series.map(_to_bool, na_action="ignore")
        return series.astype(dtype)
    if spec.kind == INTEGER:
        if dtype[0].isupper():  # nullable Int64 & co: missing values stay <NA>
            return pd.to_numeric(series).astype(dtype)
        return series.astype(dtype)
    if spec.kind == FLOAT:
        return pd.to_numeric(series, errors="raise").astype(dtype)
    if dtype == "object":
        return series.where(series.notna(), None).astype(object)
    return series.astype(dtype)


def _to_date(value: object) -> dt.date | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def _to_bool(value: object) -> bool:
    if isinstance(value, str):
        return value.lower() in ("t", "true", "1")
    return bool(value)
