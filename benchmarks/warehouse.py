"""Write and read one partition through foureyes' warehouse vs pandas' to_sql / read_sql.

Every number comes from this run: a frame of ``--rows`` rows (default 1,000,000) by 6 columns
of mixed types is written and read back ``--runs`` times (default 3) on each engine, and the
medians are compared. foureyes goes through ``SqlWarehouseResource.write_partition`` /
``read_partition``, the code ``PartitionedSqlIOManager`` calls (one real ``dg.materialize`` per
run is timed as a sanity row); pandas uses ``to_sql`` and ``read_sql`` with their defaults on
the same SQLAlchemy engine. Each run starts from empty storage: a fresh SQLite file, dropped
PostgreSQL tables (in a database of its own, ``foureyes_benchmark``), a fresh DuckDB file.
DuckDB (the engine behind dagster-duckdb-pandas) is a reference row.

    .venv/bin/python benchmarks/warehouse.py                 # starts .ci/postgres on port 55433
    .venv/bin/python benchmarks/warehouse.py --rows 100000 --runs 1 --engines sqlite,duckdb
    .venv/bin/python benchmarks/warehouse.py --pg-url postgresql+psycopg://user@host:5432/db

Results: benchmarks/results/warehouse.md and warehouse.json.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from bench_results import RESULTS
from local_postgres import fresh_database, start_postgres

from foureyes.resources.engine import engine_for
from foureyes.resources.markdown import markdown_table
from foureyes.resources.warehouse.store import CATALOG_TABLE, PartitionedSqlIOManager, SqlWarehouseResource
from foureyes.resources.warehouse.versions import dataset_version

ASSET = "bench_prices"  # foureyes' table
PANDAS_TABLE = "bench_prices_pandas"
PG_DATABASE = "foureyes_benchmark"
SYMBOLS = ["AAPL", "MSFT", "GOOG", "AMZN", "NVDA", "META", "TSLA", "JPM"]
TO_SQL = "`DataFrame.to_sql`"
READ_SQL = "`pd.read_sql(SELECT *)`"


def make_frame(rows: int) -> pd.DataFrame:
    """Trades-like data: ids, prices, quantities, a flag, a ticker and a microsecond timestamp."""
    rng = np.random.default_rng(20261120)
    start = pd.Timestamp("2026-11-20 09:30")
    return pd.DataFrame(
        {
            "id": np.arange(rows, dtype="int64"),
            "price": rng.normal(100.0, 15.0, rows).round(4),
            "qty": rng.integers(1, 10_000, rows, dtype="int64"),
            "flag": rng.random(rows) < 0.3,
            "symbol": rng.choice(np.array(SYMBOLS, dtype=object), rows),
            "ts": start + pd.to_timedelta(np.sort(rng.integers(0, 8 * 3600 * 10**6, rows)), unit="us"),
        }
    )


def timed(label: str, action: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = action()
    seconds = time.perf_counter() - start
    print(f"    {label:<28} {seconds:7.2f} s", flush=True)
    return seconds, result


class SqliteStore:
    """A fresh SQLite file per run, at the same path, through foureyes' engine."""

    name = "sqlite"

    def __init__(self, workdir: Path) -> None:
        self.path = workdir / "warehouse.db"
        self.url = f"sqlite:///{self.path}"

    def reset(self) -> None:
        engine_for(self.url).dispose()  # pooled connections would keep the deleted file open
        for suffix in ("", "-wal", "-shm"):
            Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def server(self) -> str:
        return f"SQLite {sqlite3.sqlite_version}"


class PostgresStore:
    """A database of the benchmark's own; its tables are dropped before each run."""

    name = "postgresql"

    def __init__(self, server_url: str) -> None:
        self.url = fresh_database(server_url, PG_DATABASE)

    def reset(self) -> None:
        with engine_for(self.url).begin() as conn:
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {ASSET}, {PANDAS_TABLE}, {CATALOG_TABLE}")
        # Start each run with no dirty pages pending (needs a superuser or pg_checkpoint).
        with engine_for(self.url).connect() as conn, contextlib.suppress(sa.exc.DBAPIError):
            conn.exec_driver_sql("CHECKPOINT")

    def server(self) -> str:
        with engine_for(self.url).connect() as conn:
            return "PostgreSQL " + conn.exec_driver_sql("SHOW server_version").scalar_one()


def bench_sql(store: SqliteStore | PostgresStore, frame: pd.DataFrame, runs: int) -> dict[str, list[float]]:
    """Time foureyes and pandas, alternating which goes first, on the same engine."""
    warehouse = SqlWarehouseResource(url=store.url)
    engine = warehouse.engine
    times: dict[str, list[float]] = {"fw": [], "fr": [], "pw": [], "pr": [], "materialize": []}

    def foureyes() -> None:
        store.reset()
        seconds, record = timed("foureyes write_partition", lambda: warehouse.write_partition(ASSET, "p", frame))
        times["fw"].append(seconds)
        seconds, stored = timed("foureyes read_partition", lambda: warehouse.read_partition(ASSET, "p"))
        times["fr"].append(seconds)
        pd.testing.assert_frame_equal(stored.frame, frame)  # exact values and dtypes
        assert stored.record.version == record.version == dataset_version(stored.frame)

    def pandas() -> None:
        store.reset()
        seconds, _ = timed(
            "pandas to_sql", lambda: frame.to_sql(PANDAS_TABLE, engine, if_exists="replace", index=False)
        )
        times["pw"].append(seconds)
        seconds, back = timed("pandas read_sql", lambda: pd.read_sql(sa.text(f"SELECT * FROM {PANDAS_TABLE}"), engine))
        times["pr"].append(seconds)
        assert len(back) == len(frame)

    for run in range(runs):
        print(f"  [{store.name}] run {run + 1}/{runs}", flush=True)
        for step in (foureyes, pandas) if run % 2 == 0 else (pandas, foureyes):
            step()
        store.reset()
        times["materialize"].append(timed("dg.materialize (write+read)", lambda: materialize(store.url, frame))[0])
    store.reset()
    return times


def materialize(url: str, frame: pd.DataFrame) -> None:
    """One Dagster run: an asset partition stored by the IO manager, loaded by a downstream asset."""
    import dagster as dg

    partitions = dg.StaticPartitionsDefinition(["p"])

    @dg.asset(name=ASSET, partitions_def=partitions)
    def prices() -> pd.DataFrame:
        return frame

    @dg.asset(partitions_def=partitions)
    def prices_loaded(bench_prices: pd.DataFrame) -> None:
        assert len(bench_prices) == len(frame)

    result = dg.materialize(
        [prices, prices_loaded],
        partition_key="p",
        instance=dg.DagsterInstance.ephemeral(),
        resources={"io_manager": PartitionedSqlIOManager(warehouse=SqlWarehouseResource(url=url))},
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    assert result.success


def bench_duckdb(workdir: Path, frame: pd.DataFrame, runs: int) -> dict[str, list[float]]:
    """dagster-duckdb-pandas' way: register the frame, CREATE TABLE AS; read with ``.df()``."""
    import duckdb

    path = workdir / "warehouse.duckdb"
    times: dict[str, list[float]] = {"write": [], "read": []}

    def write() -> None:
        with duckdb.connect(str(path)) as con:
            con.register("frame", frame)
            con.execute(f"CREATE TABLE {ASSET} AS SELECT * FROM frame")

    def read() -> pd.DataFrame:
        with duckdb.connect(str(path)) as con:
            return con.execute(f"SELECT * FROM {ASSET}").df()

    for run in range(runs):
        print(f"  [duckdb] run {run + 1}/{runs}", flush=True)
        for suffix in ("", ".wal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        times["write"].append(timed("duckdb CREATE TABLE AS", write)[0])
        seconds, back = timed("duckdb SELECT .df()", read)
        times["read"].append(seconds)
        assert len(back) == len(frame)
    return times


def summarise(engine: str, times: dict[str, list[float]]) -> list[dict[str, object]]:
    if engine == "duckdb":
        return [
            _row(engine, "write", None, "register + `CREATE TABLE AS`", times["write"]),
            _row(engine, "read", None, "`SELECT *` + `.df()`", times["read"]),
        ]
    baseline_both = [w + r for w, r in zip(times["pw"], times["pr"], strict=True)]
    return [
        _row(engine, "write", times["fw"], TO_SQL, times["pw"]),
        _row(engine, "read", times["fr"], READ_SQL, times["pr"]),
        _row(engine, "dg.materialize, write + read", times["materialize"], "to_sql + read_sql", baseline_both),
    ]


def _row(
    engine: str, operation: str, foureyes: list[float] | None, baseline: str, baseline_times: list[float]
) -> dict[str, object]:
    ours = statistics.median(foureyes) if foureyes else None
    theirs = statistics.median(baseline_times)
    return {
        "engine": engine,
        "operation": operation,
        "foureyes_median_s": ours,
        "baseline": baseline,
        "baseline_median_s": theirs,
        "ratio": theirs / ours if ours else None,
        "foureyes_runs_s": foureyes,
        "baseline_runs_s": baseline_times,
    }


def machine(servers: list[str]) -> str:
    packages = ", ".join(f"{p} {version(p)}" for p in ("pandas", "numpy", "sqlalchemy", "psycopg", "duckdb"))
    return (
        f"{os.cpu_count()} CPUs ({platform.machine()}), Python {platform.python_version()}, "
        f"{packages}; {', '.join(servers)}"
    )


def write_results(rows: list[dict[str, object]], header: dict[str, object], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "warehouse.json").write_text(json.dumps({**header, "results": rows}, indent=2) + "\n")
    table = pd.DataFrame(
        {
            "engine": [r["engine"] for r in rows],
            "operation": [r["operation"] for r in rows],
            "foureyes median (s)": [_seconds(r["foureyes_median_s"]) for r in rows],
            "baseline": [r["baseline"] for r in rows],
            "baseline median (s)": [_seconds(r["baseline_median_s"]) for r in rows],
            "baseline / foureyes": [f"{r['ratio']:.1f}x" if r["ratio"] else "reference" for r in rows],
        }
    )
    (out / "warehouse.md").write_text(
        "# Warehouse benchmark\n\n"
        f"{header['rows']:,} rows x 6 columns ({header['frame']}), one partition; median of "
        f"{header['runs']} run(s), each from empty storage; measured {header['measured']}.\n"
        'Baselines use the same SQLAlchemy engine with pandas\' defaults (`to_sql(if_exists="replace", '
        "index=False)`, `read_sql` of `SELECT *`, which on SQLite returns the flag as int and the "
        "times as text); foureyes reads return the exact written frame and dtypes.\n\n"
        f"{markdown_table(table)}\n\nMachine: {header['machine']}.\n"
    )


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the partition")
    parser.add_argument("--runs", type=int, default=3, help="runs per engine; the median is reported")
    parser.add_argument("--pg-url", help="a PostgreSQL server to use instead of starting .ci/postgres")
    parser.add_argument("--engines", default="sqlite,postgresql,duckdb", help="comma-separated subset")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    engines = args.engines.split(",")

    frame = make_frame(args.rows)
    frame_description = ", ".join(f"{name} {dtype}" for name, dtype in frame.dtypes.items())
    print(f"{args.rows:,} rows: {frame_description}; {args.runs} run(s) per engine", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="foureyes-bench-"))
    rows: list[dict[str, object]] = []
    servers = []
    try:
        stores = []
        if "sqlite" in engines:
            stores.append(SqliteStore(workdir))
        if "postgresql" in engines:
            stores.append(PostgresStore(args.pg_url or start_postgres()))
        for store in stores:
            servers.append(store.server())
            rows += summarise(store.name, bench_sql(store, frame, args.runs))
        if "duckdb" in engines:
            rows += summarise("duckdb", bench_duckdb(workdir, frame, args.runs))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    header = {
        "rows": args.rows,
        "runs": args.runs,
        "frame": frame_description,
        "measured": dt.date.today().isoformat(),
        "machine": machine(servers),
    }
    write_results(rows, header, args.out)
    print((args.out / "warehouse.md").read_text())


if __name__ == "__main__":
    main()
