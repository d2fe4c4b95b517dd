"""The kinds of rule foureyes ships, each vectorised and each loadable from a dict (YAML).

* ``threshold``: ``column <op> value`` must hold.
* ``expression``: a pandas expression over proposal and joined reference columns must hold
  (e.g. margin-call regulatory thresholds: ``call_amount >= csa_mta``).
* ``restricted_list``: the proposal's key (one or more columns) must not appear in a
  reference table (restricted instruments; sectors a client's policy excludes). Keys are
  compared normalised (Unicode form, case, surrounding spaces), so ``"x9 "`` is ``X9``.
* ``concentration``: after the proposed trades, each group's share of a portfolio (by issuer,
  sector, counterparty...) must stay under a limit — fixed, or per client from a table.
* ``predicate``: any Python callable (Python API only).

Missing values never pass: a proposal the rule cannot judge is a proposal that breaks it.
"""

from __future__ import annotations

import operator
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np
import pandas as pd

from foureyes.checks.rules import Join, References, Rule, RuleFinding, is_blank
from foureyes.resources.errors import AgentDefinitionError

COMPARATORS: dict[str, Callable] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True, kw_only=True)
class Threshold(Rule):
    """``column <op> value`` must hold (e.g. ``reduction_pct <= 0.5``)."""

    kind: ClassVar[str] = "threshold"
    column: str
    op: str = "<="
    value: float

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.op not in COMPARATORS:
            raise AgentDefinitionError(f"rule {self.id!r}: op {self.op!r} is not one of {sorted(COMPARATORS)}")

    def violations(self, proposals: pd.DataFrame, references: References) -> pd.Series:
        values = pd.to_numeric(proposals[self.column], errors="coerce")
        holds = COMPARATORS[self.op](values, self.value)
        return ~holds.fillna(False).astype(bool)


@dataclass(frozen=True, kw_only=True)
class Expression(Rule):
    """A boolean pandas expression that must hold, e.g. ``call_amount <= exposure - csa_threshold``."""

    kind: ClassVar[str] = "expression"
    expression: str

    def violations(self, proposals: pd.DataFrame, references: References) -> pd.Series:
        holds = proposals.eval(self.expression)
        if not isinstance(holds, pd.Series) or not pd.api.types.is_bool_dtype(holds.dtype):
            raise AgentDefinitionError(f"rule {self.id!r}: {self.expression!r} is not a boolean expression")
        return ~holds.fillna(False).astype(bool)


@dataclass(frozen=True, kw_only=True)
class RestrictedList(Rule):
    """The proposal's ``columns`` must not match a row of the reference table ``reference``.

    Both sides are compared normalised (``normalised_key``): a near-spelling of a listed key
    is the listed key. A proposal missing any key value cannot be cleared, so it breaks the rule.
    """

    kind: ClassVar[str] = "restricted_list"
    columns: tuple[str, ...]
    reference: str
    reference_columns: tuple[str, ...] = ()

    def violations(self, proposals: pd.DataFrame, references: References) -> pd.Series:
        listed = references[self.reference][list(self.reference_columns or self.columns)]
        proposed = proposals[list(self.columns)]
        missing = proposed.map(is_blank).any(axis=1).to_numpy()
        keys = pd.MultiIndex.from_frame(proposed.map(normalised_key))
        banned = pd.MultiIndex.from_frame(listed.map(normalised_key))
        return pd.Series(keys.isin(banned) | missing, index=proposals.index)


@dataclass(frozen=True, kw_only=True)
class ConcentrationLimit(Rule):
    """After the proposed trades, a group's share of its portfolio must stay under a limit.

    ``holdings`` is a reference table of current market values (``portfolio_id``,
    ``instrument_id``, ``market_value``); ``attributes`` maps instruments to the grouping
    column (``group_by``: issuer, sector, counterparty). The proposals carry signed trade
    values in ``trade_column``. Only proposals that add to a group above its limit break the
    rule (a sale that reduces a concentration is never rejected for it). The limit is
    ``limit``, or per proposal from the (joined) column ``limit_column``.
    Message values: ``{group}``, ``{weight}``, ``{limit}``.
    """

    kind: ClassVar[str] = "concentration"
    group_by: str
    holdings: str = "holdings"
    attributes: str = "instruments"
    trade_column: str = "trade_value"
    limit: float | None = None
    limit_column: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.limit is None) == (self.limit_column is None):
            raise AgentDefinitionError(f"rule {self.id!r}: give exactly one of limit, limit_column")

    def violations(self, proposals: pd.DataFrame, references: References) -> RuleFinding:
        group_of = references[self.attributes].set_index("instrument_id")[self.group_by]
        held = references[self.holdings]
        n = len(proposals)
        trade = pd.to_numeric(proposals[self.trade_column], errors="coerce").to_numpy(dtype=float)
        value = np.concatenate([np.nan_to_num(trade), held["market_value"].to_numpy(dtype=float)])
        # integer codes over trades and holdings together, then sums by (portfolio, group) in numpy
        portfolio, _ = pd.factorize(
            np.concatenate([proposals["portfolio_id"].to_numpy(), held["portfolio_id"].to_numpy()])
        )
        instrument, instrument_ids = pd.factorize(
            np.concatenate([proposals["instrument_id"].to_numpy(), held["instrument_id"].to_numpy()])
        )
        # the groups of the distinct instruments only; an unknown instrument (code -1) takes the appended -1
        group_of_instrument, group_names = pd.factorize(group_of.reindex(instrument_ids).to_numpy())
        group = np.append(group_of_instrument, -1)[instrument]
        known = group >= 0
        width = max(len(group_names), 1)
        cell = portfolio * width + np.where(known, group, 0)
        by_cell = np.bincount(cell[known], weights=value[known], minlength=(portfolio.max() + 1) * width)
        totals = np.bincount(portfolio, weights=value)
        with np.errstate(divide="ignore", invalid="ignore"):
            weight = np.where(known[:n], by_cell[cell[:n]] / totals[portfolio[:n]], np.nan)
        limit = (
            np.full(n, self.limit, dtype=float)
            if self.limit is not None
            else pd.to_numeric(proposals[self.limit_column], errors="coerce").to_numpy(dtype=float)
        )
        broken = ((trade > 0) & ~(weight <= limit)) | np.isnan(trade)
        names = np.where(known[:n], np.asarray(group_names, dtype=object).take(np.where(known[:n], group[:n], 0)), None)
        values = pd.DataFrame({"group": names, "weight": weight, "limit": limit}, index=proposals.index)
        return RuleFinding(pd.Series(broken, index=proposals.index), values)


@dataclass(frozen=True, kw_only=True)
class Predicate(Rule):
    """Any vectorised test: ``test(proposals, references)`` is True where a proposal breaks it."""

    kind: ClassVar[str] = "predicate"
    test: Callable[[pd.DataFrame, References], pd.Series]

    def violations(self, proposals: pd.DataFrame, references: References) -> pd.Series:
        return pd.Series(np.asarray(self.test(proposals, references), dtype=bool), index=proposals.index)


def normalised_key(value: object) -> object:
    """A key as a person reads it: Unicode compatibility form, case folded, no surrounding space.

    Examples:
        >>> normalised_key(" x9 ") == normalised_key("X9") == normalised_key("Ｘ９")
        True
    """
    if isinstance(value, str):
        return unicodedata.normalize("NFKC", value).strip().casefold()
    return value


def _blank(value: object) -> bool:
    return (
        value is None
        or (isinstance(value, float) and np.isnan(value))
        or (isinstance(value, str) and not value.strip())
    )


RULE_KINDS: dict[str, type[Rule]] = {k.kind: k for k in (Threshold, Expression, RestrictedList, ConcentrationLimit)}


def rule_from_dict(data: Mapping) -> Rule:
    """Build a rule from its declarative form (as in a YAML rules file)."""
    data = dict(data)
    kind = data.pop("kind", None)
    if kind not in RULE_KINDS:
        raise AgentDefinitionError(
            f"rule {data.get('id', '?')!r}: kind {kind!r} is not one of {sorted(RULE_KINDS)} "
            "(predicate rules are Python-only)"
        )
    cls = RULE_KINDS[kind]
    allowed = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise AgentDefinitionError(
            f"rule {data.get('id', '?')!r} ({kind}): unknown field(s) {unknown}; allowed: {sorted(allowed)}"
        )
    if "joins" in data:
        data["joins"] = tuple(Join.from_dict(j) for j in data["joins"])
    for name in ("columns", "reference_columns"):
        if name in data:
            value = data[name]
            data[name] = (value,) if isinstance(value, str) else tuple(value)
    try:
        return cls(**data)
    except TypeError as exc:
        raise AgentDefinitionError(f"rule {data.get('id', '?')!r} ({kind}): {exc}") from exc
