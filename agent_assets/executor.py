"""The Executor stage: asset ``<agent>_actions`` acts on approved proposals only, at most once each.

It loads the proposals partition, then the supervisor's verdicts for exactly that version —
never the agent's own claims. A proposal is executable when its supervision did not block
the batch and its verdict is approved, or pending and since approved by enough humans before
its deadline. No supervision of this version means nothing is executed. Each executable
action's idempotency key is claimed (a receipt) before the target is called and confirmed
after, so re-runs, retries and concurrent runs never execute an action twice.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import dagster as dg
import pandas as pd

from agent_assets.step_lineage import open_step, read_recorded
from checks.supervisor import HOLD
from resources.action_targets import Action, ActionTarget
from resources.approvals import APPROVED as APPROVAL_GRANTED
from resources.control_plane import ControlPlaneResource
from resources.decision_log import APPROVED, PENDING, Decision
from resources.lineage import LINEAGE_HOOKS, OpenLineageResource
from resources.markdown import markdown_table
from resources.receipts import idempotency_key
from resources.warehouse import SqlWarehouseResource, versioned_output

ACTION_COLUMNS = ["proposal_id", "action", "idempotency_key", "status", "detail"]


@dataclass(frozen=True)
class Executable:
    """What the executor may act on for one proposals version, and why (for the record)."""

    decisions: tuple[Decision, ...]
    awaiting_approval: int
    note: str


def executable_decisions(
    control_plane: ControlPlaneResource, agent: str, partition: str, version: str
) -> Executable:
    """The approved, actionable decisions of the latest supervision of exactly this version."""
    supervision = control_plane.decision_log.supervision(agent, partition, version)
    if supervision is None:
        return Executable((), 0, f"no supervision of proposals version {version[:12]}: nothing executed")
    if supervision.blocked:
        return Executable(
            (), 0, f"batch blocked by the supervisor ({supervision.block_reason}): nothing executed"
        )
    decisions = control_plane.decision_log.of_supervision(supervision.supervision_id)
    approvals = (
        control_plane.approvals.for_version(agent, partition, version)
        if any(d.verdict == PENDING for d in decisions)
        else {}
    )
    ready, waiting = [], 0
    for decision in decisions:
        if decision.action == HOLD:
            continue
        if decision.verdict == APPROVED:
            ready.append(decision)
        elif decision.verdict == PENDING:
            approval = approvals.get(decision.proposal_id)
            if approval is not None and approval.status == APPROVAL_GRANTED:
                ready.append(decision)
            elif approval is not None and approval.status == "pending":
                waiting += 1
    note = f"{len(ready)} approved action(s)" + (f", {waiting} awaiting approval" if waiting else "")
    return Executable(tuple(ready), waiting, note)


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
) -> dg.AssetsDefinition:
    @dg.asset(
        key=actions_key,
        partitions_def=partitions_def,
        deps=[proposals_key],
        group_name=group,
        kinds={"python", "pandas"},
        owners=list(owners) or None,
        hooks=LINEAGE_HOOKS,
        required_resource_keys={"warehouse", "lineage", "control_plane", target},
        description=(
            f"Executor of the {agent} agent: acts on approved proposals only, at most once each "
            f"(idempotency key + receipt), through the '{target}' target."
        ),
        tags={"foureyes/stage": "execute", **(tags or {})},
    )
    def _actions(context: dg.AssetExecutionContext):
        partition = context.partition_key
        warehouse: SqlWarehouseResource = context.resources.warehouse
        lineage: OpenLineageResource = context.resources.lineage
        control_plane: ControlPlaneResource = context.resources.control_plane
        action_target: ActionTarget = getattr(context.resources, target)
        step = open_step(context, lineage, warehouse, extra_outputs=[action_target.dataset()])
        stored = read_recorded(step, warehouse, proposals_key, partition)
        executable = executable_decisions(control_plane, agent, partition, stored.record.version)
        context.log.info(executable.note)
        rows = [
            _execute(agent, partition, context.run.run_id, decision, target, action_target, control_plane)
            for decision in executable.decisions
        ]
        actions = pd.DataFrame(rows, columns=ACTION_COLUMNS)
        statuses = actions["status"].value_counts().to_dict()
        return versioned_output(
            actions,
            **{
                "proposals_version": stored.record.version,
                "executor_note": executable.note,
                "executable": len(executable.decisions),
                "awaiting_approval": executable.awaiting_approval,
                "executed": int(statuses.get("executed", 0)),
                "skipped": int(len(actions) - statuses.get("executed", 0)),
                "actions": dg.MetadataValue.md(markdown_table(actions.drop(columns=["detail"])))
                if len(actions)
                else "none",
            },
        )

    return _actions


def _execute(
    agent: str,
    partition: str,
    run_id: str,
    decision: Decision,
    target_key: str,
    target: ActionTarget,
    control_plane: ControlPlaneResource,
) -> dict:
    key = idempotency_key(agent, partition, decision.proposal_id, decision.action)
    receipts = control_plane.receipts
    claim = receipts.claim(
        key=key,
        agent=agent,
        partition=partition,
        proposal_id=decision.proposal_id,
        action=decision.action,
        target=f"{target_key}:{target.kind}",
        run_id=run_id,
    )
    row = {"proposal_id": decision.proposal_id, "action": decision.action, "idempotency_key": key}
    if not claim.may_execute:
        return {**row, "status": "skipped", "detail": claim.why}
    action = Action(
        key, agent, partition, decision.proposal_id, decision.action, decision.proposal, decision.rationale
    )
    try:
        result = target.execute(action)
    except Exception as exc:
        receipts.fail(key, {"error": f"{type(exc).__name__}: {exc}"})
        raise
    receipts.confirm(key, {**result.detail, "target_status": result.status})
    return {**row, "status": result.status, "detail": str(result.detail)}
