"""Lineage store: ingest rate, and trace latency as the store grows to a million events.

A synthetic estate of five-step pipelines (dataset d0 -> d1 -> ... -> d5, one chain per
partition; START and COMPLETE events per step, realistic facets) is loaded into the store in
stages: 10^3, 10^4, 10^5 and 10^6 events. At each size it measures, on SQLite and PostgreSQL:

* ``ingest``: events/s through the path every emitted event takes (``LineageStore.add``,
  one event at a time, as the OpenLineage transport calls it), on 1,000 new events;
* ``bulk ingest``: events/s through ``add_many`` (``foureyes lineage ingest``), while loading;
* ``trace``: p50/p95 latency of a full trace (depth 5) of 200 random final partitions.

The trace's cost must follow the size of the answer (five hops), not the size of the store.
Results: ``benchmarks/results/lineage.md``, ``.json`` and ``lineage.png``.

    python benchmarks/lineage.py [--sizes 1000,10000,100000,1000000] [--traces 200] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from bench_results import RESULTS
from local_postgres import fresh_database, start_postgres

from foureyes.observe.lineage_trace import trace_dataset
from foureyes.resources.control_plane.resource import control_engine
from foureyes.resources.lineage.store import LineageStore

DEPTH = 5
NAMESPACE = "postgres://warehouse:5432"
PRODUCER = "https://example.org/spark-pipelines"
SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
GOALS = {"trace_p50_ms": 20.0, "ingest_per_s": 2000}
SAMPLE = 1000  # events stored one by one at each size, for the ingest rate


def chain_events(pipeline: int, partition: str) -> list[dict]:
    """START and COMPLETE of the five steps that build d5[partition] from d0[partition]."""
    events = []
    for step in range(1, DEPTH + 1):
        run_id = str(uuid.uuid4())
        source = _dataset(pipeline, step - 1, partition, "input")
        target = _dataset(pipeline, step, partition, "output")
        for kind in ("START", "COMPLETE"):
            events.append(
                {
                    "eventType": kind,
                    "eventTime": "2026-11-20T18:00:00.000Z",
                    "producer": PRODUCER,
                    "schemaURL": SCHEMA_URL,
                    "run": {"runId": run_id, "facets": {}},
                    "job": {"namespace": "spark", "name": f"pipeline{pipeline}.step{step}"},
                    "inputs": [source],
                    "outputs": [target] if kind == "COMPLETE" else [],
                }
            )
    return events


def _dataset(pipeline: int, level: int, partition: str, side: str) -> dict:
    condition = {
        "type": "partition",
        "partitions": [{"identifier": partition, "dimensions": {"date": partition}}],
    }
    facet = "inputCondition" if side == "input" else "outputCondition"
    return {
        "namespace": NAMESPACE,
        "name": f"analytics.public.pipeline{pipeline}_d{level}",
        "facets": {
            "version": {"_producer": PRODUCER, "_schemaURL": "x", "datasetVersion": f"v{pipeline}.{level}.{partition}"}
        },
        ("inputFacets" if side == "input" else "outputFacets"): {
            "subset": {"_producer": PRODUCER, "_schemaURL": "x", facet: condition}
        },
    }


class Estate:
    """Generates chains on demand: pipeline x partition, each worth ten events."""

    def __init__(self, pipelines: int = 50):
        self.pipelines = pipelines
        self.built: list[tuple[int, str]] = []
        self._day = 0

    def events(self, count: int) -> list[dict]:
        events = []
        while len(events) < count:
            pipeline, partition = self._day % self.pipelines, f"p{self._day // self.pipelines:06d}"
            self._day += 1
            self.built.append((pipeline, partition))
            events += chain_events(pipeline, partition)
        return events


def measure_store(url: str, sizes: list[int], traces: int, seed: int = 5) -> list[dict]:
    store = LineageStore(control_engine(url))
    estate = Estate()
    rng = random.Random(seed)
    rows, stored = [], 0
    for size in sizes:
        started, loaded = time.perf_counter(), 0
        while stored < size:
            batch = estate.events(min(5000, size - stored))
            store.add_many(batch)
            stored += len(batch)
            loaded += len(batch)
            print(f"    {stored:>9,} events stored", end="\r", flush=True)
        bulk = loaded / (time.perf_counter() - started) if loaded else float("nan")
        sample = estate.events(SAMPLE)
        started = time.perf_counter()
        for event in sample:
            store.add(event)
        ingest = len(sample) / (time.perf_counter() - started)
        stored += len(sample)
        latencies = []
        for pipeline, partition in rng.sample(estate.built, min(traces, len(estate.built))):
            started = time.perf_counter()
            result = trace_dataset(store, NAMESPACE, f"analytics.public.pipeline{pipeline}_d{DEPTH}", partition)
            latencies.append((time.perf_counter() - started) * 1000)
            assert sum(1 for _ in result.root.walk()) == DEPTH + 1
        rows.append(
            {
                "events": stored,
                "bulk_ingest_per_s": round(bulk),
                "ingest_per_s": round(ingest),
                "trace_p50_ms": round(statistics.median(latencies), 2),
                "trace_p95_ms": round(float(np.percentile(latencies, 95)), 2),
            }
        )
        print(f"    {stored:>9,} events: {rows[-1]}", flush=True)
    return rows


def write_results(results: dict[str, list[dict]], traces: int) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Lineage store: ingest and trace",
        "",
        f"Five-step pipelines (START + COMPLETE per step); traces of depth {DEPTH}, {traces} per size; "
        f"ingest of 1,000 events one by one (the transport's path). Machine: {os.cpu_count()} cores, "
        f"Python {platform.python_version()}.",
        "",
        "| engine | events stored | ingest (events/s) | bulk ingest (events/s) | trace p50 (ms) | trace p95 (ms) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for engine, rows in results.items():
        for r in rows:
            lines.append(
                f"| {engine} | {r['events']:,} | {r['ingest_per_s']:,} | {r['bulk_ingest_per_s']:,} | "
                f"{r['trace_p50_ms']} | {r['trace_p95_ms']} |"
            )
    largest = {engine: rows[-1] for engine, rows in results.items()}
    lines += [
        "",
        f"Goals: trace p50 under {GOALS['trace_p50_ms']:.0f} ms at the largest size, ingest at least "
        f"{GOALS['ingest_per_s']:,} events/s: "
        + "; ".join(
            f"{e}: trace {r['trace_p50_ms']} ms ({'met' if r['trace_p50_ms'] < GOALS['trace_p50_ms'] else 'not met'}), "
            f"ingest {r['ingest_per_s']:,}/s ({'met' if r['ingest_per_s'] >= GOALS['ingest_per_s'] else 'not met'})"
            for e, r in largest.items()
        ),
        "",
        "![trace latency and ingest rate against store size](lineage.png)",
    ]
    (RESULTS / "lineage.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "lineage.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, RESULTS / "lineage.png")


def plot(results: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for engine, rows in results.items():
        sizes = [r["events"] for r in rows]
        left.plot(sizes, [r["trace_p50_ms"] for r in rows], marker="o", label=f"{engine} p50")
        left.plot(sizes, [r["trace_p95_ms"] for r in rows], marker="x", linestyle="--", label=f"{engine} p95")
        right.plot(sizes, [r["ingest_per_s"] for r in rows], marker="o", label=f"{engine} one by one")
        right.plot(sizes, [r["bulk_ingest_per_s"] for r in rows], marker="x", linestyle="--", label=f"{engine} bulk")
    left.axhline(GOALS["trace_p50_ms"], color="grey", linewidth=0.8, label="goal p50")
    right.axhline(GOALS["ingest_per_s"], color="grey", linewidth=0.8, label="goal")
    for axis, title, unit in (
        (left, f"trace latency, depth {DEPTH}", "ms"),
        (right, "ingest rate", "events/s"),
    ):
        axis.set_xscale("log")
        axis.set_xlabel("events in the store")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--traces", type=int, default=200)
    parser.add_argument("--pg-url", help="a PostgreSQL server to use instead of starting .ci/postgres")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if any(later - earlier <= SAMPLE for earlier, later in itertools.pairwise(sizes)):
        parser.error(f"--sizes must grow by more than {SAMPLE:,} (each size also stores {SAMPLE:,} events one by one)")
    results = {}
    with tempfile.TemporaryDirectory() as home:
        engines = {
            "sqlite": f"sqlite:///{Path(home) / 'lineage.db'}",
            "postgresql": fresh_database(args.pg_url or start_postgres(), "foureyes_lineage_benchmark"),
        }
        for engine, url in engines.items():
            print(f"{engine}:", flush=True)
            results[engine] = measure_store(url, sizes, args.traces)
    write_results(results, args.traces)
    print((RESULTS / "lineage.md").read_text())


if __name__ == "__main__":
    main()
