"""A hung agent, then a dead one: `foureyes status`, the stuck-agents sensor and the failed-runs sensor.

The agent runs in its own process (``hung_agent.py``) on a real Dagster instance; the test
watches it through the CLI and evaluates the sensors against the same instance, as the
daemon would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from foureyes.resources.control_plane.agent_state import IDLE, PROPOSING
from foureyes.resources.control_plane.alerts import RUN_FAILED, STUCK_AGENT
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.control_plane.schema import heartbeats
from foureyes.resources.settings import sqlite_url
from tests.conftest import ROOT
from tests.helpers import environment_without
from tests.integration.hung_agent import LIVENESS
from tests.integration.toy_desk import desk, toy_definitions


def _wait_for(condition: Callable[[], object], what: str, timeout: float = 90.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _status(home: Path, url: str, *options: str) -> subprocess.CompletedProcess:
    env = environment_without("FOUREYES_")
    env |= {"FOUREYES_HOME": str(home), "FOUREYES_CONTROL_URL": url}
    toy = ("-m", "tests.integration.toy_desk", "-a", "location")
    command = [sys.executable, "-m", "foureyes.cli.main", "status", *toy, *options]
    return subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT, check=False)


def _toy(done: subprocess.CompletedProcess) -> dict:
    return next(a for a in json.loads(done.stdout)["agents"] if a["agent"] == "toy")


@pytest.fixture
def hung_agent(tmp_path):
    """The hung agent's process (running, proposing), its control-plane URL and Dagster instance."""
    url = sqlite_url(tmp_path / "desk.db")
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "integration" / "hung_agent.py"), url],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    control = ControlPlaneResource(url=url)

    def proposing():
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        return [s for s in control.state.states("toy") if s.phase == PROPOSING]

    try:
        _wait_for(proposing, "the agent to start proposing")
        with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
            yield process, url, control, instance
    finally:
        process.kill()
        process.wait()


def _the_phase_outlives_its_limit(url: str) -> None:
    """Move the hung phase's start back past its limit: time passes in the store, not on the clock.

    Waiting out a short limit instead made "within its limit" a race with a loaded machine.
    """
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for row in conn.execute(sa.select(heartbeats.c.agent, heartbeats.c.partition_key, heartbeats.c.phase_since)):
            started = row.phase_since - LIVENESS.stuck_after * 1.1
            where = (heartbeats.c.agent == row.agent) & (heartbeats.c.partition_key == row.partition_key)
            conn.execute(heartbeats.update().where(where).values(phase_since=started))
    engine.dispose()


def _evaluate(sensor: dg.SensorDefinition, instance, control, cursor: str | None = None):
    """One tick, as the daemon evaluates it."""
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"foureyes_control_plane": control})
    return sensor.evaluate_tick(context)


def test_a_hung_agent_is_flagged_then_its_dead_run_failed_and_closed(hung_agent, tmp_path):
    process, url, control, instance = hung_agent
    defs = toy_definitions(url, desk())
    sensor, failed_runs = defs.resolve_sensor_def("toy_watchdog"), defs.resolve_sensor_def("toy_failed_runs")

    working = _status(tmp_path, url, "--format", "json")
    toy = _toy(working)
    assert working.returncode == 0 and (toy["phase"], toy["partition"], toy["stuck"]) == (PROPOSING, "d1", False)
    assert toy["heartbeat_age_s"] < 4 * LIVENESS.beat_every.total_seconds() and toy["last_outcome"] is None
    assert [a["agent"] for a in json.loads(working.stdout)["agents"]] == ["toy"]  # the code location's agents
    assert _evaluate(sensor, instance, control).asset_events == []  # alive and within its limit

    (state,) = control.state.states("toy")
    _the_phase_outlives_its_limit(url)
    assert control.state.states("toy")[0].stuck() is not None
    stuck, stuck_text = _status(tmp_path, url, "--format", "json"), _status(tmp_path, url)
    assert stuck.returncode == stuck_text.returncode == 2  # a monitor can page on the exit status
    assert _toy(stuck)["stuck"] and _toy(stuck)["stuck_reason"].startswith("proposing for ")
    toy_line = next(line for line in stuck_text.stdout.splitlines() if line.startswith("toy "))
    assert "proposing" in toy_line and "d1" in toy_line and "STUCK: proposing for" in toy_line

    first = _evaluate(sensor, instance, control)
    (observation,) = first.asset_events
    assert observation.asset_key == dg.AssetKey("toy_proposals") and observation.partition == "d1"
    assert observation.description.startswith("STUCK: proposing for")
    assert observation.metadata["phase"].value == PROPOSING
    run_id = state.run_id
    assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED  # alive: alerted, not killed
    assert _evaluate(sensor, instance, control, first.cursor).asset_events == []  # flagged once per stuck phase

    process.send_signal(signal.SIGKILL)
    process.wait()
    _wait_for(lambda: "no heartbeat" in str(control.state.states("toy")[0].stuck()), "the heartbeat to go silent")
    second = _evaluate(sensor, instance, control, first.cursor)
    (silent,) = second.asset_events
    assert silent.description.startswith("STUCK: no heartbeat for")
    failed = instance.get_run_by_id(run_id)
    assert failed.status == dg.DagsterRunStatus.FAILURE  # its process is gone: the run is failed, alerting fires

    failure = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records[0]
    context = dg.build_run_status_sensor_context(
        sensor_name="toy_failed_runs",
        dagster_event=failure.event_log_entry.dagster_event,
        dagster_instance=instance,
        dagster_run=failed,
        resources={"foureyes_control_plane": control},
    ).for_run_failure()
    failed_runs(context)

    third = _evaluate(sensor, instance, control, second.cursor)
    assert third.asset_events == []
    (closed,) = control.state.states("toy")
    assert closed.phase == IDLE and closed.outcome == f"run {run_id} ended FAILURE during proposing"

    after, after_text = _status(tmp_path, url, "--format", "json"), _status(tmp_path, url)
    assert after.returncode == 0 and _toy(after)["phase"] == IDLE
    alerts = json.loads(after.stdout)["alerts"]
    assert [a["kind"] for a in alerts] == [RUN_FAILED, STUCK_AGENT, STUCK_AGENT]
    assert alerts[0]["run_id"] == run_id and "stopped beating" in alerts[0]["message"]
    assert "alerts in the last 24h (3):" in after_text.stdout and "run_failed" in after_text.stdout
