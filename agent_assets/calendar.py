"""Business-day partitions: a weekday calendar with no weekend holes.

A time-window partitions definition on a weekday cron gives one partition per business day
(Friday's window runs to Monday), so "the previous partition" is always the previous
business day — which is what the last-known-good lookup and the price history rely on.
A day's partition opens at its midnight (``end_offset=1``), so the evening schedule can
process the same day's close.
"""

from __future__ import annotations

import dagster as dg

BUSINESS_DAY_CRON = "0 0 * * 1-5"
PARTITION_FORMAT = "%Y-%m-%d"
FIRST_BUSINESS_DAY = "2025-01-01"


def business_days(start: str = FIRST_BUSINESS_DAY, timezone: str = "UTC") -> dg.TimeWindowPartitionsDefinition:
    """Daily partitions on weekdays only.

    Examples:
        >>> import dagster as dg
        >>> import foureyes
        >>> days = foureyes.business_days(start="2026-11-16")
        >>> days.get_partition_keys_in_range(dg.PartitionKeyRange("2026-11-20", "2026-11-23"))
        ['2026-11-20', '2026-11-23']
        >>> @dg.asset(partitions_def=days)
        ... def prices() -> None: ...
    """
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule=BUSINESS_DAY_CRON, fmt=PARTITION_FORMAT, start=start, timezone=timezone, end_offset=1
    )


BUSINESS_DAYS = business_days()
