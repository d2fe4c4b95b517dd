"""The documented production layout runs: Dagster's instance on PostgreSQL, runs through the queue.

`dagster dev` (webserver and daemon) starts on a Dagster home configured by
``deploy/dagster-postgres.yaml`` — runs, events and schedules in PostgreSQL, the queued run
coordinator, run monitoring — with foureyes' warehouse and control plane on PostgreSQL too.
A market-data run for a partition is submitted through GraphQL; it is queued, launched by
the daemon and succeeds; the market-data sensor then launches the agents for that partition,
which run through the queue as well.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from tests.conftest import ROOT
from tests.dagster_dev import FINISHED, dagster_dev, wait_for

pytestmark = pytest.mark.postgres
DAY = "2026-11-19"


@pytest.fixture
def databases(pg_server):
    admin = sa.create_engine(pg_server, isolation_level="AUTOCOMMIT")
    names = {role: f"t_{role}_{uuid.uuid4().hex[:8]}" for role in ("dagster", "foureyes")}
    with admin.connect() as conn:
        for name in names.values():
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE template0')
    parsed = sa.engine.make_url(pg_server)
    base = f"{parsed.host}:{parsed.port}"
    yield {
        "FOUREYES_DAGSTER_PG_URL": f"postgresql://postgres@{base}/{names['dagster']}",  # bare, as documented
        "FOUREYES_WAREHOUSE_URL": f"postgresql+psycopg://postgres@{base}/{names['foureyes']}",
        "FOUREYES_CONTROL_URL": f"postgresql+psycopg://postgres@{base}/{names['foureyes']}",
    }
    with admin.connect() as conn:
        for name in names.values():
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def test_market_data_then_the_agents_run_through_the_queue_on_a_postgresql_instance(tmp_path, databases):
    with dagster_dev(tmp_path, ROOT / "deploy" / "dagster-postgres.yaml", **databases) as server:
        run_id = server.client.submit_job_execution("market_data_daily", tags={"dagster/partition": DAY})
        wait_for(lambda: server.client.get_run_status(run_id).value in FINISHED, "the market-data run", timeout=600)
        assert server.client.get_run_status(run_id).value == "SUCCESS", server.log.read_text()[-4000:]
        (agents,) = server.finished_runs("foureyes_daily", **{"dagster/partition": DAY})
        assert agents["status"] == "SUCCESS", server.log.read_text()[-4000:]
        tags = {t["key"]: t["value"] for t in agents["tags"]}
        assert tags["foureyes/market_data_run"] == run_id and tags["foureyes/tier"] == "FULL"
        decisions = server.foureyes("decisions", "--agent", "var_risk", "-p", DAY, "--format", "json")
        assert decisions.returncode == 0, decisions.stderr
    log = server.log.read_text()
    assert "NOTIFY run_events" not in log and "the connection is closed" not in log
    engine = sa.create_engine(databases["FOUREYES_DAGSTER_PG_URL"])
    with engine.connect() as conn:  # Dagster's own record is in PostgreSQL, and both runs were queued first
        queued = conn.exec_driver_sql(
            "SELECT run_id FROM event_logs WHERE dagster_event_type = 'PIPELINE_ENQUEUED'"
        ).scalars()
        assert {run_id, agents["runId"]} <= set(queued)
        assert conn.exec_driver_sql("SELECT count(*) FROM runs WHERE status = 'SUCCESS'").scalar() >= 2
    engine.dispose()
