"""The Executor stage: asset ``<agent>_actions`` delivers approved actions, at most once each.

Approved actions were queued in the outbox in the same transaction as their verdict (or as
the human approval that granted them). The executor delivers this partition's queued
actions that are still executable — approved, or pending and since granted, in the latest
supervision of exactly the proposals version now stored — and cancels, with the reason, any
that no longer are. Each delivery holds a lease on its outbox row, sends the idempotency key,
and writes the receipt only when the target confirmed. A target that certainly did not get
the action leaves it queued with backoff (the ``foureyes_outbox`` sensor relaunches the
executor when it is due); a delivery that may have arrived unconfirmed is sent again only to
a target that deduplicates, and is otherwise put in doubt, raising an alert, for a human.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import dagster as dg
import pandas as pd

from foureyes.checks.supervisor import HOLD
from foureyes.checks.verdict_summary import SHOWN, verdict_summary
from foureyes.observe.step_lineage import open_step, recorded_version
from foureyes.resources.control_plane.agent_state import DEFAULT_LIVENESS, EXECUTING, Liveness
from foureyes.resources.control_plane.alerts import ACTION_IN_DOUBT
from foureyes.resources.control_plane.approvals import APPROVED as APPROVAL_GRANTED
from foureyes.resources.control_plane.decisions import APPROVED, PENDING, Decision, SupervisionRecord
from foureyes.resources.control_plane.outbox import DELIVERED, DELIVERING, QUEUED, OutboxEntry
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.control_plane.tool_calls import TOOL, ToolCall
from foureyes.resources.errors import TargetRefusedError, TargetUnavailableError
from foureyes.resources.lineage.emitter import LINEAGE_HOOKS, OpenLineageResource
from foureyes.resources.markdown import asset_link, markdown_table
from foureyes.resources.redaction import scrub
from foureyes.resources.resource_keys import CONTROL_PLANE, IO_MANAGER, LINEAGE, WAREHOUSE
from foureyes.resources.targets.base import Action, ActionTarget
from foureyes.resources.warehouse.store import SqlWarehouseResource, versioned_output
from foureyes.stages import EXECUTE, agent_tags

ACTION_COLUMNS = ["proposal_id", "action", "idempotency_key", "status", "detail"]
EXECUTED, ALREADY_EXECUTED, RETRY_LATER, FAILED, CANCELLED, WAITING, IN_DOUBT = (
    "executed",
    "already_executed",
    "queued_for_retry",
    "failed",
    "cancelled",
    "waiting",
    "in_doubt",
)


@dataclass(frozen=True)
class Executable:
    """What the executor may act on for one proposals version, and why (for the record)."""

    decisions: tuple[Decision, ...]
    awaiting_approval: int
    note: str
    supervision: SupervisionRecord | None = None


def executable_decisions(control_plane: ControlPlaneResource, agent: str, partition: str, version: str) -> Executable:
    """The approved (or granted), actionable decisions of the latest supervision of exactly this version."""
    supervision = control_plane.decision_log.supervision(agent, partition, version)
    if supervision is None:
        return Executable((), 0, f"no supervision of proposals version {version[:12]}: nothing executed")
    if supervision.blocked:
        return Executable(
            (), 0, f"batch blocked by the supervisor ({supervision.block_reason}): nothing executed", supervision
        )
    decisions = control_plane.decision_log.of_supervision(
        supervision.supervision_id, verdicts=(APPROVED, PENDING), exclude_action=HOLD
    )
    approvals = (
        control_plane.approvals.for_version(agent, partition, version)
        if any(d.verdict == PENDING for d in decisions)
        else {}
    )
    ready, waiting = [], 0
    for decision in decisions:
        approval = approvals.get(decision.proposal_id)
        if decision.verdict == APPROVED or (approval is not None and approval.status == APPROVAL_GRANTED):
            ready.append(decision)
        elif approval is not None and approval.status == "pending":
            waiting += 1
    note = f"{len(ready)} approved action(s)" + (f", {waiting} awaiting approval" if waiting else "")
    return Executable(tuple(ready), waiting, note, supervision)


def deliver_partition(
    control_plane: ControlPlaneResource,
    *,
    agent: str,
    partition: str,
    proposals_version: str,
    target: ActionTarget,
    run_id: str | None,
    force: bool = False,
) -> tuple[list[dict], Executable]:
    """Deliver this partition's due outbox entries that are still executable; cancel the others."""
    executable = executable_decisions(control_plane, agent, partition, proposals_version)
    allowed = {d.proposal_id for d in executable.decisions}
    outbox = control_plane.outbox
    rows = []
    for entry in outbox.find(agent=agent, partition=partition):
        row = {
            "proposal_id": entry.proposal_id,
            "action": entry.action,
            "idempotency_key": entry.idempotency_key,
        }
        if entry.status == DELIVERED:
            rows.append(
                {
                    **row,
                    "status": ALREADY_EXECUTED,
                    "detail": f"delivered {entry.delivered_at:%Y-%m-%d %H:%M:%S}Z",
                }
            )
            continue
        if entry.status not in (QUEUED, DELIVERING):
            rows.append({**row, "status": entry.status, "detail": entry.last_error or ""})
            continue
        if entry.proposals_version != proposals_version or entry.proposal_id not in allowed:
            why = (
                f"superseded by proposals version {proposals_version[:12]}"
                if entry.proposals_version != proposals_version
                else "no longer approved by the latest supervision"
            )
            if entry.interrupted():  # it may have arrived: a human settles it, nothing cancels it silently
                rows.append({**row, "status": IN_DOUBT, "detail": _doubt(control_plane, entry, target, why)})
                continue
            outbox.cancel(entry.idempotency_key, why)
            rows.append({**row, "status": CANCELLED, "detail": why})
            continue
        if entry.interrupted() and not target.deduplicates:
            rows.append({**row, "status": IN_DOUBT, "detail": _doubt(control_plane, entry, target)})
            continue
        if not outbox.lease(entry.idempotency_key, run_id, force=force, reclaim=target.deduplicates):
            due = entry.next_attempt_at  # always set on a stored entry
            rows.append(
                {
                    **row,
                    "status": WAITING,
                    "detail": f"next attempt {due:%H:%M:%S}Z ({entry.last_error or 'in flight'})",
                }
            )
            continue
        rows.append({**row, **deliver(control_plane, entry, target, run_id)})
    return rows, executable


def deliver(control_plane: ControlPlaneResource, entry: OutboxEntry, target: ActionTarget, run_id: str | None) -> dict:
    """One delivery attempt of a leased entry: receipt on confirmation; queued, in doubt or failed otherwise."""
    outbox = control_plane.outbox
    action = Action(
        entry.idempotency_key,
        entry.agent,
        entry.partition,
        entry.proposal_id,
        entry.action,
        entry.payload,
        entry.rationale,
    )
    started = time.perf_counter()
    try:
        result = target.execute(action)
    except TargetRefusedError as exc:
        outbox.fail(entry.idempotency_key, str(exc))
        outcome = {"status": FAILED, "detail": scrub(exc)}
    except Exception as exc:  # down, slow, 5xx, garbled, or a crash we cannot tell from one
        sent = exc.sent if isinstance(exc, TargetUnavailableError) else True
        if sent and not target.deduplicates:
            began = replace(entry, run_id=run_id)  # this run began it (``entry`` was read before the lease)
            outcome = {"status": IN_DOUBT, "detail": _doubt(control_plane, began, target, f"{exc}")}
        else:
            retried = outbox.retry_later(entry.idempotency_key, f"{type(exc).__name__}: {exc}")
            outcome = {
                "status": RETRY_LATER,
                "detail": scrub(f"{exc} (attempt {retried.attempts}; next {retried.next_attempt_at:%H:%M:%S}Z)"),
            }
    else:
        outbox.delivered(entry, run_id, {**result.detail, "target_status": result.status})
        outcome = {"status": EXECUTED, "detail": str(result.detail)}
    control_plane.tool_calls.record([_target_call(entry, target, outcome, started, run_id)])
    return outcome


def _doubt(
    control_plane: ControlPlaneResource, entry: OutboxEntry, target: ActionTarget, why: str | None = None
) -> str:
    """Put an unconfirmed delivery in doubt and raise an alert: only a human sends it again.

    Only a target that does not deduplicate gets here for an action still approved; one that
    deduplicates gets here when an interrupted delivery is no longer approved (it is not resent,
    and it may have arrived, so it is not cancelled silently either).
    """
    why = why or f"a delivery began (run {entry.run_id or '-'}) and no confirmation was recorded"
    held = (
        "may have received it, so it is not cancelled silently"
        if target.deduplicates
        else "does not deduplicate, so it is not sent again"
    )
    detail = scrub(
        f"{why}; {entry.target} {held}: check it there, then "
        f"`foureyes outbox retry {entry.idempotency_key[:12]}` if it did not arrive"
    )
    control_plane.outbox.in_doubt(entry.idempotency_key, detail)
    control_plane.alerts.raise_alert(ACTION_IN_DOUBT, f"{entry.agent} {entry.partition}", detail, entry.run_id)
    return detail


def _target_call(
    entry: OutboxEntry, target: ActionTarget, outcome: dict, started: float, run_id: str | None
) -> ToolCall:
    return ToolCall(
        agent=entry.agent,
        partition=entry.partition,
        stage="execute",
        kind=TOOL,
        tool=f"{entry.target} ({target.kind})",
        parameters={"action": entry.action, "idempotency_key": entry.idempotency_key, "payload": entry.payload},
        status=outcome["status"],
        latency_ms=round((time.perf_counter() - started) * 1000, 1),
        tries=entry.attempts + 1,
        detail=outcome["detail"],
        run_id=run_id,
        proposals_version=entry.proposals_version,
        proposal_id=entry.proposal_id,
    )


def actions_asset(
    *,
    agent: str,
    proposals_key: dg.AssetKey,
    actions_key: dg.AssetKey,
    partitions_def: dg.PartitionsDefinition,
    target: str,
    group: str,
    owners: Sequence[str] = (),
    tags: dict | None = None,
    liveness: Liveness = DEFAULT_LIVENESS,
) -> dg.AssetsDefinition:
    @dg.asset(
        key=actions_key,
        partitions_def=partitions_def,
        deps=[proposals_key],
        group_name=group,
        kinds={"executor", "pandas"},
        owners=list(owners) or None,
        hooks=LINEAGE_HOOKS,
        io_manager_key=IO_MANAGER,
        required_resource_keys={WAREHOUSE, LINEAGE, CONTROL_PLANE, target},
        description=(
            f"Executor of the {agent} agent: delivers approved actions from the outbox, at most once each "
            f"(idempotency key, receipt on confirmation), through the '{target}' target."
        ),
        tags={**agent_tags(agent, EXECUTE), **(tags or {})},
    )
    def _actions(context: dg.AssetExecutionContext):
        partition = context.partition_key
        warehouse: SqlWarehouseResource = getattr(context.resources, WAREHOUSE)
        lineage: OpenLineageResource = getattr(context.resources, LINEAGE)
        control_plane: ControlPlaneResource = getattr(context.resources, CONTROL_PLANE)
        action_target: ActionTarget = getattr(context.resources, target)
        with control_plane.state.tracking(agent, partition, EXECUTING, run_id=context.run.run_id, liveness=liveness):
            step = open_step(context, lineage, warehouse, extra_outputs=[action_target.dataset()])
            version = recorded_version(step, warehouse, proposals_key, partition).version
            rows, executable = deliver_partition(
                control_plane,
                agent=agent,
                partition=partition,
                proposals_version=version,
                target=action_target,
                run_id=context.run.run_id,
            )
        context.log.info(executable.note)
        actions = pd.DataFrame(rows, columns=ACTION_COLUMNS)
        counts = actions["status"].value_counts().to_dict()
        queued = int(counts.get(RETRY_LATER, 0) + counts.get(WAITING, 0))
        if queued:
            context.log.warning(f"{queued} action(s) queued in the outbox: the target did not confirm them yet")
        if counts.get(IN_DOUBT):
            context.log.error(f"{counts[IN_DOUBT]} action(s) in doubt: `foureyes outbox list --status in_doubt`")
        return versioned_output(
            actions,
            **{
                "proposals_version": version,
                "executor_note": executable.note,
                "awaiting_approval": executable.awaiting_approval,
                **{f"actions/{status}": int(n) for status, n in counts.items()},
                "summary": dg.MetadataValue.md(
                    executor_summary(control_plane, agent, partition, executable, version, actions, proposals_key)
                ),
            },
        )

    return _actions


def executor_summary(
    control_plane: ControlPlaneResource,
    agent: str,
    partition: str,
    executable: Executable,
    version: str,
    actions: pd.DataFrame,
    proposals_key: dg.AssetKey,
) -> str:
    """The executor's materialisation in the UI: what it acted on, the verdicts behind it, the tier."""
    run = control_plane.agent_runs.latest(agent, partition, version)
    supervision = executable.supervision  # the one the executor acted on, with its verdict counts
    verdicts = (
        verdict_summary(supervision.counts, control_plane.decision_log.first_to_read(supervision.supervision_id, SHOWN))
        if supervision
        else "_not supervised_"
    )
    proposals = asset_link(proposals_key, partition)
    lines = [
        f"Acted on {proposals} version `{version[:12]}`"
        + (f", tier **{run.tier}**" + (f" ({run.tier_reason})" if run.tier_reason else "") if run else ""),
        "",
        f"Every decision: `foureyes decisions --agent {agent} --partition {partition}`",
        "",
        "### Actions",
        markdown_table(actions.drop(columns=["detail"])) if len(actions) else "_none_",
        "",
        "### Supervisor verdicts",
        verdicts,
    ]
    stale = [i for i in (run.inputs if run else []) if i.get("stale")]
    if stale:
        lines += [
            "",
            "### Stale inputs",
            markdown_table(pd.DataFrame(stale)[["input", "requested", "served", "reason"]]),
        ]
    return "\n".join(lines)
