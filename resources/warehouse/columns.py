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

from foureyes.resources.errors import UnsupportedDtypeError

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


def _check_storable(name: str, col: pd.Series) -> None:
    """Raise ``UnsupportedDtypeError`` if the warehouse cannot store this column faithfully."""
    if _kind(name, col) == TEXT:
        _refuse_nul(name, col)
        _refuse_unencodable(name, col)


def storable_frame(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """The frame with each column the warehouse cannot store faithfully turned into text, and why.

    What an agent returns is stored whatever it holds (mixed types, NUL characters, objects),
    so that the supervisor judges it as it was: its schema then rejects a text column where it
    wanted numbers. Nothing an agent proposes can stop the step that stores it.
    """
    notes, converted = [], {}
    for name, col in frame.items():  # each column as it is: slicing a one-column frame cost more than the checks
        try:
            _check_storable(str(name), col)
        except UnsupportedDtypeError as exc:
            converted[name] = _as_text(col)
            notes.append(f"{name} stored as text ({exc})")
    if not converted:
        return frame, notes
    out = frame.copy()
    for name, values in converted.items():
        out[name] = values
    return out, notes


def _as_text(col: pd.Series) -> pd.Series:
    def text(value: object) -> str | None:
        if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA or value is pd.NaT:
            return None
        shown = str(value).replace("\x00", "\\x00")
        return shown.encode("utf-8", "backslashreplace").decode("utf-8")

    return pd.Series([text(v) for v in col.astype(object).tolist()], index=col.index, dtype=object)


def _refuse_unencodable(name: str, col: pd.Series) -> None:
    try:
        "".join(col.dropna().astype(str)).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UnsupportedDtypeError(f"column '{name}' has text that is not valid Unicode ({exc.reason})") from None


def _refuse_nul(name: str, col: pd.Series) -> None:
    """PostgreSQL text cannot hold NUL; refuse it everywhere so SQLite and PostgreSQL agree.

    One C-level search of the joined text keeps the common case (no NUL) at a few ms per
    million values; rows are only counted, for the message, when there is one.
    """
    values = col.dropna()
    if "\x00" not in "".join(values):
        return
    has_nul = values.astype(object).astype(str).str.contains("\x00", regex=False)
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
    raise UnsupportedDtypeError(f"column '{name}' holds Python objects of type {found}; supported: {SUPPORTED}")


def encode_for_sql(frame: pd.DataFrame, columns: list[StoredColumn], *, sqlite: bool) -> list[list[object]]:
    """Column-wise Python values for a DB-API driver, with None for every missing value.

    SQLite has no temporal or boolean types, so times go as ISO text and booleans as 0/1 there
    (the sqlite3 module also binds an int several times faster than a bool); drivers that bind
    real types (psycopg's binary COPY) get ``datetime``/``date`` objects, UTC when aware.
    """
    return [_encode_column(frame[spec.name], spec, sqlite) for spec in columns]


def _encode_column(col: pd.Series, spec: StoredColumn, sqlite: bool) -> list[object]:
    if spec.kind in (TIMESTAMP, TIMESTAMPTZ):
        if spec.kind == TIMESTAMPTZ:
            col = col.dt.tz_convert("UTC")
            if sqlite:
                col = col.dt.tz_localize(None)
        values = np.array(_iso_text(col) if sqlite else col.array.to_pydatetime(), dtype=object)
        values[col.isna().to_numpy()] = None
        return values.tolist()
    if spec.kind == DATE:
        return [None if pd.isna(v) else (v.isoformat() if sqlite else v) for v in col]
    missing = col.isna()
    if spec.kind == FLOAT:
        col = col.astype(float)
    elif spec.kind == BOOLEAN and sqlite:
        col = col.astype("Int64" if missing.any() else "int64")
    if not missing.any():
        return col.tolist() if col.dtype != "category" else col.astype(object).tolist()
    return _with_none(col, missing)


def _with_none(values: pd.Series, missing: pd.Series) -> list[object]:
    return values.astype(object).where(~missing, None).tolist()


_ISO_FIELDS = (  # (datetime field, digits, separator after it)
    ("year", 4, "-"),
    ("month", 2, "-"),
    ("day", 2, " "),
    ("hour", 2, ":"),
    ("minute", 2, ":"),
    ("second", 2, "."),
    ("microsecond", 6, ""),
)
_ISO_WIDTH = 26  # len("2026-11-20 10:00:00.123456")
_DIGIT_PAIRS = np.array([f"{i:02d}" for i in range(100)], dtype="S2").view(np.uint8).reshape(100, 2)


def _iso_text(col: pd.Series) -> list[str]:
    """Naive times as ``YYYY-MM-DD HH:MM:SS.ffffff`` text (SQLAlchemy's SQLite format).

    ``strftime`` formats value by value (~2.3 s per million); writing the digits of the date
    fields, two at a time, into a byte matrix does the same in ~0.4 s. Missing values come out
    as any text (the caller masks them); years outside 1..9999, which need another width, keep
    ``strftime``.
    """
    fields = col.fillna(pd.Timestamp("2000-01-01")).dt
    if not fields.year.between(1, 9999).all():
        return col.dt.strftime("%Y-%m-%d %H:%M:%S.%f").tolist()
    text = np.empty((len(col), _ISO_WIDTH), dtype=np.uint8)
    position = 0
    for name, width, separator in _ISO_FIELDS:
        number = getattr(fields, name).to_numpy(np.int64)
        for power in range(width - 2, -1, -2):
            text[:, position : position + 2] = _DIGIT_PAIRS.take(number // 10**power % 100, axis=0)
            position += 2
        if separator:
            text[:, position] = ord(separator)
            position += 1
    flat = text.tobytes().decode("ascii")
    return [flat[start : start + _ISO_WIDTH] for start in range(0, len(flat), _ISO_WIDTH)]


def restore(raw: dict[str, object], columns: list[StoredColumn]) -> pd.DataFrame:
    """Build the frame with the written dtypes from raw column values.

    The values of a column are an array or list, or a Series with the default index.
    """
    return pd.DataFrame({spec.name: _restore_column(raw[spec.name], spec) for spec in columns})


def _restore_column(values: object, spec: StoredColumn) -> pd.Series:
    if spec.kind == FLOAT and spec.dtype == "float64" and not isinstance(values, pd.Series):
        return pd.Series(np.asarray(values, dtype=np.float64))  # None becomes NaN, as written
    series = values if isinstance(values, pd.Series) else pd.Series(values, dtype=object)
    dtype = spec.dtype
    if spec.kind in (TIMESTAMP, TIMESTAMPTZ):
        parsed = pd.to_datetime(series, format="ISO8601", utc=spec.kind == TIMESTAMPTZ)
        if spec.kind == TIMESTAMPTZ:
            tz = pd.DatetimeTZDtype.construct_from_string(dtype)
            return parsed.dt.tz_convert(tz.tz).astype(dtype)
        return parsed.astype(dtype)
    if spec.kind == DATE:
        return series.map(_to_date).astype(object)
    if spec.kind == BOOLEAN:  # 0/1 or bools, with None or NaN for the missing
        return series.astype("float64").astype(dtype)
    if spec.kind == INTEGER:
        if dtype[0].isupper() and series.dtype == object:  # ints and None: keep big ints exact
            return pd.Series(pd.array(series.to_numpy(), dtype=dtype))
        return series.astype(dtype)
    if spec.kind == FLOAT:  # floats, None when missing
        return series.astype("float64").astype(dtype)
    if dtype == "object":
        return series.where(series.notna(), None).astype(object) if series.hasnans else series
    return series.astype(dtype)


def _to_date(value: object) -> dt.date | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
