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

import json
import math
import uuid
import warnings
from collections.abc import Mapping, Sequence

import dagster as dg
import numpy as np
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
    DecisionColumns,
    Reason,
    SupervisionRecord,
    json_string,
    json_text,
    reasons_text,
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
) -> DecisionColumns:
    """One decision per row, each preceded by the rejected agent proposals that row replaced.

    Built column by column from the table (a million proposals are a million string formats,
    not a million objects): each row's proposal is its ``json_records`` dict as JSON text.
    """
    labels = proposals.index
    model = agent_run.model if agent_run else None
    run_tier = agent_run.tier if agent_run else None
    reasons = supervision.reasons()
    reason_texts = ["[]"] * len(proposals)
    for i in np.flatnonzero(labels.isin(list(reasons))):
        reason_texts[i] = reasons_text(reasons[labels[i]])
    columns: dict[str, list] = {
        "proposal_id": _texts(proposals, "proposal_id", labels),
        "action": _texts(proposals, "action", "unknown"),
        "proposal": _json_texts(proposals),
        "rationale": _texts(proposals, "rationale", ""),
        "confidence": _finite_numbers(proposals, "confidence"),
        "verdict": list(map(str, supervision.verdicts.to_numpy().tolist())),
        "reasons": reason_texts,
        "tier": _tiers(proposals, run_tier),
        "model": [model] * len(proposals),
    }
    same = {
        "agent": record.agent,
        "partition_key": record.partition,
        "proposals_version": record.proposals_version,
        "supervision_id": record.supervision_id,
        "run_id": record.run_id,
        "decided_at": record.supervised_at,
    }
    if replaced:
        columns = _with_replaced(record, labels, columns, replaced, run_tier, model)
    return DecisionColumns(columns, same)


def _with_replaced(record, labels, columns, replaced, run_tier, model) -> dict[str, list]:
    """Put before each row the agent proposals it replaced, rejected; the row notes each and has no model."""
    inserted: dict[int, list[dict]] = {}
    for i in np.flatnonzero(labels.isin(list(replaced))):
        replacing = replaced[labels[i]]
        own_id, action = columns["proposal_id"][i], json.loads(columns["proposal"][i]).get("action")
        filled_by = Reason(
            FILLED_BY_BASELINE, INFO, f"replaced by the baseline's proposal {own_id} ({action}): nothing of it executes"
        )
        own = tuple(json.loads(columns["reasons"][i]))
        notes = tuple(Reason(FILLED_BY_BASELINE, INFO, f"in place of the agent's {r.describe()}") for r in replacing)
        columns["reasons"][i] = reasons_text((*(Reason(**r) for r in own), *notes))
        columns["model"][i] = None
        inserted[int(i)] = DecisionColumns.of(
            Decision(
                agent=record.agent,
                partition=record.partition,
                proposal_id=r.proposal_id,
                proposals_version=record.proposals_version,
                supervision_id=record.supervision_id,
                action=str(r.proposal.get("action") or "unknown"),
                proposal=dict(r.proposal),
                rationale=str(r.proposal.get("rationale") or ""),
                confidence=_finite_number(r.proposal.get("confidence")),
                verdict=REJECTED,
                reasons=(*r.reasons, filled_by),
                run_id=record.run_id,
                tier=_tier(r.proposal.get("tier"), run_tier),
                model=model,
                decided_at=record.supervised_at,
            )
            for r in replacing
        ).columns
    spliced: dict[str, list] = {}
    for name, values in columns.items():
        out, start = [], 0
        for i, rows in inserted.items():
            out += values[start:i]
            out += rows[name]
            start = i
        spliced[name] = out + values[start:]
    return spliced


def _tier(proposed: object, run_tier: str | None) -> str | None:
    """A row's own tier (a fallback row says so), else its run's."""
    return proposed if isinstance(proposed, str) and proposed else run_tier


def _tiers(proposals: pd.DataFrame, run_tier: str | None) -> list[str | None]:
    if "tier" in proposals.columns and _is_plain_text(proposals["tier"]):
        return [v or run_tier for v in proposals["tier"].tolist()]
    return [_tier(v, run_tier) for v in _values(proposals, "tier")]


def _texts(proposals: pd.DataFrame, name: str, default: str | pd.Index) -> list[str]:
    """``str(value or default)`` for each value of a column; given the index, the default is ``row-<label>``."""
    if name in proposals.columns and _is_plain_text(proposals[name]):
        values = proposals[name].tolist()
        if all(values):  # nothing to replace: the common case, a million times
            return values
    else:
        values = _values(proposals, name)
    defaults = [f"row-{p}" for p in default] if isinstance(default, pd.Index) else [default] * len(values)
    return [str(v or d) for v, d in zip(values, defaults, strict=True)]


def _values(proposals: pd.DataFrame, name: str) -> list[object]:
    """A column's JSON-safe values, as ``json_records`` gives them (None throughout if it is absent)."""
    if name not in proposals.columns:
        return [None] * len(proposals)
    column = proposals[name]
    if _is_plain_text(column):
        return column.tolist()
    return [row["v"] for row in json_records(column.to_frame("v"))]


def _finite_numbers(proposals: pd.DataFrame, name: str) -> list[float | None]:
    """``_finite_number`` of each value of a column, vectorised for numpy floats."""
    column = proposals.get(name)
    if column is not None and isinstance(column.dtype, np.dtype) and column.dtype.kind == "f":
        values = column.to_numpy(dtype=float)
        return np.where(np.isfinite(values), values, None).tolist()
    return [_finite_number(v) for v in _values(proposals, name)]


def _json_texts(proposals: pd.DataFrame) -> list[str]:
    """Each row's JSON text: exactly ``json_text`` of its ``json_records`` dict, one template per row."""
    names = [str(c) for c in proposals.columns]
    if not names or len(set(names)) < len(names):  # a dict keeps one value per name: let it say which
        return [json_text(row) for row in json_records(proposals)]
    template = "{" + ",".join(json_text(n).replace("%", "%%") + ":%s" for n in names) + "}"
    texts = [_json_fragments(proposals.iloc[:, i]) for i in range(proposals.shape[1])]
    return [template % row for row in zip(*texts, strict=True)]


def _json_fragments(column: pd.Series) -> list[str]:
    """One column's values as the JSON text ``json_records`` then ``json_text`` would give them."""
    if isinstance(column.dtype, np.dtype) and column.dtype.kind == "f":  # NaN is null, infinities text
        values = column.to_numpy(dtype=float)
        texts = np.array(list(map(float.__repr__, values.tolist())), dtype=object)
        texts[np.isnan(values)] = "null"
        texts[np.isposinf(values)] = '"inf"'
        texts[np.isneginf(values)] = '"-inf"'
        return texts.tolist()
    if isinstance(column.dtype, np.dtype) and column.dtype.kind == "b":
        return np.where(column.to_numpy(), "true", "false").tolist()
    if isinstance(column.dtype, np.dtype) and column.dtype.kind in "iu":
        return list(map(int.__repr__, column.tolist()))
    if not _is_plain_text(column):
        return list(map(json_text, _values(column.to_frame("v"), "v")))
    codes, distinct = pd.factorize(column)
    if len(distinct) > len(column) // 2:  # ids: each value once anyway
        return list(map(json_string, column.tolist()))
    return np.array(list(map(json_string, distinct)), dtype=object)[codes].tolist()


def _is_plain_text(column: pd.Series) -> bool:
    """Only strings, none missing: ``json_records`` passes these through as they are."""
    return column.dtype == object and pd.api.types.infer_dtype(column, skipna=False) == "string"


def _finite_number(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _approved_actions(decisions: DecisionColumns, target: str) -> list[OutboxEntry]:
    """The outbox entries of approved actions, committed with their verdicts."""
    chosen = (
        i
        for i, (verdict, action) in enumerate(
            zip(decisions.columns["verdict"], decisions.columns["action"], strict=True)
        )
        if verdict == APPROVED and action != HOLD
    )
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
        for d in map(decisions.decision, chosen)
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
