"""The rule engine: declarative business rules, evaluated vectorised over a proposals table.

A rule answers one question for every proposal at once: "does this proposal break me?" as a
boolean mask. Rules are data (id, description, severity, message template) plus that one
vectorised test, so that thousands of proposals cost a few array operations, and a rule's
verdict on each proposal can be explained with a message naming the offending values.

Severity ``error`` rejects the proposal; ``warn`` records the finding without rejecting it.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from resources.errors import AgentDefinitionError

ERROR, WARN = "error", "warn"
References = Mapping[str, pd.DataFrame]
_COMPARATORS: dict[str, Callable] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class Rule:
    """Base of all rules. Subclasses implement ``violations``.

    ``message`` is a ``str.format`` template over the proposal's columns (plus ``{rule}``),
    e.g. ``"{portfolio_id}: reduction {reduction_pct:.0%} is above 50%"``.
    """

    id: str
    description: str
    message: str
    severity: str = ERROR
    when: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in (ERROR, WARN):
            raise AgentDefinitionError(
                f"rule {self.id!r}: severity {self.severity!r} is not one of 'error', 'warn'"
            )

    def violations(self, proposals: pd.DataFrame, references: References) -> pd.Series:
        """True for every proposal that breaks this rule (aligned to ``proposals.index``)."""
        raise NotImplementedError

    def applies_to(self, proposals: pd.DataFrame) -> pd.Series:
        """The ``when`` filter: column -> value (or list of values) the rule is limited to."""
        mask = pd.Series(True, index=proposals.index)
        for column, value in self.when.items():
            values = value if isinstance(value, list | tuple | set) else [value]
            mask &= proposals[column].isin(values)
        return mask

    def explain(self, row: Mapping[str, object]) -> str:
        try:
            return self.message.format(rule=self.id, **row)
        except (KeyError, ValueError, TypeError, IndexError):
            return f"{self.id}: {self.message}"


@dataclass(frozen=True)
class Threshold(Rule):
    """``column <op> value`` must hold (e.g. ``reduction_pct <= 0.5``); missing values break it."""

    column: str = ""
    op: str = "<="
    value: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.op not in _COMPARATORS:
            raise AgentDefinitionError(
                f"rule {self.id!r}: op {self.op!r} is not one of {sorted(_COMPARATORS)}"
            )

    def violations(self, proposals: pd.DataFrame, references: References) -> pd.Series:
        values = pd.to_numeric(proposals[self.column], errors="coerce")
        holds = _COMPARATORS[self.op](values, self.value).fillna(False).astype(bool)
        return self.applies_to(proposals) & ~holds


@dataclass(frozen=True)
class Predicate(Rule):
    """Any vectorised test: ``test(proposals, references)`` returns True where a proposal breaks it."""

    test: Callable[[pd.DataFrame, References], pd.Series] | None = None

    def violations(self, proposals: pd.DataFrame, references: References) -> pd.Series:
        if self.test is None:
            raise AgentDefinitionError(f"rule {self.id!r} has no test")
        broken = pd.Series(np.asarray(self.test(proposals, references), dtype=bool), index=proposals.index)
        return self.applies_to(proposals) & broken


@dataclass(frozen=True)
class RuleOutcome:
    rule: Rule
    broken: pd.Series

    @property
    def count(self) -> int:
        return int(self.broken.sum())


@dataclass(frozen=True)
class RuleReport:
    """Every rule's mask over one proposals table."""

    outcomes: tuple[RuleOutcome, ...]
    index: pd.Index

    def rejected(self) -> pd.Series:
        """True where at least one error-severity rule is broken."""
        mask = pd.Series(False, index=self.index)
        for outcome in self.outcomes:
            if outcome.rule.severity == ERROR:
                mask |= outcome.broken
        return mask

    def broken_rules(self, position: object) -> list[RuleOutcome]:
        return [o for o in self.outcomes if bool(o.broken.loc[position])]

    def counts(self) -> dict[str, int]:
        return {o.rule.id: o.count for o in self.outcomes}


def evaluate(
    rules: Sequence[Rule], proposals: pd.DataFrame, references: References | None = None
) -> RuleReport:
    """Evaluate every rule over the whole table; a rule that crashes is a finding, not a crash."""
    references = references or {}
    outcomes = []
    for rule in rules:
        try:
            broken = rule.violations(proposals, references).reindex(proposals.index, fill_value=True)
            outcomes.append(RuleOutcome(rule, broken.astype(bool)))
        except Exception as exc:  # a broken rule must reject, never approve by accident
            outcomes.append(RuleOutcome(_crashed(rule, exc), pd.Series(True, index=proposals.index)))
    return RuleReport(tuple(outcomes), proposals.index)


def _crashed(rule: Rule, exc: Exception) -> Rule:
    return Predicate(
        id=rule.id,
        description=rule.description,
        severity=ERROR,
        message=f"rule {rule.id} could not be evaluated ({type(exc).__name__}: {exc}); rejected to be safe",
        test=lambda frame, _refs: pd.Series(True, index=frame.index),
    )
