"""Two runs write the same keyed row of the control plane at once, on PostgreSQL.

Runs of one agent partition report their first phase together (a backfill overlapping a
sensor's runs, the same partition launched twice) and supervise the same proposals version
together (queueing the same actions, opening the same approvals); steps of several runs see
one model backend fail together. Both find no row and both insert it: READ COMMITTED lets each see
"no row", and the second insert waits on the primary key for the first to commit. Written
as "update (or delete), then insert", the second then fails its step on a unique violation;
one statement that inserts or moves the row on takes the other's row instead.

Each test holds the other run's write uncommitted, lets this run's write start and wait on
it (PostgreSQL shows the wait), then commits: the race, every time.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

import pytest
import sqlalchemy as sa

from foureyes.resources.control_plane.agent_state import IDLE, LOADING
from foureyes.resources.control_plane.approvals import ApprovalRequest
from foureyes.resources.control_plane.outbox import OutboxEntry
from foureyes.resources.control_plane.resource import ControlPlaneResource, control_engine
from foureyes.resources.control_plane.schema import circuit_breakers, heartbeats
from foureyes.resources.engine import write_transaction
from foureyes.resources.fallback.circuit_breakers import CLOSED, OPEN, CircuitBreakers
from tests.dagster_dev import wait_for

pytestmark = pytest.mark.postgres
AGENT, DAY, BACKEND = "var_risk", "2026-11-19", "local_policy"
WAITING_ON_A_LOCK = (
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
)


def _waiting_on_a_lock(engine: sa.Engine) -> int:
    """Sessions of this database waiting on a lock (a new transaction each time: the view is snapshotted per one)."""
    with engine.connect() as conn:
        return conn.exec_driver_sql(WAITING_ON_A_LOCK).scalar()


def _race(
    engine: sa.Engine, other_runs_write: Callable[[sa.Connection], object], write: Callable[[], None]
) -> list[BaseException]:
    """``write`` while another run's ``other_runs_write`` of the same key is in flight; what it raised."""
    failure: list[BaseException] = []

    def this_run() -> None:
        try:
            write()
        except BaseException as exc:
            failure.append(exc)

    with engine.connect() as other, other.begin():
        other_runs_write(other)
        writer = threading.Thread(target=this_run)
        writer.start()
        wait_for(lambda: _waiting_on_a_lock(engine) or failure, "this run's write to wait", timeout=60, every=0.05)
    writer.join(timeout=30)
    return failure


@pytest.mark.parametrize("phase", [LOADING, IDLE])
def test_a_first_report_racing_another_runs_first_report_takes_its_row(pg_url, phase):
    state = ControlPlaneResource(url=pg_url).state
    now = sa.func.now()
    others = heartbeats.insert().values(
        agent=AGENT,
        partition_key=DAY,
        phase=LOADING,
        run_id="other-run",
        phase_since=now,
        beat_at=now,
        beat_every_s=10.0,
        stuck_after_s=1800.0,
    )
    this_run = lambda: state.report(AGENT, DAY, phase, run_id="this-run")  # noqa: E731
    assert _race(control_engine(pg_url), lambda conn: conn.execute(others), this_run) == []
    (found,) = state.states(AGENT)
    assert (found.phase, found.run_id) == (phase, "this-run")


def test_failures_of_one_backend_in_two_runs_at_once_both_count_and_open_its_breaker(pg_url):
    engine = control_engine(pg_url)
    breakers = CircuitBreakers(engine, threshold=2)
    others = circuit_breakers.insert().values(
        backend=BACKEND, state=CLOSED, failures=1, last_error="timeout", updated_at=sa.func.now()
    )
    assert _race(engine, lambda conn: conn.execute(others), lambda: breakers.failed(BACKEND, "HTTP 503")) == []
    found = breakers.state(BACKEND)
    assert (found.state, found.failures, found.last_error) == (OPEN, 2, "HTTP 503")
    assert breakers.allows(BACKEND)[0] is False
    breakers.succeeded(BACKEND)
    assert (breakers.state(BACKEND).state, breakers.state(BACKEND).failures) == (CLOSED, 0)


def _queued(key: str) -> OutboxEntry:
    return OutboxEntry(key, AGENT, DAY, "P1", "v1", "buy", "books", {"qty": 3}, "momentum")


def test_two_supervisions_queueing_the_same_actions_at_once_both_commit_and_queue_each_once(pg_url):
    control = ControlPlaneResource(url=pg_url)
    entries = [_queued("k1"), _queued("k2")]

    def this_run() -> None:
        with write_transaction(control.engine) as conn:
            assert control.outbox.enqueue(conn, entries) == 0  # the other run's rows are kept

    assert _race(control.engine, lambda conn: control.outbox.enqueue(conn, entries), this_run) == []
    assert [(e.idempotency_key, e.status) for e in control.outbox.find(agent=AGENT)] == [
        ("k1", "queued"),
        ("k2", "queued"),
    ]


def test_two_supervisions_opening_the_same_approvals_at_once_both_commit_and_open_each_once(pg_url):
    control = ControlPlaneResource(url=pg_url)
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=4)
    request = ApprovalRequest(AGENT, DAY, "P1", "v1", "big_trade", 2, "agent:var_risk", "P1 buy 900", expires, "buy")

    def this_run() -> None:
        with write_transaction(control.engine) as conn:
            assert control.approvals.request(conn, [request]) == 0

    assert _race(control.engine, lambda conn: control.approvals.request(conn, [request]), this_run) == []
    assert [a.status for a in control.approvals.for_version(AGENT, DAY, "v1").values()] == ["pending"]
