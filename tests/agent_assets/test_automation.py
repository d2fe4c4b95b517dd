"""Schedules and the market-data sensor, evaluated against a real Dagster instance's run storage."""

from __future__ import annotations

import datetime as dt
import uuid

import dagster as dg
import pytest

from foureyes.examples.finance_desk.automation import (
    agents_deadline_schedule,
    market_close_schedule,
    market_data_arrived_sensor,
)
from foureyes.examples.finance_desk.definitions import DAILY_JOB, MARKET_DATA_JOB

MONDAY_CLOSE = dt.datetime(2026, 11, 23, 18, 30, tzinfo=dt.UTC)


@pytest.fixture
def instance(tmp_path):
    with dg.DagsterInstance.from_config(str(tmp_path)) as found:
        yield found


def _ended_run(instance: dg.DagsterInstance, job: str, status: dg.DagsterRunStatus, **tags: str) -> str:
    run_id = str(uuid.uuid4())
    instance.add_run(dg.DagsterRun(job_name=job, run_id=run_id, status=status, tags=tags))
    return run_id


def test_the_close_schedule_ingests_the_same_days_partition(instance):
    request = market_close_schedule(MARKET_DATA_JOB)(
        dg.build_schedule_context(instance=instance, scheduled_execution_time=MONDAY_CLOSE)
    )
    assert request.partition_key == "2026-11-23" and request.run_key == "close:2026-11-23"


def test_the_deadline_runs_the_agents_only_if_nothing_did(instance):
    schedule = agents_deadline_schedule(DAILY_JOB)
    deadline = MONDAY_CLOSE.replace(hour=21, minute=0)
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=deadline)
    request = schedule(context)
    assert request.partition_key == "2026-11-23" and request.tags["foureyes/trigger"] == "deadline"

    earlier = _ended_run(instance, DAILY_JOB, dg.DagsterRunStatus.SUCCESS, **{"dagster/partition": "2026-11-23"})
    skipped = schedule(dg.build_schedule_context(instance=instance, scheduled_execution_time=deadline))
    assert isinstance(skipped, dg.SkipReason) and earlier in skipped.skip_message


def test_agents_follow_every_ended_market_data_run_success_or_failure(instance):
    sensor = market_data_arrived_sensor(MARKET_DATA_JOB, DAILY_JOB)
    ok = _ended_run(instance, MARKET_DATA_JOB, dg.DagsterRunStatus.SUCCESS, **{"dagster/partition": "2026-11-19"})
    failed = _ended_run(instance, MARKET_DATA_JOB, dg.DagsterRunStatus.FAILURE, **{"dagster/partition": "2026-11-20"})
    ranged = _ended_run(
        instance,
        MARKET_DATA_JOB,
        dg.DagsterRunStatus.SUCCESS,
        **{"dagster/asset_partition_range_start": "2026-11-13", "dagster/asset_partition_range_end": "2026-11-17"},
    )
    _ended_run(instance, MARKET_DATA_JOB, dg.DagsterRunStatus.STARTED, **{"dagster/partition": "2026-11-23"})
    _ended_run(instance, DAILY_JOB, dg.DagsterRunStatus.SUCCESS, **{"dagster/partition": "2026-11-18"})

    first = sensor(dg.build_sensor_context(instance=instance))
    launched = {(r.partition_key, r.tags["foureyes/market_data_run"]) for r in first.run_requests}
    assert launched == {
        ("2026-11-19", ok),
        ("2026-11-20", failed),  # a failed feed still runs the agents: they fall back, flagged
        ("2026-11-13", ranged),
        ("2026-11-16", ranged),  # a range covers business days only
        ("2026-11-17", ranged),
    }
    again = sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
    assert {r.run_key for r in again.run_requests} <= {r.run_key for r in first.run_requests}  # the daemon dedupes

    later = _ended_run(instance, MARKET_DATA_JOB, dg.DagsterRunStatus.SUCCESS, **{"dagster/partition": "2026-11-23"})
    third = sensor(dg.build_sensor_context(instance=instance, cursor=again.cursor))
    assert ("2026-11-23", later) in {(r.partition_key, r.tags["foureyes/market_data_run"]) for r in third.run_requests}
