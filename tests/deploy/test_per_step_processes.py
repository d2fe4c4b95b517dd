"""One process per step, as on Kubernetes one pod per step: what steps share, they share through PostgreSQL.

The shipped finance desk runs with ``FOUREYES_EXECUTOR=multiprocess`` through the dagster
CLI, its Dagster instance configured by ``deploy/dagster-postgres.yaml`` and its warehouse
and control plane on PostgreSQL: the layout of the Helm values in ``deploy/``, with processes
where ``k8s_job_executor`` has pods. Nothing reaches one step from another in memory, so:
the outbox entry a supervisor step writes is delivered by the executor step of another
process; an approval requested there and decided through ``foureyes approvals`` is delivered
once, by an executor step of a later run; and a model's circuit breaker, tripped by one
step, is honoured by a later step in a run of its own, which sends that model nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from foureyes.examples.finance_desk.definitions import MARKET_DATA_JOB, build_definitions
from foureyes.resources.control_plane.approvals import PENDING
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.engine import engine_for
from foureyes.resources.settings import FoureyesSettings
from foureyes.resources.targets.base import booked_actions
from tests.conftest import ROOT
from tests.helpers import cli_principal, environment_without
from tests.servers import ERROR, ModelServer

pytestmark = pytest.mark.postgres
DAY = "2026-11-18"
BIN = Path(sys.executable).parent
LOCATION = ("-m", "foureyes.examples.finance_desk.definitions")
MODELS = "foureyes_models"
TRIP_AT_FIRST_FAILURE = {  # run config: the model chain's breaker opens on its first failed walk
    "resources": {
        MODELS: {
            "config": {
                "control_url": {"env": "FOUREYES_CONTROL_URL"},
                "endpoints": {"env": "FOUREYES_MODELS"},
                "breaker_threshold": 1,
            }
        }
    }
}


@pytest.fixture
def dagster_pg_url(pg_server: str) -> Iterator[str]:
    """A database of its own for Dagster's runs, events and schedules (dagster-postgres takes a bare URL)."""
    name = f"t_dagster_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE template0')
    parsed = sa.engine.make_url(pg_server)
    yield f"postgresql://{parsed.username}@{parsed.host}:{parsed.port}/{name}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


class Deployment:
    """The desk as deployed: every command a process of its own, every step a process of its own."""

    def __init__(self, tmp_path: Path, dagster_url: str, stores_url: str, model: ModelServer):
        dagster_home = tmp_path / "dagster_home"
        dagster_home.mkdir()
        (dagster_home / "dagster.yaml").write_text((ROOT / "deploy" / "dagster-postgres.yaml").read_text())
        self.stores_url = stores_url
        self.model = model
        self.env = environment_without(("FOUREYES_", "DAGSTER_HOME", "OPENLINEAGE")) | {
            "DAGSTER_HOME": str(dagster_home),
            "FOUREYES_HOME": str(tmp_path / "home"),
            "FOUREYES_DAGSTER_PG_URL": dagster_url,
            "FOUREYES_WAREHOUSE_URL": stores_url,
            "FOUREYES_CONTROL_URL": stores_url,
            "FOUREYES_MODELS": f"primary={model.url}/v1",
            "FOUREYES_EXECUTOR": "multiprocess",
        }
        self.control = ControlPlaneResource(url=stores_url)

    def run(self, tool: str, *args: str, token: str | None = None) -> subprocess.CompletedProcess:
        env = self.env if token is None else {**self.env, "FOUREYES_TOKEN": token}
        command = [str(BIN / tool), *args]
        return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)

    def materialize(self, select: str, run_config: dict | None = None) -> dg.DagsterRun:
        config = ("--config-json", json.dumps(run_config)) if run_config else ()
        done = self.run("dagster", "asset", "materialize", *LOCATION, "--select", select, "--partition", DAY, *config)
        assert done.returncode == 0, done.stderr[-4000:]
        (run,) = self.instance().get_runs(limit=1)
        return run

    def foureyes(self, *args: str, token: str | None = None) -> subprocess.CompletedProcess:
        return self.run("foureyes", *args, token=token)

    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(self.env["DAGSTER_HOME"])

    def step_processes(self, run: dg.DagsterRun) -> dict[str, int]:
        """The process each step of ``run`` ran in, from Dagster's own record (STEP_START events)."""
        records = self.instance().all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
        return {r.step_key: r.dagster_event.pid for r in records}

    def run_process(self, run: dg.DagsterRun) -> int:
        (start,) = self.instance().all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_START)
        return start.dagster_event.pid

    def model_calls(self, agent: str) -> list[tuple[str, str | None]]:
        with engine_for(self.stores_url).connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT status, run_id FROM tool_calls WHERE kind = 'model' AND tool = 'primary' AND agent = %s "
                "ORDER BY called_at",
                (agent,),
            )
            return [tuple(r) for r in rows]

    def outbox(self, agent: str) -> list[dict]:
        with engine_for(self.stores_url).connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT proposal_id, status, attempts, run_id FROM outbox WHERE agent = %s", (agent,)
            )
            return [dict(r._mapping) for r in rows]


@pytest.fixture
def deployment(tmp_path, dagster_pg_url, pg_url, monkeypatch) -> Iterator[Deployment]:
    """The desk on PostgreSQL with the day's market data ingested, its model endpoint answering 500."""
    model = ModelServer(lambda prompt: {})
    model.mode = ERROR
    model.start()
    desk = Deployment(tmp_path, dagster_pg_url, pg_url, model)
    monkeypatch.setenv("FOUREYES_DAGSTER_PG_URL", dagster_pg_url)  # this process reads the same instance
    settings = FoureyesSettings.from_env({**desk.env, "FOUREYES_EXECUTOR": "in_process"})
    ingested = (
        build_definitions(settings)
        .resolve_job_def(MARKET_DATA_JOB)
        .execute_in_process(partition_key=DAY, instance=desk.instance())
    )
    assert ingested.success  # the agents' inputs: not what this test is about, so in this process
    yield desk
    model.stop()


def test_steps_in_separate_processes_share_the_outbox_approvals_and_circuit_breakers(deployment):
    desk = deployment

    # 1. var_risk proposes, is supervised and executes, each step in its own process
    first = desk.materialize("var_risk_proposals,var_risk_actions", TRIP_AT_FIRST_FAILURE)
    steps = desk.step_processes(first)
    assert set(steps) == {"var_risk_proposals", "var_risk_supervisor", "var_risk_actions"}
    assert len(set(steps.values())) == 3 and desk.run_process(first) not in steps.values()

    # the model failed in the proposals step and tripped its breaker (the desk fell back to its policy)
    assert desk.model_calls("var_risk") == [("http_500", first.run_id)]
    tripped = len(desk.model.requests)
    assert tripped == 2  # one walk of the chain: a try and its retry

    # what the supervisor step approved, it queued in the outbox; the executor step delivered it
    delivered = desk.outbox("var_risk")
    assert delivered and all(row["status"] == "delivered" and row["attempts"] == 1 for row in delivered)
    booked = booked_actions(desk.stores_url, "risk_actions")
    assert sorted(r["proposal_id"] for r in booked) == sorted(r["proposal_id"] for r in delivered)

    # what needs four eyes waits: requested by the supervisor step, never executed by the executor step
    (pending,) = desk.control.approvals.find(status=PENDING, agent="var_risk")
    assert pending.proposal_id not in {r["proposal_id"] for r in booked}

    # 2. a person decides it through the CLI, a process of its own
    alice = cli_principal(desk.foureyes, "alice")
    decided = desk.foureyes(
        "approvals", "approve", pending.approval_id[:12], "--reason", "within appetite", token=alice
    )
    assert decided.returncode == 0 and "queued as" in decided.stdout, decided.stderr

    # 3. a later run: the executor delivers the approval once; loan_triage's step finds the breaker open
    second = desk.materialize("var_risk_actions,loan_triage_proposals")
    assert len(set(desk.step_processes(second).values())) == len(desk.step_processes(second)) >= 3
    booked = booked_actions(desk.stores_url, "risk_actions")
    assert [r["proposal_id"] for r in booked].count(pending.proposal_id) == 1
    (approved,) = [row for row in desk.outbox("var_risk") if row["proposal_id"] == pending.proposal_id]
    assert approved["status"] == "delivered" and approved["attempts"] == 1 and approved["run_id"] == second.run_id
    assert {status for status, _ in desk.model_calls("loan_triage")} == {"circuit_open"}
    assert len(desk.model.requests) == tripped  # nothing more was sent to the model that is down
