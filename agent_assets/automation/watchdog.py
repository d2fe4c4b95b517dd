"""The watchdog: sensors that notice agents stuck, and runs failed, while nobody watches.

``<agent>_watchdog`` reads the agent's heartbeats each minute. A stuck agent partition
gets, once per stuck phase: an observation on ``<agent>_proposals`` for that partition (so the
asset page shows it), an alert in the control plane (``foureyes status``) and an error in
the sensor's log. When its heartbeat stopped (the process is gone) but Dagster still counts
the run as in progress, the run is reported failed, which fires the instance's run-failure
alerting. A phase that outlived a run which ended anyway is closed with that run's status.

``<agent>_failed_runs`` records as an alert every failed run that ran one of the agent's steps.
"""

import datetime as dt
import json
from collections.abc import Collection

import dagster as dg

from foureyes.resources.control_plane.agent_state import SILENT, AgentState
from foureyes.resources.control_plane.alerts import RUN_FAILED, STUCK_AGENT
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.fallback.check_record import PARTITION_TAG
from foureyes.resources.resource_keys import CONTROL_PLANE

IN_PROGRESS = (dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED)


def stuck_agents_sensor(agent: str, minimum_interval_seconds: int = 60) -> dg.SensorDefinition:
    """Flag agent partitions whose heartbeat stopped or whose phase outlived its limit."""

    @dg.sensor(
        name=f"{agent}_watchdog",
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        required_resource_keys={CONTROL_PLANE},
        description="Flags stuck agents: an observation on the asset, an alert, and a failed run if its process died.",
    )
    def _sensor(context: dg.SensorEvaluationContext):
        control_plane: ControlPlaneResource = getattr(context.resources, CONTROL_PLANE)
        watched = {agent}
        now = dt.datetime.now(dt.UTC)
        flagged = set(json.loads(context.cursor)) if context.cursor else set()
        still_stuck, events = set(), []
        for state in control_plane.state.states():
            if state.agent not in watched or not state.active:
                continue
            run = context.instance.get_run_by_id(state.run_id) if state.run_id else None
            if run is not None and run.is_finished:
                control_plane.state.settle(state, f"run {run.run_id} ended {run.status.value} during {state.phase}")
                continue
            stuck = state.stuck(now)
            if stuck is None:
                continue
            key = f"{state.agent}|{state.partition}|{state.run_id}|{state.phase}|{stuck.kind}"
            still_stuck.add(key)
            if key in flagged:
                continue
            events.append(_observation(state, stuck.reason, now))
            message = f"{state.agent} {state.partition}: STUCK, {stuck}"
            subject = f"{state.agent} {state.partition}"
            control_plane.alerts.raise_alert(STUCK_AGENT, subject, stuck.reason, state.run_id)
            context.log.error(message + (f" (run {state.run_id})" if state.run_id else ""))
            if run is not None and run.status in IN_PROGRESS and stuck.kind == SILENT:
                context.instance.report_run_failed(run, f"foureyes: {message}; its process stopped beating")
        return dg.SensorResult(asset_events=events, cursor=json.dumps(sorted(still_stuck)))

    return _sensor


def _observation(state: AgentState, why: str, now: dt.datetime) -> dg.AssetObservation:
    metadata: dict[str, object] = {
        "foureyes/stuck": why,
        "phase": state.phase,
        "phase_since": state.phase_since.isoformat(),
        "heartbeat_age_s": round((now - state.beat_at).total_seconds(), 1),
    }
    if state.run_id:
        metadata["run"] = dg.MetadataValue.dagster_run(state.run_id)
    return dg.AssetObservation(
        asset_key=dg.AssetKey(f"{state.agent}_proposals"),
        partition=state.partition or None,
        metadata=metadata,
        description=f"STUCK: {why}",
    )


def failed_runs_sensor(agent: str, steps: Collection[str]) -> dg.SensorDefinition:
    """Record as an alert every failed run that ran one of the agent's steps (``steps``: op names)."""

    @dg.run_failure_sensor(
        name=f"{agent}_failed_runs",
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Records failed runs of {agent}'s steps as alerts, shown by `foureyes status`.",
    )
    def _sensor(context: dg.RunFailureSensorContext, foureyes_control_plane: ControlPlaneResource):
        control_plane = foureyes_control_plane  # the parameter is named for its resource key, CONTROL_PLANE
        run = context.dagster_run
        if not set(steps) & _steps_of(context.instance, run):
            return
        partition = run.tags.get(PARTITION_TAG)
        subject = run.job_name + (f" {partition}" if partition else "")
        message = context.failure_event.message or "run failed"
        control_plane.alerts.raise_alert(RUN_FAILED, subject, message, run.run_id)

    return _sensor


def _steps_of(instance: dg.DagsterInstance, run: dg.DagsterRun) -> set[str]:
    """The op names a run's plan executed (a subset run names them; otherwise its plan holds them all)."""
    if run.step_keys_to_execute:
        return set(run.step_keys_to_execute)
    plan = (
        instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id) if run.execution_plan_snapshot_id else None
    )
    return {step.key for step in plan.steps} if plan is not None else set()
