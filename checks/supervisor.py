"""The Supervisor: turns a proposals table into one verdict per proposal.

"Never let an agent be its own judge." The supervisor sees the proposals (and reference
data), applies the pandera schema and the business rules, and decides each proposal:
approved or rejected with the ids and messages of what it broke. What a rejection does is a
policy: ``drop`` rejects that proposal and lets the rest go on; ``block`` rejects the whole
batch. A table that fails its schema always blocks the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from checks.proposal_schema import ProposalsSchema, SchemaReport, validate_proposals
from checks.rules import ERROR, References, Rule, RuleReport, evaluate
from resources.decision_log import APPROVED, REJECTED, Reason
from resources.errors import AgentDefinitionError

DROP, BLOCK = "drop", "block"
SCHEMA_RULE = "proposals_schema"


@dataclass(frozen=True)
class Supervision:
    """The supervisor's findings over one proposals table."""

    verdicts: pd.Series
    reasons: dict[object, tuple[Reason, ...]]
    schema: SchemaReport
    rules: RuleReport | None
    blocked: bool
    block_reason: str = ""

    def count(self, verdict: str) -> int:
        return int((self.verdicts == verdict).sum())


@dataclass(frozen=True)
class Supervisor:
    """Schema + rules + the rejection policy, applied to a proposals table.

    Examples:
        .. code-block:: python

            supervisor = Supervisor(
                schema=VarProposals,
                rules=[Threshold(id="max_reduction", description="...", column="reduction_pct",
                                 op="<=", value=0.5, message="{portfolio_id}: {reduction_pct:.0%} > 50%")],
                on_rejection="drop",
            )
            supervision = supervisor.review(proposals)
    """

    schema: ProposalsSchema
    rules: Sequence[Rule] = field(default_factory=tuple)
    on_rejection: str = DROP

    def __post_init__(self) -> None:
        if self.on_rejection not in (DROP, BLOCK):
            raise AgentDefinitionError(f"on_rejection {self.on_rejection!r} is not one of 'drop', 'block'")
        ids = [r.id for r in self.rules]
        if len(ids) != len(set(ids)):
            raise AgentDefinitionError(f"rule ids must be unique; got {ids}")

    def review(self, proposals: pd.DataFrame, references: References | None = None) -> Supervision:
        schema = validate_proposals(self.schema, proposals)
        if not schema.passed:
            return self._schema_blocked(proposals, schema)
        rules = evaluate(self.rules, proposals, references)
        rejected = rules.rejected()
        reasons = {
            position: tuple(
                Reason(o.rule.id, o.rule.severity, o.rule.explain(proposals.loc[position].to_dict()))
                for o in rules.broken_rules(position)
            )
            for position in proposals.index[_any_broken(rules)]
        }
        verdicts = pd.Series(APPROVED, index=proposals.index).where(~rejected, REJECTED)
        if self.on_rejection == BLOCK and rejected.any():
            first = rejected.idxmax()
            why = (
                f"batch blocked: {int(rejected.sum())} proposal(s) broke a rule, "
                f"e.g. {reasons[first][0].message}"
            )
            block = Reason("batch_blocked", ERROR, why)
            reasons = {p: (*reasons.get(p, ()), block) for p in proposals.index}
            return Supervision(pd.Series(REJECTED, index=proposals.index), reasons, schema, rules, True, why)
        return Supervision(verdicts, reasons, schema, rules, False)

    def _schema_blocked(self, proposals: pd.DataFrame, schema: SchemaReport) -> Supervision:
        table_wide = "; ".join(schema.table_failures)
        why = f"proposals table failed its schema ({len(schema.failure_cases)} failure case(s))"
        reasons = {}
        for position in proposals.index:
            own = schema.row_messages(position) if position in schema.failed_rows else []
            detail = "; ".join(own) or table_wide or "another proposal in the batch failed the schema"
            reasons[position] = (Reason(SCHEMA_RULE, ERROR, f"{why}: {detail}"),)
        return Supervision(pd.Series(REJECTED, index=proposals.index), reasons, schema, None, True, why)


def _any_broken(rules: RuleReport) -> pd.Series:
    mask = pd.Series(False, index=rules.index)
    for outcome in rules.outcomes:
        mask |= outcome.broken
    return mask
