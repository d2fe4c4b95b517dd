"""The project's own market data: daily quotes and a limits table in DuckDB, judged by plain checks.

A day listed in RISKPROJ_BAD_DAYS gets a negative price, which its blocking check fails.
"""

import os

import dagster as dg
import pandas as pd

days = dg.DailyPartitionsDefinition(start_date="2026-11-01", end_offset=1)
INSTRUMENTS = ["AAA", "BBB", "CCC"]


@dg.asset(partitions_def=days, metadata={"partition_expr": "day"}, group_name="market")
def quotes(context: dg.AssetExecutionContext) -> pd.DataFrame:
    day = context.partition_key
    bad = day in os.environ.get("RISKPROJ_BAD_DAYS", "").split(",")
    base = {"AAA": 100.0, "BBB": 50.0, "CCC": 10.0}
    offset = int(day[-2:])
    return pd.DataFrame(
        {
            "day": [pd.Timestamp(day)] * 3,  # a time partition is a timestamp column in DuckDB
            "instrument": INSTRUMENTS,
            "price": [-1.0 if bad and i == "BBB" else base[i] + offset for i in INSTRUMENTS],
        }
    )


@dg.asset(group_name="market")
def limits() -> pd.DataFrame:
    return pd.DataFrame({"instrument": INSTRUMENTS, "max_position": [1000.0, 2000.0, 5000.0]})


@dg.asset_check(asset=quotes, blocking=True, description="Every price is positive.")
def prices_positive(quotes: pd.DataFrame) -> dg.AssetCheckResult:
    bad = quotes[quotes["price"] <= 0]
    return dg.AssetCheckResult(passed=bad.empty, metadata={"bad_rows": len(bad)})


@dg.asset_check(asset=quotes, blocking=True, description="Every instrument is quoted.")
def all_quoted(quotes: pd.DataFrame) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=set(quotes["instrument"]) == set(INSTRUMENTS))
