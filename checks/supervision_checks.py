"""The Supervisor as Dagster asset checks on ``<agent>_proposals``.

One multi-asset check op reviews a proposals partition, writes every proposal's verdict to
the decision log in one transaction (with the batch record and any approval requests) — the
executor reads those, never the agent's own claims — and reports blocking checks:

* ``proposals_schema``: the pandera schema; a failure is ERROR and blocks the batch;
* ``business_rules``: the rules; WARN when rejected proposals are dropped, ERROR when the
  agent's policy blocks the batch;
* ``reviewer`` (when the agent has reviewers): their vetoes, with the same severity policy;
* ``human_approval`` (when it has an approval policy): WARN while proposals await approval.

A failed ERROR check stops the executor in the same run; each partition has its own verdict.
The agent proposals that its baseline replaced (``foureyes.checks.replaced_proposals``) are
recorded as the rejections they are, each just before the row that stands in for it.
"""

import math
import uuid
import warnings
from collections.abc import Mapping, Sequence

import dagster as dg
import pandas as pd

from foureyes.checks.integrity import INTEGRITY_RULES
from foureyes.checks.replaced_proposals import FILLED_BY_BASELINE, INFO, ReplacedProposal, replaced_in
from foureyes.checks.supervisor import BLOCK, HOLD, Supervision, Supervisor
from foureyes.checks.verdict_summary import summarise_decisions
from foureyes.resources.asset_inputs import AssetInput
from foureyes.resources.control_plane.agent_runs import AgentRunRecord
from foureyes.resources.control_plane.agent_state import DEFAULT_LIVENESS, SUPERVISING, Liveness
from foureyes.resources.control_plane.approvals import ApprovalRequest
from foureyes.resources.control_plane.decisions import (
    APPROVED,
    FAILED,
    PENDING,
    REJECTED,
    Decision,
    Reason,
    SupervisionRecord,
)
from foureyes.resources.control_plane.outbox import OutboxEntry
from foureyes.resources.control_plane.principals import agent_principal
from foureyes.resources.control_plane.receipts import idempotency_key
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.errors import InputDataError
from foureyes.resources.fallback.inputs import InputServer
from foureyes.resources.json_values import json_records
from foureyes.resources.markdown import markdown_table
from foureyes.resources.redaction import scrub
from foureyes.resources.resource_keys import CONTROL_PLANE, DEFAULT_TARGET, FALLBACK, INPUT_IO_MANAGER, WAREHOUSE

SCHEMA_CHECK = "proposals_schema"
RULES_CHECK = "business_rules"
REVIEWER_CHECK = "reviewer"
APPROVAL_CHECK = "human_approval"
REQUESTED_BY_TAG = "foureyes/requested_by"
SAMPLE_SIZE = 20


def supervision_checks(
    *,
    agent: str,
    proposals_key: dg.AssetKey,
    partitions_def: dg.PartitionsDefinition | None,
    supervisor: Supervisor,
    references: Sequence[AssetInput] = (),
    target: str = DEFAULT_TARGET,
    actions: Sequence[str] | None = None,
    liveness: Liveness = DEFAULT_LIVENESS,
) -> dg.AssetChecksDefinition:
    """Build the blocking asset checks that supervise one agent's proposals.

    Examples:
        >>> import dagster as dg
        >>> import pandera.pandas as pa
        >>> from foureyes.checks import Supervisor
        >>> from foureyes.checks.supervision_checks import supervision_checks
        >>> checks = supervision_checks(
        ...     agent="var_risk",
        ...     proposals_key=dg.AssetKey("var_risk_proposals"),
        ...     partitions_def=None,
        ...     supervisor=Supervisor(schema=pa.DataFrameSchema({"action": pa.Column(str)})),
        ... )
        >>> sorted((spec.name, spec.blocking) for spec in checks.check_specs)
        [('business_rules', True), ('proposals_schema', True)]
        >>> sorted(checks.required_resource_keys)
        ['books', 'foureyes_control_plane', 'foureyes_fallback', 'foureyes_warehouse', 'io_manager']
    """
    severity = dg.AssetCheckSeverity.ERROR if supervisor.on_rejection == BLOCK else dg.AssetCheckSeverity.WARN
    with warnings.catch_warnings():  # partitioned check specs are a Dagster preview feature
        warnings.simplefilter("ignore", dg.PreviewWarning)
        specs = _specs(proposals_key, partitions_def, supervisor, references)

    @dg.multi_asset_check(
        specs=specs,
        name=f"{agent}_supervisor",
        description=f"Supervisor of {agent}: one verdict per proposal, written to the decision log.",
        required_resource_keys={WAREHOUSE, CONTROL_PLANE, FALLBACK, INPUT_IO_MANAGER, target},
    )
    def _supervise(context: dg.AssetCheckExecutionContext):
        partition = context.partition_key if partitions_def is not None else None
        control_plane: ControlPlaneResource = getattr(context.resources, CONTROL_PLANE)
        with control_plane.state.tracking(
            agent, partition or "", SUPERVISING, run_id=context.run.run_id, liveness=liveness
        ):
            stored = getattr(context.resources, WAREHOUSE).read_partition(proposals_key, partition)
            try:
                results = _supervised(context, partition, stored)
            except Exception as exc:  # a supervision that breaks is recorded as failed, and blocks
                results = _failed(context, partition, stored.record.version, exc)
        yield from results

    def _supervised(context, partition, stored) -> list[dg.AssetCheckResult]:
        control_plane = getattr(context.resources, CONTROL_PLANE)
        proposals = stored.frame
        agent_run = control_plane.agent_runs.latest(agent, partition or "", stored.record.version)
        served = {i["input"]: i["served"] for i in (agent_run.inputs if agent_run else []) if i.get("served")}
        with getattr(context.resources, FALLBACK).server(context.op_execution_context) as inputs:
            refs = references_as_served(inputs, references, partition, served)
        accepted = accepted_actions(actions, getattr(context.resources, target).actions)
        supervision = supervisor.review(proposals, refs, accepted_actions=accepted)
        replaced = replaced_in(proposals)
        record = SupervisionRecord(
            supervision_id=uuid.uuid4().hex,
            agent=agent,
            partition=partition or "",
            proposals_version=stored.record.version,
            blocked=supervision.blocked,
            block_reason=supervision.block_reason,
            counts=_counts(proposals, supervision, replaced),
            run_id=context.run.run_id,
        )
        proposer = context.run.tags.get(REQUESTED_BY_TAG, agent_principal(agent))
        decisions = _decisions(record, proposals, supervision, agent_run, replaced)
        control_plane.decision_log.record(
            decisions,
            supervision=record,
            approvals=_approval_requests(record, proposals, supervision, supervisor, proposer, target),
            actions=_approved_actions(decisions, target) if not supervision.blocked else [],
        )
        common = {
            "proposals_version": record.proposals_version,
            "supervision_id": record.supervision_id,
            **record.counts,
        }
        results = [
            _schema_result(proposals_key, supervision, common),
            _rules_result(proposals_key, supervision, common, severity, proposals, summarise_decisions(decisions)),
        ]
        if supervisor.reviewers:
            results.append(_reviewer_result(proposals_key, supervision, common, severity, proposals))
        if supervisor.approval is not None:
            results.append(_approval_result(proposals_key, supervision, common))
        return results

    def _failed(context, partition, version: str, exc: Exception) -> list[dg.AssetCheckResult]:
        why = f"supervision failed ({type(exc).__name__}: {scrub(exc)[:500]}): nothing of this version executes"
        context.log.error(f"{agent} {partition}: {why}")
        record = SupervisionRecord(
            supervision_id=uuid.uuid4().hex,
            agent=agent,
            partition=partition or "",
            proposals_version=version,
            blocked=True,
            block_reason=why,
            counts={},
            run_id=context.run.run_id,
            status=FAILED,
        )
        getattr(context.resources, CONTROL_PLANE).decision_log.record([], supervision=record)
        metadata = {"proposals_version": version, "supervision_id": record.supervision_id, "failure": why}
        return [
            dg.AssetCheckResult(
                check_name=spec.name,
                asset_key=proposals_key,
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata=metadata,
                description=why,
            )
            for spec in specs
        ]

    return _supervise


def references_as_served(
    inputs: InputServer,
    references: Sequence[AssetInput],
    partition: str | None,
    served: Mapping[str, str],
) -> dict[str, pd.DataFrame]:
    """The supervisor judges on what the agent was served (``served``: asset -> partition), stale or not.

    A reference the agent did not read is resolved like an agent input: the requested
    partition, or the last known good one.
    """
    frames = {}
    for ref in references:
        if ref.asset in served:
            frames[ref.name] = inputs.load(ref, served[ref.asset])
            continue
        resolved = inputs.serve(ref, partition)
        if resolved.frame is None:
            raise InputDataError(f"the supervisor cannot read {ref.asset}: {resolved.describe()}")
        frames[ref.name] = resolved.frame
    return frames


def accepted_actions(agent_actions: Sequence[str] | None, target_actions: Sequence[str] | None) -> list[str] | None:
    """What may be executed: the actions the agent declares that its target also accepts.

    A target that declares none (SQL books shared by agents) accepts what each agent declares.
    """
    if target_actions is None:
        return list(agent_actions) if agent_actions is not None else None
    if agent_actions is None:
        return list(target_actions)
    return [a for a in agent_actions if a in target_actions]


def _specs(proposals_key, partitions_def, supervisor: Supervisor, references) -> list[dg.AssetCheckSpec]:
    deps = [r.key for r in references if r.key != proposals_key]
    policy = "the whole batch is blocked" if supervisor.on_rejection == BLOCK else "rejected proposals are dropped"
    rule_ids = ", ".join(r.id for r in supervisor.rules) or "none"

    def spec(name: str, description: str, blocking: bool = True) -> dg.AssetCheckSpec:
        return dg.AssetCheckSpec(
            name,
            asset=proposals_key,
            blocking=blocking,
            partitions_def=partitions_def,
            description=description,
            additional_deps=deps,
        )

    specs = [
        spec(SCHEMA_CHECK, "The proposals satisfy the agent's pandera schema; a failure blocks the batch."),
        spec(RULES_CHECK, f"Every proposal passes the business rules ({rule_ids}); on failure {policy}."),
    ]
    if supervisor.reviewers:
        names = ", ".join(r.id for r in supervisor.reviewers)
        specs.append(spec(REVIEWER_CHECK, f"No reviewer ({names}) vetoes a proposal; on a veto {policy}."))
    if supervisor.approval is not None:
        specs.append(
            spec(
                APPROVAL_CHECK,
                f"Proposals caught by '{supervisor.approval.id}' wait for human approval: "
                f"{supervisor.approval.description}",
                blocking=False,
            )
        )
    return specs


def _counts(
    proposals: pd.DataFrame, supervision: Supervision, replaced: Mapping[object, tuple[ReplacedProposal, ...]]
) -> dict[str, int]:
    """Verdicts per decision recorded: the agent's proposals the baseline replaced count as the rejections they are."""
    filled = sum(len(r) for r in replaced.values())
    counts = {
        "proposals": len(proposals) + filled,
        "approved": supervision.count(APPROVED),
        "rejected": supervision.count(REJECTED) + filled,
        "pending": supervision.count(PENDING),
    }
    return counts | ({FILLED_BY_BASELINE: filled} if filled else {})


def _sample(findings: pd.DataFrame, proposals: pd.DataFrame, rules: set[str] | None = None) -> str | None:
    shown = findings if rules is None else findings[findings["rule"].isin(rules)]
    if shown.empty:
        return None
    shown = shown.head(SAMPLE_SIZE)
    table = pd.DataFrame(
        {
            "proposal_id": proposals.loc[shown["position"], "proposal_id"].to_numpy(),
            "rule": shown["rule"].to_numpy(),
            "message": shown["message"].to_numpy(),
        }
    )
    return markdown_table(table)


def _schema_result(key: dg.AssetKey, supervision: Supervision, common: dict) -> dg.AssetCheckResult:
    cases = supervision.schema.failure_cases
    metadata = {**common, "failure_cases": len(cases)}
    if not cases.empty:
        sample = cases[["column", "check", "failure_case", "index"]].head(SAMPLE_SIZE).astype(str)
        metadata["failure_sample"] = dg.MetadataValue.md(markdown_table(sample))
    return dg.AssetCheckResult(
        check_name=SCHEMA_CHECK,
        asset_key=key,
        passed=supervision.schema.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
        description=None if supervision.schema.passed else supervision.block_reason,
    )


def _rules_result(key, supervision: Supervision, common, severity, proposals, verdicts: str) -> dg.AssetCheckResult:
    metadata: dict[str, object] = {
        **common,
        "verdicts": dg.MetadataValue.md(verdicts),
        **{f"rule/{rule_id}": n for rule_id, n in supervision.integrity.items()},
    }
    if supervision.rules is None:
        metadata["skipped"] = "schema failed: rules were not evaluated"
        return dg.AssetCheckResult(
            check_name=RULES_CHECK,
            asset_key=key,
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata=metadata,
            description="not evaluated: the proposals table failed its schema",
        )
    counts = {**supervision.integrity, **supervision.rules.counts()}
    metadata |= {f"rule/{rule_id}": n for rule_id, n in counts.items()}
    sample = _sample(supervision.findings, proposals, set(counts))
    if sample:
        metadata["failure_sample"] = dg.MetadataValue.md(sample)
    findings = supervision.findings
    broken = proposals.index.isin(findings.loc[findings["rule"].isin(INTEGRITY_RULES), "position"])
    rejected_by_rules = int((supervision.rules.rejected().to_numpy() | broken).sum())
    blocked = supervision.blocked
    return dg.AssetCheckResult(
        check_name=RULES_CHECK,
        asset_key=key,
        passed=rejected_by_rules == 0 and not blocked,
        severity=severity if rejected_by_rules else dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
        description=supervision.block_reason
        or (f"{rejected_by_rules} proposal(s) rejected" if rejected_by_rules else None),
    )


def _reviewer_result(key, supervision: Supervision, common, severity, proposals) -> dg.AssetCheckResult:
    metadata: dict[str, object] = {**common, **{f"vetoes/{r}": n for r, n in supervision.vetoes.items()}}
    sample = _sample(supervision.findings, proposals, set(supervision.vetoes))
    if sample:
        metadata["veto_sample"] = dg.MetadataValue.md(sample)
    vetoed = sum(supervision.vetoes.values())
    return dg.AssetCheckResult(
        check_name=REVIEWER_CHECK,
        asset_key=key,
        passed=vetoed == 0,
        severity=severity,
        metadata=metadata,
        description=f"{vetoed} proposal(s) vetoed" if vetoed else None,
    )


def _approval_result(key, supervision: Supervision, common) -> dg.AssetCheckResult:
    pending = supervision.count(PENDING)
    four_eyes = int((supervision.required_approvals > 1).sum())
    return dg.AssetCheckResult(
        check_name=APPROVAL_CHECK,
        asset_key=key,
        passed=pending == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={**common, "needs_two_approvers": four_eyes},
        description=f"{pending} proposal(s) await approval: `foureyes approvals list`" if pending else None,
    )


def _decisions(
    record: SupervisionRecord,
    proposals: pd.DataFrame,
    supervision: Supervision,
    agent_run: AgentRunRecord | None,
    replaced: Mapping[object, tuple[ReplacedProposal, ...]],
) -> list[Decision]:
    """One decision per row, each preceded by the rejected agent proposals that row replaced."""
    reasons = supervision.reasons()
    run_tier = agent_run.tier if agent_run else None
    model = agent_run.model if agent_run else None
    decisions = []

    def decision(proposal_id: str, proposal: dict, verdict: str, why: tuple[Reason, ...], by_model: bool) -> Decision:
        tier = proposal.get("tier")
        return Decision(
            agent=record.agent,
            partition=record.partition,
            proposal_id=proposal_id,
            proposals_version=record.proposals_version,
            supervision_id=record.supervision_id,
            action=str(proposal.get("action") or "unknown"),
            proposal=proposal,
            rationale=str(proposal.get("rationale") or ""),
            confidence=_finite_number(proposal.get("confidence")),
            verdict=verdict,
            reasons=why,
            run_id=record.run_id,
            tier=tier if isinstance(tier, str) and tier else run_tier,
            model=model if by_model else None,
            decided_at=record.supervised_at,
        )

    for position, proposal, verdict in zip(
        proposals.index, json_records(proposals), supervision.verdicts.to_numpy(), strict=True
    ):
        proposal_id = str(proposal.get("proposal_id") or f"row-{position}")
        own = reasons.get(position, ())
        replacing = replaced.get(position, ())
        if replacing:
            filled_by = Reason(
                FILLED_BY_BASELINE,
                INFO,
                f"replaced by the baseline's proposal {proposal_id} ({proposal.get('action')}): nothing of it executes",
            )
            decisions += [
                decision(r.proposal_id, dict(r.proposal), REJECTED, (*r.reasons, filled_by), True) for r in replacing
            ]
            own += tuple(Reason(FILLED_BY_BASELINE, INFO, f"in place of the agent's {r.describe()}") for r in replacing)
        decisions.append(decision(proposal_id, proposal, str(verdict), own, not replacing))
    return decisions


def _finite_number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _approved_actions(decisions: list[Decision], target: str) -> list[OutboxEntry]:
    """The outbox entries of approved actions, committed with their verdicts."""
    return [
        OutboxEntry(
            idempotency_key=idempotency_key(d.agent, d.partition, d.proposal_id, d.action),
            agent=d.agent,
            partition=d.partition,
            proposal_id=d.proposal_id,
            proposals_version=d.proposals_version,
            action=d.action,
            target=target,
            payload=d.proposal,
            rationale=d.rationale,
        )
        for d in decisions
        if d.verdict == APPROVED and d.action != HOLD
    ]


def _approval_requests(
    record: SupervisionRecord,
    proposals: pd.DataFrame,
    supervision: Supervision,
    supervisor: Supervisor,
    proposer: str,
    target: str,
) -> list[ApprovalRequest]:
    pending = (supervision.verdicts == PENDING).to_numpy()
    policy = supervisor.approval_policy(proposals)
    if policy is None or not pending.any():
        return []
    rows = proposals.loc[pending]
    return [
        ApprovalRequest(
            agent=record.agent,
            partition=record.partition,
            proposal_id=str(row["proposal_id"]),
            proposals_version=record.proposals_version,
            policy=policy.id,
            required=int(required),
            proposer=proposer,
            summary=policy.describe(row),
            expires_at=record.supervised_at + policy.expires_after,
            action=str(row.get("action")),
            target=target,
            payload=payload,
            rationale=str(row.get("rationale") or ""),
            run_id=record.run_id,
        )
        for row, payload, required in zip(
            rows.to_dict("records"), json_records(rows), supervision.required_approvals[pending], strict=True
        )
    ]
