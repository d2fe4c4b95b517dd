"""Sensors that keep the supervisor loop moving with nobody watching.

``foureyes_outbox``: relaunches executors whose queued actions are due for another attempt.

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

from agent_assets.automation import RESCAN
from resources.approvals import APPROVED
from resources.control_plane import ControlPlaneResource
from resources.outbox import QUEUED

APPROVALS_SENSOR = "foureyes_approvals"


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


OUTBOX_SENSOR = "foureyes_outbox"


def outbox_sensor(agents: Sequence[str], minimum_interval_seconds: int = 30) -> dg.SensorDefinition:
    """Relaunch ``<agent>_actions`` for partitions whose queued actions are due for another try.

    An action lands back in the outbox when its target was down or erring; its next attempt is
    scheduled with exponential backoff. This sensor notices when one is due and launches the
    executor of its partition, which delivers it (and anything else due there).

    Examples:
        .. code-block:: python

            defs = dg.Definitions(assets=[...], sensors=[outbox_sensor(["rebalancing"])])
    """
    targets = {agent: dg.AssetKey(f"{agent}_actions") for agent in agents}

    @dg.sensor(
        name=OUTBOX_SENSOR,
        minimum_interval_seconds=minimum_interval_seconds,
        target=dg.AssetSelection.assets(*targets.values()),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Retries queued actions when their backoff has passed.",
    )
    def _sensor(context: dg.SensorEvaluationContext, control_plane: ControlPlaneResource):
        due: dict[tuple[str, str], list[str]] = defaultdict(list)
        now = dt.datetime.now(dt.UTC)
        for entry in control_plane.outbox.find(status=QUEUED, due_by=now):
            if entry.attempts > 0 and entry.agent in targets:  # first attempts belong to the run that queued them
                due[(entry.agent, entry.partition)].append(f"{entry.idempotency_key}:{entry.attempts}")
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"outbox:{agent}:{partition}:{_digest(keys)}",
                    partition_key=partition,
                    asset_selection=[targets[agent]],
                    tags={"foureyes/trigger": "outbox_retry"},
                )
                for (agent, partition), keys in sorted(due.items())
            ]
        )

    return _sensor
