"""Sensors that keep the supervisor loop moving with nobody watching.

Each agent has its own (``<agent>_approvals``, ``<agent>_outbox``), so a project that puts
agents in its code location in several places — Python modules, ``defs.yaml`` components —
gets each agent's sensors once, named for it in the UI.

``foureyes_outbox``: relaunches executors whose queued actions are due for another attempt.

``foureyes_approvals``: each tick it expires approvals nobody decided in time (rejected by
default, recorded), then launches the executor of every agent partition where a human has
just granted an approval — so an approved action executes minutes after the second
approver's "yes", without anyone re-running the pipeline.
"""

import datetime as dt
import hashlib
from collections import defaultdict

import dagster as dg

from foureyes.resources.control_plane.approvals import APPROVED
from foureyes.resources.control_plane.outbox import QUEUED
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.resource_keys import CONTROL_PLANE

RESCAN = dt.timedelta(minutes=2)  # what a sensor reads again behind its cursor (late commits); run keys dedupe


def approvals_sensor(agent: str, actions: dg.AssetKey, minimum_interval_seconds: int = 30) -> dg.SensorDefinition:
    """Launch ``<agent>_actions`` for partitions whose approvals were granted; expire overdue ones."""

    @dg.sensor(
        name=f"{agent}_approvals",
        minimum_interval_seconds=minimum_interval_seconds,
        target=[actions],
        required_resource_keys={CONTROL_PLANE},
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Expires undecided approvals of {agent} and launches its executor for granted ones.",
    )
    def _sensor(context: dg.SensorEvaluationContext):
        control_plane: ControlPlaneResource = getattr(context.resources, CONTROL_PLANE)
        book = control_plane.approvals
        for expired in book.expire_overdue(agent=agent):
            context.log.warning(
                f"approval {expired.approval_id} ({expired.agent} {expired.partition}: {expired.summary}) "
                "expired undecided: rejected by default"
            )
        cursor = float(context.cursor) if context.cursor else 0.0
        since = max(0.0, cursor - RESCAN.total_seconds())
        decided = book.decided_after(since, agent=agent)
        granted: dict[str, list[str]] = defaultdict(list)
        for approval in decided:
            if approval.status == APPROVED:
                granted[approval.partition].append(approval.approval_id)
        requests = [
            dg.RunRequest(
                run_key=f"approvals:{agent}:{partition}:{_digest(ids)}",
                partition_key=partition,
                asset_selection=[actions],
                tags={"foureyes/trigger": "approval", "foureyes/approvals": ",".join(sorted(ids))[:200]},
            )
            for partition, ids in sorted(granted.items())
        ]
        newest = max((a.decided_at.timestamp() for a in decided if a.decided_at), default=cursor)
        return dg.SensorResult(run_requests=requests, cursor=str(max(cursor, newest)))

    return _sensor


def _digest(ids: list[str]) -> str:
    return hashlib.sha256(",".join(sorted(ids)).encode()).hexdigest()[:12]


def outbox_sensor(agent: str, actions: dg.AssetKey, minimum_interval_seconds: int = 30) -> dg.SensorDefinition:
    """Relaunch ``<agent>_actions`` for partitions whose queued actions are due for another try.

    An action lands back in the outbox when its target was down or erring; its next attempt is
    scheduled with exponential backoff. This sensor notices when one is due and launches the
    executor of its partition, which delivers it (and anything else due there).
    """

    @dg.sensor(
        name=f"{agent}_outbox",
        minimum_interval_seconds=minimum_interval_seconds,
        target=[actions],
        required_resource_keys={CONTROL_PLANE},
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Retries {agent}'s queued actions when their backoff has passed.",
    )
    def _sensor(context: dg.SensorEvaluationContext):
        control_plane: ControlPlaneResource = getattr(context.resources, CONTROL_PLANE)
        due: dict[str, list[str]] = defaultdict(list)
        now = dt.datetime.now(dt.UTC)
        for entry in control_plane.outbox.find(status=QUEUED, agent=agent, due_by=now):
            if entry.attempts > 0:  # first attempts belong to the run that queued them
                due[entry.partition].append(f"{entry.idempotency_key}:{entry.attempts}")
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"outbox:{agent}:{partition}:{_digest(keys)}",
                    partition_key=partition,
                    asset_selection=[actions],
                    tags={"foureyes/trigger": "outbox_retry"},
                )
                for partition, keys in sorted(due.items())
            ]
        )

    return _sensor
