"""What every proposals table must satisfy before anything can act on it, whatever its schema says.

The agent author's schema and rules say what a good proposal is; these say what the
machinery needs for a proposal to be judged and carried out at all, and they apply to every
agent, so that a schema with a gap (no ``isin`` on ``action``, a float column without a
``finite`` check) never becomes a hole:

* ``finite_values``: no number is infinite (a missing value is NaN, judged by the schema);
* ``natural_key_present``: every natural-key column has a value (not missing, not blank);
* ``unique_natural_key``: one proposal per natural key — two rows with one key would share
  one proposal id, one approval and one idempotency key, so neither can be trusted;
* ``accepted_action``: the action is ``hold`` or one the agent's target declares it accepts.

Each is a rejection of the rows that break it, with the reason, like an error-severity rule.
"""

from __future__ import annotations

import cmath
import math
from collections.abc import Collection, Sequence

import numpy as np
import pandas as pd

from foureyes.checks.rules import is_blank

FINITE, KEY_PRESENT, UNIQUE_KEY, ACCEPTED_ACTION = (
    "finite_values",
    "natural_key_present",
    "unique_natural_key",
    "accepted_action",
)
INTEGRITY_RULES = (FINITE, KEY_PRESENT, UNIQUE_KEY, ACCEPTED_ACTION)
HOLD = "hold"


def integrity_findings(
    proposals: pd.DataFrame,
    natural_key: Sequence[str],
    accepted_actions: Collection[str] | None,
    ignored_columns: Collection[str] = (),
) -> pd.DataFrame:
    """One row per (proposal, broken integrity rule): position, rule, severity, message.

    ``accepted_actions`` is the target's declaration (``hold`` is always accepted); None
    only where no target is involved (a supervisor tried on its own).
    """
    found: list[tuple[object, str, str]] = []
    for column in proposals.columns:
        if column in ignored_columns:
            continue
        infinite = _infinite(proposals[column])
        found += [(p, FINITE, f"{column} is {v}: not a finite number") for p, v in _hits(proposals, column, infinite)]
    keys = [c for c in natural_key if c in proposals.columns]
    if keys:
        missing = np.zeros(len(proposals), dtype=bool)
        for column in keys:
            blank = _missing(proposals[column])
            missing |= blank
            found += [(p, KEY_PRESENT, f"natural key {column} is missing") for p in proposals.index[blank]]
        text = proposals[keys].astype(str)
        duplicated = text.duplicated(keep=False).to_numpy() & ~missing
        if duplicated.any():
            counts = text[duplicated].value_counts()
            for position, row in text[duplicated].iterrows():
                shown = ", ".join(f"{k}={v}" for k, v in row.items())
                found.append((position, UNIQUE_KEY, f"{shown} is proposed {counts[tuple(row)]} times: one per key"))
    if accepted_actions is not None and "action" in proposals.columns:
        allowed = sorted({*accepted_actions, HOLD})
        actions = proposals["action"]
        refused = ~actions.map(lambda a: isinstance(a, str) and a in allowed).to_numpy(dtype=bool)
        found += [
            (p, ACCEPTED_ACTION, f"action {a!r} is not one its target accepts ({', '.join(allowed)})")
            for p, a in zip(proposals.index[refused], actions[refused], strict=True)
        ]
    return pd.DataFrame(
        [(p, rule, "error", message) for p, rule, message in found],
        columns=["position", "rule", "severity", "message"],
    )


def _infinite(column: pd.Series) -> np.ndarray:
    if isinstance(column.dtype, pd.CategoricalDtype):  # a row is infinite where its category is (code -1: missing)
        infinite_category = np.append(_infinite(pd.Series(column.cat.categories)), False)
        return infinite_category[column.cat.codes.to_numpy()]
    if pd.api.types.is_float_dtype(column.dtype):
        return np.isinf(column.to_numpy(dtype=float, na_value=np.nan))
    if _never_infinite(column):
        return np.zeros(len(column), dtype=bool)
    # anything else — objects, sparse or complex columns, extension types — is looked at value by value
    return np.fromiter((_is_infinite(v) for v in column.tolist()), bool, len(column))


def _never_infinite(column: pd.Series) -> bool:
    """Columns whose type cannot hold an infinity: integers, booleans, dates, text."""
    dtype = column.dtype
    if pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        return True
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return True
    return pd.api.types.infer_dtype(column, skipna=True) in ("string", "empty")


def _is_infinite(value: object) -> bool:
    if isinstance(value, float | np.floating):
        return math.isinf(value)
    if isinstance(value, complex | np.complexfloating):
        return cmath.isinf(value)
    return False


def _missing(column: pd.Series) -> np.ndarray:
    if column.dtype == object or isinstance(column.dtype, pd.StringDtype):
        return column.map(is_blank).to_numpy(dtype=bool)
    return column.isna().to_numpy(dtype=bool)


def _hits(proposals: pd.DataFrame, column: str, mask: np.ndarray) -> list[tuple[object, object]]:
    return list(zip(proposals.index[mask], proposals[column].to_numpy()[mask], strict=True))
