"""Sensors that keep the supervisor loop moving with nobody watching.

``foureyes_approvals``: each tick it expires approvals nobody decided in time (rejected by
default, recorded), then launches the executor of every agent partition where a human has
just granted an approval — so an approved action executes minutes after the second
approver's "yes", without anyone re-running the pipeline.
"""

import datetime as dt
import hashlib
from collections import defaultdict
from collections.abc import Sequence

import dagster as dg

from resources.approvals import APPROVED
from resources.control_plane import ControlPlaneResource

APPROVALS_SENSOR = "foureyes_approvals"
RESCAN = dt.timedelta(minutes=2)  # re-read recent decisions: a late commit is never missed; run keys dedupe


def approvals_sensor(agents: Sequence[str], minimum_interval_seconds: int = 30) -> dg.SensorDefinition:
    """Launch ``<agent>_actions`` for partitions whose approvals were granted; expire overdue ones.

    Examples:
        .. code-block:: python

            defs = dg.Definitions(assets=[...], sensors=[approvals_sensor(["var_risk", "margin_calls"])])
    """
    targets = {agent: dg.AssetKey(f"{agent}_actions") for agent in agents}

    @dg.sensor(
        name=APPROVALS_SENSOR,
        minimum_interval_seconds=minimum_interval_seconds,
        target=dg.AssetSelection.assets(*targets.values()),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Expires undecided approvals and launches executors for granted ones.",
    )
    def _sensor(context: dg.SensorEvaluationContext, control_plane: ControlPlaneResource):
        book = control_plane.approvals
        for expired in book.expire_overdue():
            context.log.warning(
                f"approval {expired.approval_id} ({expired.agent} {expired.partition}: {expired.summary}) "
                "expired undecided: rejected by default"
            )
        cursor = float(context.cursor) if context.cursor else 0.0
        since = max(0.0, cursor - RESCAN.total_seconds())
        decided = book.decided_after(since)
        granted: dict[tuple[str, str], list[str]] = defaultdict(list)
        for approval in decided:
            if approval.status == APPROVED and approval.agent in targets:
                granted[(approval.agent, approval.partition)].append(approval.approval_id)
        requests = [
            dg.RunRequest(
                run_key=f"approvals:{agent}:{partition}:{_digest(ids)}",
                partition_key=partition,
                asset_selection=[targets[agent]],
                tags={"foureyes/trigger": "approval", "foureyes/approvals": ",".join(sorted(ids))[:200]},
            )
            for (agent, partition), ids in sorted(granted.items())
        ]
        newest = max((a.decided_at.timestamp() for a in decided if a.decided_at), default=cursor)
        return dg.SensorResult(run_requests=requests, cursor=str(max(cursor, newest)))

    return _sensor


def _digest(ids: list[str]) -> str:
    return hashlib.sha256(",".join(sorted(ids)).encode()).hexdigest()[:12]
