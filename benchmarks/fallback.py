"""Last-known-good lookup latency on Dagster's record, vs a naive scan of that record.

For a Dagster instance on SQLite and one on PostgreSQL (dagster-postgres), it materialises
``--partitions`` business-day partitions of a ``prices`` asset, each in its own run with a
blocking check (3% of them fail) and a non-blocking one, then times, for ``--lookups``
random requested partitions whose own partition failed or did not:

* ``lookup``: ``LastKnownGood.resolve`` — the requested partition's current materialisation
  and the checks that judged it, then earlier ones until one passes;
* ``naive``: every materialisation and every check evaluation of the asset read at once
  (one check history scan per check), the newest passing partition picked in Python.

Results: ``benchmarks/results/fallback.md`` (and ``.json``), with the ratio of the two
measured in the same run.

    python benchmarks/fallback.py [--partitions 250] [--lookups 200] [--pg-url URL]
"""

import argparse
import json
import os
import platform
import random
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
from bench_results import RESULTS
from local_postgres import fresh_database, start_postgres

from foureyes.calendar import business_days
from foureyes.resources.asset_inputs import AssetInput
from foureyes.resources.fallback.inputs import LastKnownGood

FAILED_SHARE = 0.03
DAYS = business_days("2024-01-01")
FAILING: set[str] = set()


@dg.asset(partitions_def=DAYS)
def prices(context: dg.AssetExecutionContext) -> pd.DataFrame:
    return pd.DataFrame({"close": [1.0], "day": [context.partition_key]})


with warnings.catch_warnings():
    warnings.simplefilter("ignore")

    @dg.asset_check(asset=prices, blocking=True, partitions_def=DAYS)
    def prices_sane(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=context.partition_key not in FAILING)


@dg.asset_check(asset=prices, blocking=False)
def prices_fresh() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True, severity=dg.AssetCheckSeverity.WARN)


DEFS = dg.Definitions(assets=[prices], asset_checks=[prices_sane, prices_fresh])


def instance_for(home: Path, pg_url: str | None) -> dg.DagsterInstance:
    home.mkdir(parents=True, exist_ok=True)
    storage = f"storage:\n  postgres:\n    postgres_url: {pg_url}\n" if pg_url else ""
    (home / "dagster.yaml").write_text(f"{storage}telemetry:\n  enabled: false\n")
    return dg.DagsterInstance.from_config(str(home))


def populate(instance: dg.DagsterInstance, partitions: int, seed: int = 7) -> list[str]:
    """``partitions`` days materialised, each in its own run with its checks; 3% fail the blocking one."""
    days = pd.bdate_range(end="2026-11-20", periods=partitions).strftime("%Y-%m-%d").tolist()
    rng = random.Random(seed)
    FAILING.clear()
    FAILING.update(d for d in days if rng.random() < FAILED_SHARE)
    for i, day in enumerate(days):
        dg.materialize(
            [prices, prices_sane, prices_fresh],
            partition_key=day,
            instance=instance,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
        )
        if i % 50 == 49:
            print(f"  {i + 1} of {partitions} partitions", flush=True)
    return days


def naive_last_good(instance: dg.DagsterInstance, partition: str) -> str | None:
    """Everything Dagster has on the asset, read at once and judged in Python."""
    materializations = instance.fetch_materializations(prices.key, limit=10_000).records
    current: dict[str, int] = {}
    for record in materializations:  # newest first: the first seen per partition is current
        current.setdefault(record.partition_key, record.storage_id)
    failed = set()
    for check in (prices_sane, prices_fresh):
        for spec in check.check_specs:
            for execution in instance.event_log_storage.get_asset_check_execution_history(spec.key, limit=10_000):
                evaluation = execution.event.dagster_event.event_specific_data if execution.event else None
                target = getattr(evaluation, "target_materialization_data", None)
                if target is not None and evaluation.blocking and not evaluation.passed:
                    failed.add(target.storage_id)
    good = [p for p, storage_id in current.items() if p <= partition and storage_id not in failed]
    return max(good) if good else None


def measure(instance: dg.DagsterInstance, days: list[str], lookups: int, seed: int = 11) -> dict:
    judge = LastKnownGood(instance, DEFS.resolve_asset_graph())
    spec = AssetInput("prices")
    rng = random.Random(seed)
    requested = [rng.choice(days[len(days) // 4 :]) for _ in range(lookups)]
    requested += sorted(FAILING)[:5]  # and some whose own partition failed: the walk goes back
    for day in requested[:5]:  # warm the pools
        judge.resolve(spec, day)
    lookup, naive = [], []
    for day in requested:
        started = time.perf_counter()
        found = judge.resolve(spec, day)
        lookup.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        expected = naive_last_good(instance, day)
        naive.append((time.perf_counter() - started) * 1000)
        assert found.served == expected, (day, found, expected)
    return {"lookup_ms": _percentiles(lookup), "naive_ms": _percentiles(naive), "lookups": len(requested)}


def _percentiles(samples: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(samples), 2),
        "p95": round(float(np.percentile(samples, 95)), 2),
        "max": round(max(samples), 2),
    }


def write_results(rows: list[dict], partitions: int) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Last-known-good lookup on Dagster's record",
        "",
        f"{partitions:,} business-day partitions, each materialised in its own run with a blocking check "
        f"({FAILED_SHARE:.0%} failed) and a non-blocking one; machine: {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, dagster {dg.__version__}.",
        "",
        "| instance storage | lookups | lookup p50 (ms) | lookup p95 (ms) | naive scan p50 (ms) "
        "| naive scan p95 (ms) | naive / lookup (p50) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = r["naive_ms"]["p50"] / r["lookup_ms"]["p50"]
        lines.append(
            f"| {r['engine']} | {r['lookups']} | {r['lookup_ms']['p50']} | {r['lookup_ms']['p95']} | "
            f"{r['naive_ms']['p50']} | {r['naive_ms']['p95']} | {ratio:.1f}x |"
        )
    (RESULTS / "fallback.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "fallback.json").write_text(json.dumps(rows, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=250)
    parser.add_argument("--lookups", type=int, default=200)
    parser.add_argument("--pg-url", help="a PostgreSQL server to use instead of starting .ci/postgres")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as home:
        pg = fresh_database(args.pg_url or start_postgres(), "foureyes_fallback_benchmark")
        storages = {"sqlite": None, "postgresql": pg.replace("postgresql+psycopg://", "postgresql://")}
        for engine, url in storages.items():
            instance = instance_for(Path(home) / engine, url)
            print(f"{engine}: materialising {args.partitions:,} partitions ...", flush=True)
            days = populate(instance, args.partitions)
            print(f"{engine}: {args.lookups} lookups ...", flush=True)
            rows.append({"engine": engine, **measure(instance, days, args.lookups)})
            instance.dispose()
    write_results(rows, args.partitions)
    print((RESULTS / "fallback.md").read_text())


if __name__ == "__main__":
    main()
