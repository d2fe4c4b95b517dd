"""Supervisor throughput: proposals per second through the schema and ten rules.

For 10^4, 10^5 and 10^6 proposals (rebalancing-style trades with reference data for 200
portfolios and 2,000 instruments) it times, median of ``--runs``:

* ``pandera``: the pandera schema alone, with three column checks (the baseline);
* ``supervisor``: ``Supervisor.review``: the schema plus ten rules (three thresholds, three
  expressions with joins, two restricted lists, two concentration limits), verdicts and
  the findings' messages;

and then one full materialisation (proposals asset through the warehouse, the supervisor
checks writing every verdict to the decision log, the executor) to show the supervisor's
share of it. Results: ``benchmarks/results/supervisor.md`` (and ``.json``).

    python benchmarks/supervisor.py [--runs 3] [--sizes 10000,100000,1000000] [--materialise 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import warnings
from importlib.metadata import version

import dagster as dg
import numpy as np
import pandas as pd
import pandera.pandas as pa
from bench_results import RESULTS
from pandera.typing import Series

import foureyes
from foureyes import AssetInput, define_agent
from foureyes.checks.rule_kinds import ConcentrationLimit, Expression, RestrictedList, Threshold
from foureyes.checks.rules import Join
from foureyes.checks.supervisor import Supervisor
from foureyes.examples.finance_desk.daily_run import QUIET
from foureyes.resources.settings import FoureyesSettings
from foureyes.resources.targets.base import SqlBooksTarget, booked_actions
from foureyes.resources.warehouse.store import versioned_output

PORTFOLIOS, INSTRUMENTS = 200, 2000
GOAL = 500_000


class Trades(pa.DataFrameModel):
    proposal_id: Series[str] = pa.Field(unique=True)
    portfolio_id: Series[str]
    instrument_id: Series[str]
    trade_value: Series[float] = pa.Field(ge=-1e9, le=1e9)
    action: Series[str] = pa.Field(isin=["buy", "sell", "hold"])
    rationale: Series[str]
    confidence: Series[float] = pa.Field(ge=0, le=1)


class ThreeChecks(pa.DataFrameModel):
    """The baseline: pandera with three column checks."""

    trade_value: Series[float] = pa.Field(ge=-1e9, le=1e9)
    action: Series[str] = pa.Field(isin=["buy", "sell", "hold"])
    confidence: Series[float] = pa.Field(ge=0, le=1)


def references(seed: int = 1) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    instruments = pd.DataFrame(
        {
            "instrument_id": [f"I{i:05d}" for i in range(INSTRUMENTS)],
            "issuer": [f"ISS{i % 300:03d}" for i in range(INSTRUMENTS)],
            "sector": [f"SEC{i % 11:02d}" for i in range(INSTRUMENTS)],
        }
    )
    portfolios = pd.DataFrame(
        {
            "portfolio_id": [f"P{i:03d}" for i in range(PORTFOLIOS)],
            "client_id": [f"C{i % 50:02d}" for i in range(PORTFOLIOS)],
        }
    )
    return {
        "instruments": instruments,
        "portfolios": portfolios,
        "policies": pd.DataFrame(
            {
                "client_id": [f"C{i:02d}" for i in range(50)],
                "max_trade": 1e6,
                "max_issuer": 0.2,
                "max_sector": 0.5,
            }
        ),
        "holdings": pd.DataFrame(
            {
                "portfolio_id": np.repeat(portfolios["portfolio_id"].to_numpy(), 50),
                "instrument_id": rng.choice(instruments["instrument_id"].to_numpy(), PORTFOLIOS * 50),
                "market_value": rng.uniform(1e5, 1e6, PORTFOLIOS * 50),
            }
        ),
        "restricted": instruments[["instrument_id"]].sample(20, random_state=seed),
        "exclusions": pd.DataFrame({"client_id": ["C01", "C02"], "sector": ["SEC01", "SEC02"]}),
    }


def proposals(n: int, seed: int = 0, actions: float = 1.0) -> pd.DataFrame:
    """``n`` trade proposals; ``actions`` is the share that are trades (the rest are holds)."""
    rng = np.random.default_rng(seed)
    value = rng.normal(0, 1e5, n)
    trading = rng.random(n) < actions
    frame = pd.DataFrame(
        {
            "proposal_id": [f"{i:016x}" for i in range(n)],
            "portfolio_id": np.array([f"P{i:03d}" for i in range(PORTFOLIOS)], dtype=object)[
                rng.integers(0, PORTFOLIOS, n)
            ],
            "instrument_id": np.array([f"I{i:05d}" for i in range(INSTRUMENTS)], dtype=object)[
                rng.integers(0, INSTRUMENTS, n)
            ],
            "trade_value": np.where(trading, value, 0.0),
            "action": np.where(~trading, "hold", np.where(value > 0, "buy", "sell")).astype(object),
            "rationale": "drift back to model weight",
            "confidence": rng.random(n),
        }
    )
    return frame


CLIENT = Join("portfolios", {"portfolio_id": "portfolio_id"}, {"client_id": "ref_client"})
POLICY = Join(
    "policies",
    {"ref_client": "client_id"},
    {"max_trade": "ips_max_trade", "max_issuer": "ips_max_issuer", "max_sector": "ips_max_sector"},
)
SECTOR = Join("instruments", {"instrument_id": "instrument_id"}, {"sector": "ref_sector"})
TEN_RULES = (
    Threshold(
        id="max_buy",
        description="",
        column="trade_value",
        op="<=",
        value=5e5,
        message="{proposal_id} buy too big",
    ),
    Threshold(
        id="max_sell",
        description="",
        column="trade_value",
        op=">=",
        value=-5e5,
        message="{proposal_id} sell too big",
    ),
    Threshold(
        id="min_confidence",
        description="",
        column="confidence",
        op=">=",
        value=0.02,
        when={"action": ["buy", "sell"]},
        message="{proposal_id}: confidence {confidence:.2f}",
    ),
    Expression(
        id="client_max_trade",
        description="",
        expression="abs(trade_value) <= ips_max_trade",
        joins=(CLIENT, POLICY),
        message="{portfolio_id}: {trade_value:,.0f} above {ips_max_trade:,.0f}",
    ),
    Expression(
        id="side_matches_sign",
        description="",
        expression="(action != 'buy' or trade_value > 0) and (action != 'sell' or trade_value < 0)",
        message="{proposal_id}: {action} {trade_value}",
    ),
    Expression(
        id="hold_moves_nothing",
        description="",
        expression="action != 'hold' or trade_value == 0",
        message="{proposal_id}: hold with {trade_value}",
    ),
    RestrictedList(
        id="restricted",
        description="",
        columns=("instrument_id",),
        reference="restricted",
        when={"action": "buy"},
        message="{instrument_id} is restricted",
    ),
    RestrictedList(
        id="excluded_sector",
        description="",
        columns=("ref_client", "ref_sector"),
        reference="exclusions",
        reference_columns=("client_id", "sector"),
        joins=(CLIENT, SECTOR),
        when={"action": "buy"},
        message="{ref_client} excludes {ref_sector}",
    ),
    ConcentrationLimit(
        id="issuer_cap",
        description="",
        group_by="issuer",
        limit_column="ips_max_issuer",
        joins=(CLIENT, POLICY),
        message="{portfolio_id}: {group} at {weight:.1%}",
    ),
    ConcentrationLimit(
        id="sector_cap",
        description="",
        group_by="sector",
        limit_column="ips_max_sector",
        joins=(CLIENT, POLICY),
        message="{portfolio_id}: {group} at {weight:.1%}",
    ),
)


def median_seconds(fn, runs: int) -> float:
    """Median wall time of ``runs`` calls, after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def throughput(sizes: list[int], runs: int) -> list[dict]:
    refs = references()
    supervisor = Supervisor(schema=Trades, rules=TEN_RULES)
    rows = []
    for n in sizes:
        frame = proposals(n)
        print(f"  {n:>9,} proposals ...", flush=True)
        baseline = median_seconds(lambda f=frame: ThreeChecks.validate(f, lazy=True), runs)
        review = median_seconds(lambda f=frame: supervisor.review(f, refs), runs)
        verdicts = supervisor.review(frame, refs)
        rows.append(
            {
                "proposals": n,
                "pandera_3_checks_s": round(baseline, 3),
                "pandera_rows_per_s": int(n / baseline),
                "supervisor_s": round(review, 3),
                "supervisor_proposals_per_s": int(n / review),
                "rejected": verdicts.count("rejected"),
            }
        )
    return rows


def _reference_asset(name: str, table: pd.DataFrame) -> dg.AssetsDefinition:
    @dg.asset(name=name)
    def reference() -> pd.DataFrame:
        return table

    return reference


def materialisation(n: int, actions: float) -> dict:
    """One real materialisation on SQLite, step by step, and the supervisor's share of it."""
    refs = references()
    frame = proposals(n, actions=actions).drop(columns=["proposal_id"]).assign(trade_ref=np.arange(n))
    partitions = dg.StaticPartitionsDefinition(["p"])

    @dg.asset(partitions_def=partitions, name="bench_signals")
    def signals() -> dg.Output:
        return versioned_output(pd.DataFrame({"signal": [1.0]}))

    reference_assets = [_reference_asset(name, table) for name, table in refs.items()]

    agent = define_agent(
        "bench",
        inputs=[AssetInput("bench_signals")],
        propose=lambda ctx: frame,
        proposals_schema=Trades,
        natural_key=["trade_ref"],
        actions=["buy", "sell"],
        rules=TEN_RULES,
        references=[AssetInput(name) for name in refs],
        partitions_def=partitions,
    )
    with tempfile.TemporaryDirectory() as home:
        settings = FoureyesSettings.from_env({"FOUREYES_HOME": home})
        books = SqlBooksTarget(url=settings.warehouse_url, table="bench_books", actions=["buy", "sell"])
        defs = foureyes.definitions(agents=[agent], resources={"books": books}, settings=settings)
        resources = {**defs.resources, "io_manager": defs.resources["foureyes_io_manager"]}
        warehouse = resources["foureyes_warehouse"]
        instance = dg.DagsterInstance.ephemeral()
        dg.materialize(reference_assets, resources=resources, instance=instance, run_config=QUIET)
        started = time.perf_counter()
        result = dg.materialize(
            [signals, *reference_assets, *defs.assets, *defs.asset_checks],
            selection=[signals.key, agent.proposals_key, agent.actions_key],
            partition_key="p",
            resources=resources,
            instance=instance,
            raise_on_error=False,
            run_config=QUIET,
        )
        total = time.perf_counter() - started
        if not result.success:
            raise SystemExit("the benchmark materialisation failed")
        steps = _step_seconds(instance, result.run_id)
        stored = warehouse.read_partition("bench_proposals", "p").frame
        supervisor = Supervisor(schema=Trades, rules=TEN_RULES)
        started = time.perf_counter()
        supervisor.review(stored, refs)
        review = time.perf_counter() - started
        executed = len(booked_actions(settings.warehouse_url, "bench_books"))
    return {
        "proposals": n,
        "actions_executed": executed,
        "total_s": round(total, 2),
        "steps_s": {k: round(v, 2) for k, v in steps.items()},
        "supervisor_review_s": round(review, 2),
        "review_share": round(review / total, 3),
        "supervisor_step_share": round(steps.get("bench_supervisor", 0.0) / total, 3),
    }


def _step_seconds(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    started, seconds = {}, {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type_value == "STEP_START":
            started[event.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            seconds[event.step_key] = entry.timestamp - started[event.step_key]
    return seconds


def write_results(throughput_rows: list[dict], full: list[dict]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Supervisor throughput",
        "",
        f"Machine: {os.cpu_count()} cores, Python {platform.python_version()}, pandas {pd.__version__}, "
        f"pandera {version('pandera')}, dagster {dg.__version__}.",
        "",
        "| proposals | pandera, 3 checks (s) | pandera rows/s | supervisor: schema + 10 rules (s) "
        "| proposals/s | goal |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    for r in throughput_rows:
        met = "met" if r["supervisor_proposals_per_s"] >= GOAL else "not met"
        lines.append(
            f"| {r['proposals']:,} | {r['pandera_3_checks_s']} | {r['pandera_rows_per_s']:,} "
            f"| {r['supervisor_s']} | "
            f"{r['supervisor_proposals_per_s']:,} | {met if r['proposals'] == 1_000_000 else ''} |"
        )
    lines += [
        "",
        "## Its share of a full materialisation (SQLite, one run each)",
        "",
        "Proposals asset (propose + warehouse write), the supervisor check (read proposals and ten "
        "reference tables, review, write every verdict to the decision log), the executor (claim, book, "
        "confirm each approved action); 0.1% of the proposals are trades, the rest holds.",
        "",
        "| proposals | total (s) | proposals step (s) | supervisor step (s) | of which review (s) "
        "| executor step (s) "
        "| actions | review share | supervisor step share |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in full:
        steps = m["steps_s"]
        lines.append(
            f"| {m['proposals']:,} | {m['total_s']} | {steps.get('bench_proposals', '')} | "
            f"{steps.get('bench_supervisor', '')} | {m['supervisor_review_s']} | "
            f"{steps.get('bench_actions', '')} | "
            f"{m['actions_executed']} | {m['review_share']:.0%} | {m['supervisor_step_share']:.0%} |"
        )
    (RESULTS / "supervisor.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "supervisor.json").write_text(
        json.dumps({"throughput": throughput_rows, "materialisation": full}, indent=2)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--materialise", default="10000,100000,1000000", help="sizes for the full runs ('' for none)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    print("supervisor throughput (schema + 10 rules):", flush=True)
    rows = throughput([int(s) for s in args.sizes.split(",") if s], args.runs)
    full = []
    for n in [int(s) for s in args.materialise.split(",") if s]:
        print(f"  materialising {n:,} proposals ...", flush=True)
        full.append(materialisation(n, actions=0.001))
    write_results(rows, full)
    print((RESULTS / "supervisor.md").read_text())


if __name__ == "__main__":
    main()
