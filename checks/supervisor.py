"""The Supervisor: turns a proposals table into one verdict per proposal.

"Never let an agent be its own judge." The supervisor sees the proposals and reference data
and decides each proposal, in this order:

0. integrity (``foureyes.checks.integrity``) — finite numbers, one proposal per natural key, an action
   the target accepts — whatever the schema says; a proposal that breaks it is rejected;
1. the pandera schema — a table that fails it is rejected whole (the batch is blocked);
2. the business rules — an ``error`` finding rejects the proposal, a ``warn`` is recorded;
3. the reviewers — second agents that may veto a proposal, with a reason;
4. the rejection policy — ``drop`` (reject those proposals, go on) or ``block`` (any
   rejection rejects the batch);
5. the approval policy — proposals still approved but large enough go to *pending*, to
   wait for one or two human approvers.

Everything is vectorised over the table; only the findings are turned into messages.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from foureyes.checks.approval_policy import ApprovalPolicy
from foureyes.checks.integrity import HOLD, INTEGRITY_RULES, integrity_findings
from foureyes.checks.proposal_schema import ProposalsSchema, SchemaReport, validate_proposals
from foureyes.checks.replaced_proposals import FILLED_BY_BASELINE, REPLACES
from foureyes.checks.reviewer import Reviewer
from foureyes.checks.rules import ERROR, References, Rule, RuleReport, evaluate
from foureyes.resources.control_plane.decisions import APPROVED, PENDING, REJECTED, Reason
from foureyes.resources.errors import AgentDefinitionError

DROP, BLOCK = "drop", "block"
SCHEMA_RULE = "proposals_schema"
BATCH_BLOCKED = "batch_blocked"
MACHINERY_COLUMNS = ("tier", "served_inputs", REPLACES)  # added to proposals tables by foureyes
APPROVAL_SEVERITY = "approval"
#: A column by which an agent asks for people (a LangGraph ``interrupt()``): 1 approval, or 2.
HUMAN_APPROVALS = "human_approvals"
HUMAN_IN_THE_LOOP = ApprovalPolicy(
    id="human_in_the_loop",
    description="The agent stopped to ask a human (an interrupt): one approval, two when it asked for four eyes.",
    column=HUMAN_APPROVALS,
    above=0,
    four_eyes_above=1,
    summary="{action} {proposal_id}: the agent asked for a human",
)
FINDING_COLUMNS = ["position", "rule", "severity", "message"]


@dataclass(frozen=True)
class Supervision:
    """The supervisor's findings over one proposals table."""

    verdicts: pd.Series
    findings: pd.DataFrame
    schema: SchemaReport
    rules: RuleReport | None
    vetoes: Mapping[str, int]
    required_approvals: pd.Series
    blocked: bool
    block_reason: str = ""
    integrity: Mapping[str, int] = field(default_factory=dict)

    def count(self, verdict: str) -> int:
        return int((self.verdicts == verdict).sum())

    def reasons(self) -> dict[object, tuple[Reason, ...]]:
        """Each proposal's reasons (rule, reviewer, schema, approval), by position."""
        grouped: dict[object, list[Reason]] = {}
        for position, rule, severity, message in self.findings[FINDING_COLUMNS].itertuples(index=False, name=None):
            grouped.setdefault(position, []).append(Reason(rule, severity, message))
        return {p: tuple(r) for p, r in grouped.items()}


@dataclass(frozen=True)
class Supervisor:
    """Schema, rules, reviewers, the rejection policy and the approval policy.

    Examples:
        >>> import pandas as pd
        >>> import pandera.pandas as pa
        >>> import foureyes
        >>> from foureyes.checks import Supervisor
        >>> max_cut = foureyes.Threshold(
        ...     id="max_cut",
        ...     description="at most half",
        ...     message="cut {reduction_pct:.0%}",
        ...     column="reduction_pct",
        ...     value=0.5,
        ... )
        >>> supervisor = Supervisor(
        ...     schema=pa.DataFrameSchema({"action": pa.Column(str), "reduction_pct": pa.Column(float)}),
        ...     rules=[max_cut],
        ...     approval=foureyes.ApprovalPolicy(id="big_cut", description="...", column="reduction_pct", above=0.3),
        ...     on_rejection="drop",
        ... )
        >>> supervision = supervisor.review(pd.DataFrame({"action": ["reduce"] * 3, "reduction_pct": [0.1, 0.4, 0.7]}))
        >>> supervision.verdicts.tolist()
        ['approved', 'pending', 'rejected']
        >>> supervision.reasons()[2]
        (Reason(rule='max_cut', severity='error', message='cut 70%'),)
    """

    schema: ProposalsSchema
    natural_key: Sequence[str] = ()
    rules: Sequence[Rule] = field(default_factory=tuple)
    reviewers: Sequence[Reviewer] = field(default_factory=tuple)
    approval: ApprovalPolicy | None = None
    on_rejection: str = DROP

    def __post_init__(self) -> None:
        if self.on_rejection not in (DROP, BLOCK):
            raise AgentDefinitionError(f"on_rejection {self.on_rejection!r} is not one of 'drop', 'block'")
        ids = [r.id for r in self.rules] + [r.id for r in self.reviewers]
        if len(ids) != len(set(ids)):
            raise AgentDefinitionError(f"rule and reviewer ids must be unique; got {ids}")
        reserved = sorted(set(ids) & {*INTEGRITY_RULES, SCHEMA_RULE, BATCH_BLOCKED, FILLED_BY_BASELINE})
        if reserved:
            raise AgentDefinitionError(f"rule ids {reserved} are foureyes' own; name your rules otherwise")

    def review(
        self,
        proposals: pd.DataFrame,
        references: References | None = None,
        accepted_actions: Collection[str] | None = None,
    ) -> Supervision:
        """Judge every proposal; ``accepted_actions`` are what the agent's target declares it carries out."""
        references = references or {}
        integrity = integrity_findings(proposals, self.natural_key, accepted_actions, MACHINERY_COLUMNS)
        broken = proposals.index.isin(integrity["position"])
        integrity_counts = integrity["rule"].value_counts().to_dict()
        agent_columns = proposals.drop(columns=[c for c in MACHINERY_COLUMNS if c in proposals.columns])
        schema = validate_proposals(self.schema, agent_columns)
        no_approvals = pd.Series(0, index=proposals.index)
        if not schema.passed:
            blocked = self._schema_blocked(proposals, schema, no_approvals)
            return replace(blocked, findings=_concat([integrity, blocked.findings]), integrity=integrity_counts)
        rules = evaluate(self.rules, proposals, references)
        rejected = rules.rejected().to_numpy() | broken
        findings = [integrity, rules.findings()]
        vetoes = {}
        for reviewer in self.reviewers:
            review = reviewer.safely_review(proposals, references)
            vetoed = review.vetoed.to_numpy()
            vetoes[reviewer.id] = int(vetoed.sum())
            rejected |= vetoed
            hits = proposals.index[vetoed]
            findings.append(_findings(hits, reviewer.id, ERROR, review.reasons[vetoed].tolist()))
        findings_frame = _concat(findings)
        if self.on_rejection == BLOCK and rejected.any():
            blocked = self._rule_blocked(proposals, schema, rules, vetoes, findings_frame, rejected, no_approvals)
            return replace(blocked, integrity=integrity_counts)
        required = self._required_approvals(proposals, rejected)
        pending = required.to_numpy() > 0
        verdicts = np.where(rejected, REJECTED, np.where(pending, PENDING, APPROVED))
        if pending.any():
            policy = self.approval_policy(proposals)
            rows = proposals.loc[pending].to_dict("records")
            messages = [
                f"needs {n} approval{'s' if n > 1 else ''} ({policy.id}): {policy.describe(r)}"
                for n, r in zip(required[pending], rows, strict=True)
            ]
            findings_frame = _concat(
                [
                    findings_frame,
                    _findings(proposals.index[pending], policy.id, APPROVAL_SEVERITY, messages),
                ]
            )
        return Supervision(
            pd.Series(verdicts, index=proposals.index),
            findings_frame,
            schema,
            rules,
            vetoes,
            required,
            False,
            integrity=integrity_counts,
        )

    def approval_policy(self, proposals: pd.DataFrame) -> ApprovalPolicy | None:
        """The agent's approval policy; the human-in-the-loop one when it has none and its agent asks for people."""
        if self.approval is None and HUMAN_APPROVALS in proposals.columns:
            return HUMAN_IN_THE_LOOP
        return self.approval

    def _required_approvals(self, proposals: pd.DataFrame, rejected: np.ndarray) -> pd.Series:
        policy = self.approval_policy(proposals)
        if policy is None:
            return pd.Series(0, index=proposals.index)
        required = policy.required_approvals(proposals)
        if HUMAN_APPROVALS in proposals.columns:  # whatever the policy says, never fewer people than were asked for
            required = np.maximum(required, HUMAN_IN_THE_LOOP.required_approvals(proposals))
        actionable = proposals["action"].ne(HOLD).to_numpy() & ~rejected
        return required.where(actionable, 0)

    def _rule_blocked(self, proposals, schema, rules, vetoes, findings, rejected, no_approvals) -> Supervision:
        first = findings[findings["severity"] == ERROR].iloc[0]["message"]
        why = f"batch blocked: {int(rejected.sum())} proposal(s) rejected, e.g. {first}"
        blocked = _concat([findings, _findings(proposals.index, BATCH_BLOCKED, ERROR, [why] * len(proposals))])
        verdicts = pd.Series(REJECTED, index=proposals.index)
        return Supervision(verdicts, blocked, schema, rules, vetoes, no_approvals, True, why)

    def _schema_blocked(self, proposals: pd.DataFrame, schema: SchemaReport, no_approvals) -> Supervision:
        why = f"proposals table failed its schema ({len(schema.failure_cases)} failure case(s))"
        table_wide = "; ".join(schema.table_failures)
        messages = []
        for position in proposals.index:
            own = schema.row_messages(position) if position in schema.failed_rows else []
            detail = "; ".join(own) or table_wide or "another proposal in the batch failed the schema"
            messages.append(f"{why}: {detail}")
        findings = _findings(proposals.index, SCHEMA_RULE, ERROR, messages)
        verdicts = pd.Series(REJECTED, index=proposals.index)
        return Supervision(verdicts, findings, schema, None, {}, no_approvals, True, why)


def _findings(positions, rule: str, severity: str, messages: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"position": list(positions), "rule": rule, "severity": severity, "message": messages})


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=FINDING_COLUMNS)
