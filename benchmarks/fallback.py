"""Last-known-good lookup latency with 10,000 partitions on record, vs a naive scan.

For SQLite and PostgreSQL it records 10,000 business-day partitions of ``market_prices``
(and as many of three other assets, so the index has company) in the quality ledger and the
warehouse catalog, 3% of them failed, then times, for 500 random requested partitions:

* ``lookup``: ``FallbackResource.last_known_good`` — one indexed ledger query for the newest
  passed partition before the requested one, plus the catalog check of its current version;
* ``naive``: read every ledger row of the asset and pick the newest passed one in Python.

Results: ``benchmarks/results/fallback.md`` (and ``.json``). Goal: lookup p50 under 2 ms.

    python benchmarks/fallback.py [--partitions 10000] [--lookups 500] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from bench_results import RESULTS
from local_postgres import fresh_database, start_postgres

from resources.asset_inputs import AssetInput
from resources.control_plane import ControlPlaneResource
from resources.control_schema import partition_quality
from resources.engine import insert_rows, write_transaction
from resources.fallback import FallbackResource
from resources.warehouse import CATALOG_TABLE, SqlWarehouseResource

ASSETS = ("market_prices", "positions", "exposures", "collateral")
GOAL_MS = 2.0


def populate(url: str, partitions: int, seed: int = 7) -> tuple[FallbackResource, list[str]]:
    """Record ``partitions`` checked partitions per asset in the ledger and the warehouse catalog."""
    warehouse = SqlWarehouseResource(url=url)
    control = ControlPlaneResource(url=url)
    warehouse.write_partition("bootstrap", "x", pd.DataFrame({"x": [1]}))  # creates the catalog table
    days = pd.bdate_range(end="2026-11-20", periods=partitions).strftime("%Y-%m-%d").tolist()
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC)
    catalog = sa.Table(CATALOG_TABLE, sa.MetaData(), autoload_with=warehouse.engine)
    for asset in ASSETS:
        versions = [f"{asset}-{day}" for day in days]
        ledger_rows = [
            {
                "asset": asset,
                "partition_key": day,
                "version": v,
                "passed": rng.random() > 0.03,
                "assertions": "[]",
                "run_id": None,
                "checked_at": now,
            }
            for day, v in zip(days, versions, strict=True)
        ]
        catalog_rows = [
            {
                "table_name": asset,
                "partition_key": day,
                "version": v,
                "row_count": 1,
                "columns": json.dumps([["close", "float64", "float"]]),
                "written_at": now,
                "run_id": None,
            }
            for day, v in zip(days, versions, strict=True)
        ]
        with write_transaction(control.engine) as conn:
            insert_rows(conn, partition_quality, ledger_rows)
        with write_transaction(warehouse.engine) as conn:
            insert_rows(conn, catalog, catalog_rows)
    with warehouse.engine.connect() as conn:  # fresh statistics, as autovacuum would gather them
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    return FallbackResource(warehouse=warehouse, control_plane=control), days


def naive_last_good(control: ControlPlaneResource, asset: str, partition: str) -> str | None:
    with control.engine.connect() as conn:
        rows = conn.execute(
            sa.select(partition_quality.c.partition_key, partition_quality.c.passed).where(
                partition_quality.c.asset == asset
            )
        ).all()
    good = [p for p, passed in rows if passed and p < partition]
    return max(good) if good else None


def measure(fallback: FallbackResource, days: list[str], lookups: int, seed: int = 11) -> dict:
    spec = AssetInput("market_prices", quality_checked=True)
    rng = random.Random(seed)
    with_history = days[min(100, len(days) // 2) :]  # requests with earlier partitions to fall back to
    requested = [rng.choice(with_history) for _ in range(lookups)]
    for day in requested[:20]:  # warm the pool and the caches
        fallback.last_known_good(spec, day)
    lookup, naive = [], []
    for day in requested:
        started = time.perf_counter()
        found = fallback.last_known_good(spec, day)
        lookup.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        expected = naive_last_good(fallback.control_plane, "market_prices", day)
        naive.append((time.perf_counter() - started) * 1000)
        assert found is not None and found.partition == expected, (day, found, expected)
    return {"lookup_ms": _percentiles(lookup), "naive_ms": _percentiles(naive)}


def _percentiles(samples: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(samples), 3),
        "p95": round(float(np.percentile(samples, 95)), 3),
        "max": round(max(samples), 3),
    }


def write_results(rows: list[dict], partitions: int, lookups: int) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Last-known-good lookup",
        "",
        f"{partitions:,} business-day partitions on record for each of {len(ASSETS)} assets (3% failed), "
        f"{lookups} random lookups; machine: {os.cpu_count()} cores, Python {platform.python_version()}.",
        "",
        "| engine | lookup p50 (ms) | lookup p95 (ms) | naive scan p50 (ms) | naive scan p95 (ms) "
        "| naive / lookup (p50) | goal (p50 < 2 ms) |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        ratio = r["naive_ms"]["p50"] / r["lookup_ms"]["p50"]
        met = "met" if r["lookup_ms"]["p50"] < GOAL_MS else "not met"
        lines.append(
            f"| {r['engine']} | {r['lookup_ms']['p50']} | {r['lookup_ms']['p95']} | {r['naive_ms']['p50']} | "
            f"{r['naive_ms']['p95']} | {ratio:.0f}x | {met} |"
        )
    (RESULTS / "fallback.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "fallback.json").write_text(json.dumps(rows, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=10_000)
    parser.add_argument("--lookups", type=int, default=500)
    parser.add_argument("--pg-url", help="a PostgreSQL server to use instead of starting .ci/postgres")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as home:
        engines = {
            "sqlite": f"sqlite:///{Path(home) / 'fallback.db'}",
            "postgresql": fresh_database(args.pg_url or start_postgres(), "foureyes_fallback_benchmark"),
        }
        for engine, url in engines.items():
            print(f"{engine}: recording {args.partitions:,} partitions x {len(ASSETS)} assets ...", flush=True)
            fallback, days = populate(url, args.partitions)
            print(f"{engine}: {args.lookups} lookups ...", flush=True)
            rows.append({"engine": engine, **measure(fallback, days, args.lookups)})
    write_results(rows, args.partitions, args.lookups)
    print((RESULTS / "fallback.md").read_text())


if __name__ == "__main__":
    main()
