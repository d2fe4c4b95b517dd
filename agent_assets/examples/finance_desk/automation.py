"""Runs that happen on their own: the evening close, agents when their market data arrives, a deadline.

* ``market_data_close`` (schedule): every business day at 18:30 ingests that day's market data.
* ``foureyes_market_data_arrived`` (sensor): when a market-data run for a partition ends —
  succeeded, or failed because a feed did (the agents then fall back to last-known-good
  inputs) — launches the agents for the same partition. Backfills of market data cascade.
* ``foureyes_agents_deadline`` (schedule): at 21:00 runs the agents for the day if nothing
  launched them yet (market data never arrived): they then report on stale inputs, flagged,
  rather than not at all.

Times are in ``FOUREYES_TIMEZONE`` (default UTC); a schedule tick runs its own day's partition.
"""

import datetime as dt
from collections.abc import Iterator

import dagster as dg

from foureyes.examples.finance_desk.calendar import BUSINESS_DAYS, PARTITION_FORMAT

MARKET_CLOSE_CRON = "30 18 * * 1-5"
AGENTS_DEADLINE_CRON = "0 21 * * 1-5"
ARRIVAL_SENSOR = "foureyes_market_data_arrived"
PARTITION_TAG = "dagster/partition"
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")
ENDED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE]
FIRST_LOOK_BACK = dt.timedelta(days=1)  # a sensor turned on for the first time does not replay history
RESCAN = dt.timedelta(minutes=2)  # what a sensor reads again behind its cursor (late commits); run keys dedupe


def market_close_schedule(job: str, timezone: str = "UTC") -> dg.ScheduleDefinition:
    """Ingest each business day's market data in the evening of that day."""

    @dg.schedule(
        name="market_data_close",
        cron_schedule=MARKET_CLOSE_CRON,
        job_name=job,
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Ingests the day's market and reference data after the close (business days, 18:30).",
    )
    def _schedule(context: dg.ScheduleEvaluationContext):
        day = _business_day(context)
        return dg.RunRequest(run_key=f"close:{day}", partition_key=day, tags={"foureyes/trigger": "schedule"})

    return _schedule


def agents_deadline_schedule(job: str, timezone: str = "UTC") -> dg.ScheduleDefinition:
    """Run the agents for the day by the deadline, if nothing has launched them yet."""

    @dg.schedule(
        name="foureyes_agents_deadline",
        cron_schedule=AGENTS_DEADLINE_CRON,
        job_name=job,
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="At 21:00 on business days, runs the agents on whatever inputs exist if they did not run yet.",
    )
    def _schedule(context: dg.ScheduleEvaluationContext):
        day = _business_day(context)
        earlier = context.instance.get_run_records(
            filters=dg.RunsFilter(job_name=job, tags={PARTITION_TAG: day}), limit=1
        )
        if earlier:
            return dg.SkipReason(f"the agents already ran for {day} (run {earlier[0].dagster_run.run_id})")
        return dg.RunRequest(run_key=f"deadline:{day}", partition_key=day, tags={"foureyes/trigger": "deadline"})

    return _schedule


def market_data_arrived_sensor(
    market_data_job: str, agents_job: str, minimum_interval_seconds: int = 30
) -> dg.SensorDefinition:
    """Launch the agents for every partition whose market-data run has just ended."""

    @dg.sensor(
        name=ARRIVAL_SENSOR,
        job_name=agents_job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Runs the agents for a partition when its {market_data_job} run ends (success or failure).",
    )
    def _sensor(context: dg.SensorEvaluationContext):
        now = dt.datetime.now(dt.UTC).timestamp()
        cursor = float(context.cursor) if context.cursor else now - FIRST_LOOK_BACK.total_seconds()
        ended = context.instance.get_run_records(
            filters=dg.RunsFilter(
                job_name=market_data_job,
                statuses=ENDED,
                updated_after=dt.datetime.fromtimestamp(cursor - RESCAN.total_seconds(), dt.UTC),
            ),
            order_by="update_timestamp",
            ascending=True,
            limit=200,
        )
        requests = [
            dg.RunRequest(
                run_key=f"arrived:{record.dagster_run.run_id}:{day}",
                partition_key=day,
                tags={"foureyes/trigger": "market_data", "foureyes/market_data_run": record.dagster_run.run_id},
            )
            for record in ended
            for day in _partitions_of(record.dagster_run)
        ]
        newest = max((r.update_timestamp.timestamp() for r in ended), default=cursor)
        return dg.SensorResult(run_requests=requests, cursor=str(newest))

    return _sensor


def _partitions_of(run: dg.DagsterRun) -> Iterator[str]:
    """The partitions a run processed: its partition tag, or every key of its range."""
    if PARTITION_TAG in run.tags:
        yield run.tags[PARTITION_TAG]
    elif all(tag in run.tags for tag in RANGE_TAGS):
        start, end = (run.tags[tag] for tag in RANGE_TAGS)
        yield from BUSINESS_DAYS.get_partition_keys_in_range(dg.PartitionKeyRange(start, end))


def _business_day(context: dg.ScheduleEvaluationContext) -> str:
    return context.scheduled_execution_time.strftime(PARTITION_FORMAT)
