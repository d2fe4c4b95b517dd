"""Two runs of one agent partition report their first phase at once, on PostgreSQL.

Both find no heartbeat row and both insert it: READ COMMITTED lets each see "no row", and
the second insert waits on the primary key for the first to commit. A report written as
"update, and insert if nothing was updated" then fails the second run's step on a unique
violation; one statement that inserts or replaces takes the other's row instead.
"""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from foureyes.resources.control_plane.agent_state import IDLE, LOADING
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.control_plane.schema import heartbeats
from foureyes.resources.engine import engine_for
from tests.dagster_dev import wait_for

pytestmark = pytest.mark.postgres
AGENT, DAY = "var_risk", "2026-11-19"
WAITING_ON_A_LOCK = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


def _waiting_on_a_lock(engine: sa.Engine) -> int:
    """Sessions of this database waiting on a lock (a new transaction each time: the view is snapshotted per one)."""
    with engine.connect() as conn:
        return conn.exec_driver_sql(WAITING_ON_A_LOCK).scalar()


@pytest.mark.parametrize("phase", [LOADING, IDLE])
def test_a_first_report_racing_another_runs_first_report_takes_its_row(pg_url, phase):
    control = ControlPlaneResource(url=pg_url)
    control.state.states()  # the schema exists before the race begins
    engine = engine_for(pg_url)
    other = engine.connect()
    transaction = other.begin()
    now = sa.func.now()
    other.execute(  # the other run's first report: inserted, not yet committed
        heartbeats.insert().values(
            agent=AGENT,
            partition_key=DAY,
            phase=LOADING,
            run_id="other-run",
            phase_since=now,
            beat_at=now,
            beat_every_s=10.0,
            stuck_after_s=1800.0,
        )
    )
    failure: list[BaseException] = []

    def report() -> None:
        try:
            control.state.report(AGENT, DAY, phase, run_id="this-run")
        except BaseException as exc:
            failure.append(exc)

    reporter = threading.Thread(target=report)
    reporter.start()
    wait_for(
        lambda: _waiting_on_a_lock(engine) or failure, "the report to wait on the other's row", timeout=60, every=0.05
    )
    transaction.commit()
    other.close()
    reporter.join(timeout=30)
    assert failure == []
    (state,) = control.state.states(AGENT)
    assert (state.phase, state.run_id) == (phase, "this-run")
