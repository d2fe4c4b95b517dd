"""Turning table rows into JSON that any store and any reader accepts.

Proposals are pandas rows: numpy scalars, NaN, infinities, timestamps. The decision log
stores them as JSON, so they are converted here once, the same way for every writer: a
missing value is null, an infinite one the text ``"inf"`` / ``"-inf"`` (JSON has no number
for it, and the record must show what the agent proposed).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping

import numpy as np
import pandas as pd


def json_value(value: object) -> object:
    """A JSON-safe equivalent of one cell: None for missing, ISO text for times."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return None if math.isnan(value) else value if math.isfinite(value) else str(value)
    if isinstance(value, dt.datetime | dt.date | pd.Timestamp):
        return value.isoformat()
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [json_value(v) for v in value]
    return str(value)


def json_records(frame: pd.DataFrame) -> list[dict[str, object]]:
    """Every row of ``frame`` as a JSON-safe dict, converted column by column (not cell by cell)."""
    columns = [str(c) for c in frame.columns]
    values = [_json_column(frame.iloc[:, i]) for i in range(frame.shape[1])]
    return (
        [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]
        if columns
        else [{} for _ in range(len(frame))]
    )


def _json_column(column: pd.Series) -> list[object]:
    missing = column.isna().to_numpy()
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        text = column.map(lambda t: t.isoformat(), na_action="ignore")
        return text.astype(object).where(~missing, None).tolist()
    if pd.api.types.is_float_dtype(column.dtype):
        values = column.to_numpy(dtype=float, na_value=np.nan)
        if not np.isfinite(values).all():
            return [json_value(v) for v in values.tolist()]
        return column.astype(object).where(~missing, None).tolist() if missing.any() else column.tolist()
    if pd.api.types.is_integer_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype):
        return column.astype(object).where(~missing, None).tolist() if missing.any() else column.tolist()
    if column.dtype == object and not missing.any() and pd.api.types.infer_dtype(column) == "string":
        return column.tolist()
    return [json_value(v) for v in column.tolist()]
