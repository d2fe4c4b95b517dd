"""Business-day partitions: a weekday calendar with no weekend holes.

A time-window partitions definition on a weekday cron gives one partition per business day
(Friday's window runs to Monday), so "the previous partition" is always the previous
business day — which is what the last-known-good lookup and the price history rely on.
A day's partition opens at its midnight (``end_offset=1``), so the evening schedule can
process the same day's close.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pandas as pd

BUSINESS_DAY_CRON = "0 0 * * 1-5"
PARTITION_FORMAT = "%Y-%m-%d"
FIRST_BUSINESS_DAY = "2025-01-01"


def business_days(start: str = FIRST_BUSINESS_DAY, timezone: str = "UTC") -> dg.TimeWindowPartitionsDefinition:
    """Daily partitions on weekdays only.

    Examples:
        .. code-block:: python

            @dg.asset(partitions_def=business_days())
            def prices(context): ...
    """
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule=BUSINESS_DAY_CRON, fmt=PARTITION_FORMAT, start=start, timezone=timezone, end_offset=1
    )


BUSINESS_DAYS = business_days()


def business_days_between(first: str, last: str) -> list[str]:
    """Partition keys of every business day from ``first`` to ``last`` inclusive."""
    return [d.strftime(PARTITION_FORMAT) for d in pd.bdate_range(first, last)]


def business_days_ending(last: str, count: int) -> list[str]:
    """The ``count`` business days ending on ``last`` (inclusive), oldest first."""
    return [d.strftime(PARTITION_FORMAT) for d in pd.bdate_range(end=last, periods=count)]


def previous_business_day(key: str) -> str:
    day = dt.date.fromisoformat(key)
    return (pd.Timestamp(day) - pd.offsets.BDay(1)).strftime(PARTITION_FORMAT)
