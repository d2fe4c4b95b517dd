"""Runs of the same partitions race each other on the production layout, and nothing is lost or booked twice.

On ``deploy/dagster-postgres.yaml`` (Dagster's record in PostgreSQL, the run queue, run
monitoring) with ``dagster dev``'s daemon, foureyes' stores on PostgreSQL and the shipped
jobs on Dagster's multiprocess executor, one server plays three scenarios of
``benchmarks/production_concurrency.py`` at a small size: an asset backfill over three
business days while their market-data runs end and the sensor launches the agents for each;
the agents for one of those days launched four times at once; and two authenticated
principals approving everything pending while the agents run again for that day. After each,
no run failed and the stores hold the invariants: each idempotency key booked once and with
a receipt, every approved action of the latest supervision delivered (or cancelled as
superseded, with the reason), every granted approval delivered, nothing left in flight, and
each stored proposals version supervised.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from benchmarks.production_concurrency import (
    STALE,
    ScenarioResult,
    Stores,
    add_approvers,
    approvals_mid_run,
    backfill_over_sensor,
    production_layout,
    same_partition,
)
from foureyes.examples.finance_desk.calendar import business_days_ending
from foureyes.examples.finance_desk.definitions import DAILY_JOB

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(2400)]  # ~15 runs of 4-33 steps, a process each
DAYS = business_days_ending("2026-11-18", 3)
TIMEOUT_S = 2000.0  # per scenario; the test as a whole is bounded by its pytest timeout


@pytest.fixture
def stores(pg_server):
    prefix = f"t_concurrency_{uuid.uuid4().hex[:8]}"
    yield Stores.fresh(pg_server, prefix)
    admin = sa.create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for role in ("dagster", "foureyes"):
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{prefix}_{role}" WITH (FORCE)')
    admin.dispose()


def _holds(result: ScenarioResult) -> None:
    assert result.settled, f"{result.scenario} did not settle: {result.runs}"
    assert result.failed == [], result.failed
    assert result.audit.violations == [], result.audit.violations
    assert all(STALE in why for why in result.refused), result.refused  # a vote is refused only as stale
    assert result.multiprocess_runs == sum(result.runs.values()), result.runs  # every run, step by step


def test_racing_runs_of_the_same_partitions_lose_nothing_and_book_nothing_twice(tmp_path, stores):
    with production_layout(stores, tmp_path) as server:
        tokens = add_approvers(server)
        backfill = backfill_over_sensor(server, stores, DAYS, TIMEOUT_S)
        same = same_partition(server, stores, DAYS[-1], 4, (DAILY_JOB,), TIMEOUT_S)
        approvals = approvals_mid_run(server, stores, DAYS[-1:], tokens, TIMEOUT_S)

    _holds(backfill)
    assert backfill.audit.agent_partitions == 4 * len(DAYS)
    assert sum(n for run, n in backfill.runs.items() if run.startswith("foureyes_daily")) >= len(DAYS)  # the sensor's
    _holds(same)
    assert same.runs == {"foureyes_daily:SUCCESS": 4}
    assert same.audit.approved_actions and same.audit.delivered + sum(same.audit.cancelled.values()) == (
        same.audit.approved_actions
    )
    _holds(approvals)
    assert approvals.votes.get("counted"), approvals.votes
    assert approvals.audit.granted and approvals.audit.granted == approvals.audit.granted_delivered
    assert approvals.audit.books_rows == approvals.audit.receipts
