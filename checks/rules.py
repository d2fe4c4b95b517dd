"""The rule engine: declarative business rules, evaluated vectorised over a proposals table.

A rule answers one question for every proposal at once — "does this proposal break me?" —
as a boolean mask, so a million proposals cost a few array operations. A rule is data (id,
description, severity, message template, filter, joins) plus that one vectorised test.

Rules never trust what the agent wrote about the world: reference values (a client's policy,
an issuer, a counterparty's CSA terms) are looked up by the supervisor through ``Join``\\ s on
reference tables, and only the proposal's own keys and amounts come from the agent.

Severity ``error`` rejects the proposal; ``warn`` records the finding without rejecting it.
A rule that crashes rejects every proposal it was meant to judge, and says why.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd

from foureyes.resources.errors import AgentDefinitionError

ERROR, WARN = "error", "warn"
References = Mapping[str, pd.DataFrame]


def is_blank(value: object) -> bool:
    """A value no rule can judge: missing (None, NaN, NaT) or text with nothing but spaces."""
    if isinstance(value, str):
        return not value.strip()
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and np.isnan(value))


@dataclass(frozen=True)
class Join:
    """Look up reference columns for each proposal: ``table`` matched on ``on`` (proposal -> table column).

    ``columns`` names what to bring in and under which name (table column -> new column).
    A reference table with duplicate keys is an error (a lookup must be unambiguous); a
    proposal without a match gets missing values, which rules treat as a violation.
    """

    table: str
    on: Mapping[str, str]
    columns: Mapping[str, str]

    @classmethod
    def from_dict(cls, data: Mapping) -> Join:
        on = data["on"] if "on" in data else data.get(True)  # YAML 1.1 reads a bare `on:` as true
        if on is None:
            raise AgentDefinitionError(f"join on {data.get('table', '?')!r} needs 'on' (the matching columns)")
        on = {on: on} if isinstance(on, str) else dict(on)
        return cls(table=data["table"], on=on, columns=dict(data["columns"]))

    def key(self) -> tuple:
        return (self.table, tuple(sorted(self.on.items())), tuple(sorted(self.columns.items())))

    def apply(self, column: Callable[[str], object], references: References) -> dict[str, np.ndarray]:
        """The looked-up columns, aligned to the proposals; ``column(name)`` reads a proposal column."""
        if self.table not in references:
            raise AgentDefinitionError(f"join needs reference table {self.table!r}; have {sorted(references)}")
        right_keys = list(self.on.values())
        lookup = references[self.table].set_index(right_keys)
        if lookup.index.has_duplicates:
            raise AgentDefinitionError(f"reference table {self.table!r} has duplicate keys {right_keys}")
        left = [column(name) for name in self.on]
        keys = left[0] if len(left) == 1 else pd.MultiIndex.from_arrays(left)
        positions = lookup.index.get_indexer(keys)
        missing = positions < 0
        found = {}
        for source, target in self.columns.items():
            values = lookup[source].to_numpy().take(np.where(missing, 0, positions))
            if missing.any():
                values = values.astype(float if values.dtype.kind in "iuf" else object)
                values[missing] = np.nan if values.dtype.kind == "f" else None
            found[target] = values
        return found


@dataclass(frozen=True, kw_only=True)
class Rule:
    """Base of all rules. A kind implements ``violations`` (and may add message values).

    ``message`` is a ``str.format`` template over the proposal's columns, the joined
    reference columns and any values the kind computes, e.g.
    ``"{portfolio_id}: reduction {reduction_pct:.0%} is above 50%"``.
    ``when`` limits the rule to proposals whose column equals a value (or one of a list).
    """

    kind: ClassVar[str] = "abstract"
    id: str
    description: str
    message: str
    severity: str = ERROR
    when: Mapping[str, object] = field(default_factory=dict)
    joins: tuple[Join, ...] = ()

    def __post_init__(self) -> None:
        if self.severity not in (ERROR, WARN):
            raise AgentDefinitionError(f"rule {self.id!r}: severity {self.severity!r} is not one of 'error', 'warn'")

    def violations(self, proposals: pd.DataFrame, references: References) -> pd.Series | RuleFinding:
        """True for every proposal that breaks this rule; may return a ``RuleFinding`` with values."""
        raise NotImplementedError

    def message_fields(self) -> set[str]:
        """The column names the message template uses."""
        try:
            return {f.split(".")[0].split("[")[0] for _, f, _, _ in string.Formatter().parse(self.message) if f}
        except ValueError:
            return set()

    def explain(self, row: Mapping[str, object]) -> str:
        try:
            return self.message.format(rule=self.id, **row)
        except (KeyError, ValueError, TypeError, IndexError, AttributeError):
            return f"{self.id}: {self.message}"


class RowFilter:
    """Masks for ``when`` filters; each filtered column is factorized once, however many rules use it."""

    def __init__(self, frame: pd.DataFrame):
        self._frame = frame
        self._factorized: dict[str, tuple[np.ndarray, pd.Index]] = {}

    def mask(self, when: Mapping[str, object]) -> np.ndarray:
        mask = np.ones(len(self._frame), dtype=bool)
        for column, value in when.items():
            values = list(value) if isinstance(value, list | tuple | set) else [value]
            if column not in self._factorized:
                self._factorized[column] = pd.factorize(self._frame[column])
            codes, uniques = self._factorized[column]
            mask &= np.isin(codes, np.flatnonzero(pd.Index(uniques).isin(values)))
        return mask


@dataclass(frozen=True)
class RuleFinding:
    """A rule's mask plus values it computed for its messages (aligned to the proposals)."""

    broken: pd.Series
    values: pd.DataFrame | None = None


@dataclass(frozen=True)
class RuleOutcome:
    rule: Rule
    broken: pd.Series
    values: pd.DataFrame | None = None

    @property
    def count(self) -> int:
        return int(self.broken.sum())


@dataclass(frozen=True)
class RuleReport:
    """Every rule's mask over one proposals table, and the table the rules saw."""

    outcomes: tuple[RuleOutcome, ...]
    seen: pd.DataFrame

    def rejected(self) -> pd.Series:
        """True where at least one error-severity rule is broken."""
        return self._any(o for o in self.outcomes if o.rule.severity == ERROR)

    def counts(self) -> dict[str, int]:
        return {o.rule.id: o.count for o in self.outcomes}

    def findings(self) -> pd.DataFrame:
        """One row per (proposal, broken rule): position, rule, severity, message."""
        parts = []
        for outcome in self.outcomes:
            hits = outcome.broken[outcome.broken].index
            if len(hits) == 0:
                continue
            fields = outcome.rule.message_fields()
            context = self.seen.loc[hits, [c for c in self.seen.columns if c in fields]]
            if outcome.values is not None:
                extra = [c for c in outcome.values.columns if c in fields]
                context = context.join(outcome.values.loc[hits, extra], rsuffix="_rule")
            records = context.to_dict("records") if len(context.columns) else [{} for _ in hits]
            parts.append(
                pd.DataFrame(
                    {
                        "position": hits,
                        "rule": outcome.rule.id,
                        "severity": outcome.rule.severity,
                        "message": [outcome.rule.explain(r) for r in records],
                    }
                )
            )
        if not parts:
            return pd.DataFrame(columns=["position", "rule", "severity", "message"])
        return pd.concat(parts, ignore_index=True)

    def _any(self, outcomes) -> pd.Series:
        mask = np.zeros(len(self.seen), dtype=bool)
        for outcome in outcomes:
            mask |= outcome.broken.to_numpy()
        return pd.Series(mask, index=self.seen.index)


def evaluate(rules: Sequence[Rule], proposals: pd.DataFrame, references: References | None = None) -> RuleReport:
    """Evaluate every rule over the whole table; a rule that crashes is a finding, not a crash."""
    references = references or {}
    joined, failed_joins = _with_joins(rules, proposals, references)
    filters = RowFilter(joined)
    outcomes = []
    for rule in rules:
        try:
            for join in rule.joins:
                if join.key() in failed_joins:
                    raise failed_joins[join.key()]
            found = rule.violations(joined, references)
            finding = found if isinstance(found, RuleFinding) else RuleFinding(found)
            broken = pd.Series(np.asarray(finding.broken, dtype=bool), index=joined.index)
            outcomes.append(RuleOutcome(rule, filters.mask(rule.when) & broken, finding.values))
        except Exception as exc:  # a broken rule must reject, never approve by accident
            outcomes.append(RuleOutcome(crashed(rule, exc), pd.Series(True, index=joined.index)))
    return RuleReport(tuple(outcomes), joined)


def _with_joins(
    rules: Sequence[Rule], proposals: pd.DataFrame, references: References
) -> tuple[pd.DataFrame, dict[tuple, Exception]]:
    """The proposals plus every joined reference column (each join once), and the joins that failed."""
    seen: set[tuple] = set()
    failed: dict[tuple, Exception] = {}
    looked_up: dict[str, np.ndarray] = {}

    def column(name: str):  # a join may key on columns an earlier join brought in
        return looked_up[name] if name in looked_up else proposals[name].to_numpy()

    for rule in rules:
        for join in rule.joins:
            if join.key() in seen:
                continue
            seen.add(join.key())
            try:
                looked_up |= join.apply(column, references)
            except Exception as exc:  # the rules using it reject, with this reason
                failed[join.key()] = exc
    if not looked_up:
        return proposals, failed
    frame = proposals.copy(deep=False)  # new columns are added as blocks of their own: nothing is copied
    for name, values in looked_up.items():
        frame[name] = values  # reference values replace any same-named column the agent wrote
    return frame, failed


@dataclass(frozen=True, kw_only=True)
class _Unevaluable(Rule):
    """Stands in for a rule that could not be evaluated: it rejects everything, and says why."""

    kind: ClassVar[str] = "unevaluable"

    def violations(self, proposals: pd.DataFrame, references: References) -> pd.Series:
        return pd.Series(True, index=proposals.index)


def crashed(rule: Rule, exc: Exception) -> Rule:
    return _Unevaluable(
        id=rule.id,
        description=rule.description,
        severity=ERROR,
        message=f"rule {rule.id} could not be evaluated ({type(exc).__name__}: {exc}); rejected to be safe",
    )
