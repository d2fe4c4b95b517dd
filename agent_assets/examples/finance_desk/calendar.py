"""The desk's calendar: business days, and the few date sums its feeds and demo need."""

from __future__ import annotations

import datetime as dt

import pandas as pd

import foureyes

PARTITION_FORMAT = "%Y-%m-%d"
BUSINESS_DAYS = foureyes.business_days()


def business_days_between(first: str, last: str) -> list[str]:
    """Partition keys of every business day from ``first`` to ``last`` inclusive."""
    return [d.strftime(PARTITION_FORMAT) for d in pd.bdate_range(first, last)]


def business_days_ending(last: str, count: int) -> list[str]:
    """The ``count`` business days ending on ``last`` (inclusive), oldest first."""
    return [d.strftime(PARTITION_FORMAT) for d in pd.bdate_range(end=last, periods=count)]


def previous_business_day(key: str) -> str:
    day = dt.date.fromisoformat(key)
    return (pd.Timestamp(day) - pd.offsets.BDay(1)).strftime(PARTITION_FORMAT)
