"""Supervisor throughput: proposals per second through the schema and ten rules.

For 10^4, 10^5 and 10^6 proposals (rebalancing-style trades with reference data for 200
portfolios and 2,000 instruments) it times, median of ``--runs``:

* ``pandera``: the pandera schema alone, with three column checks (the baseline);
* ``supervisor``: ``Supervisor.review``: the schema plus ten rules (three thresholds, three
  expressions with joins, two restricted lists, two concentration limits), verdicts and
  the findings' messages;

then one full materialisation per engine (proposals asset through the warehouse, the supervisor
checks writing every verdict to the decision log, the executor), step by step, with the share
of writing the verdicts; and last, writing one supervision's verdicts the way foureyes did before
(a ``Decision`` and a dict per proposal, one single-row INSERT each or one ``write_row`` each)
against the way it does now (columns, multi-row INSERTs or COPY), in the same run.
SQLite and PostgreSQL hold the warehouse and the control plane alike; PostgreSQL is the durable
local server of ``.ci/postgres`` (port 55433) unless ``--pg-url`` names one.
Results: ``benchmarks/results/supervisor.md`` (and ``.json``).

    python benchmarks/supervisor.py [--runs 3] [--sizes 10000,100000,1000000] [--materialise 1000000]
    python benchmarks/supervisor.py --pg-url postgresql+psycopg://user@host:5432/db --baseline 100000
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import statistics
import tempfile
import time
import uuid
import warnings
from collections import defaultdict
from collections.abc import Iterator
from importlib.metadata import version

import dagster as dg
import numpy as np
import pandas as pd
import pandera.pandas as pa
from bench_results import RESULTS
from local_postgres import fresh_database, start_postgres
from pandera.typing import Series

import foureyes
from foureyes import AssetInput, define_agent
from foureyes.checks.rule_kinds import ConcentrationLimit, Expression, RestrictedList, Threshold
from foureyes.checks.rules import Join
from foureyes.checks.supervision_checks import _decisions
from foureyes.checks.supervisor import Supervisor
from foureyes.examples.finance_desk.daily_run import QUIET
from foureyes.resources.control_plane.decisions import Decision, DecisionLog, SupervisionRecord, _to_row
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.control_plane.schema import supervisions
from foureyes.resources.engine import dispose_all, engine_for, sqlite_timestamp, write_transaction
from foureyes.resources.json_values import json_records
from foureyes.resources.settings import FoureyesSettings
from foureyes.resources.targets.base import SqlBooksTarget, booked_actions
from foureyes.resources.warehouse.store import versioned_output

PORTFOLIOS, INSTRUMENTS = 200, 2000
GOAL = 500_000
END_TO_END_GOAL_S = 15.0  # 10^6 proposals, materialised end to end
PG_DATABASE = "foureyes_bench_supervisor"
ENGINES = ("sqlite", "postgresql")


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


def materialisation(n: int, actions: float, engine: str = "sqlite", pg_server: str | None = None) -> dict:
    """One real materialisation, step by step, and the shares of reviewing and of writing the verdicts."""
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
        settings = FoureyesSettings.from_env({"FOUREYES_HOME": home, **_store_env(engine, pg_server, str(n))})
        books = SqlBooksTarget(url=settings.warehouse_url, table="bench_books", actions=["buy", "sell"])
        defs = foureyes.definitions(agents=[agent], resources={"books": books}, settings=settings)
        resources = {**defs.resources, "io_manager": defs.resources["foureyes_io_manager"]}
        instance = dg.DagsterInstance.ephemeral()
        dg.materialize(reference_assets, resources=resources, instance=instance, run_config=QUIET)
        with timed((DecisionLog, "record"), (Supervisor, "review")) as seconds:
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
        executed = len(booked_actions(settings.warehouse_url, "bench_books"))
        dispose_all()
    write, review = seconds["DecisionLog.record"], seconds["Supervisor.review"]
    return {
        "engine": engine,
        "proposals": n,
        "actions_executed": executed,
        "total_s": round(total, 2),
        "steps_s": {k: round(v, 2) for k, v in steps.items()},
        "supervisor_review_s": round(review, 2),
        "verdict_write_s": round(write, 2),
        "review_share": round(review / total, 3),
        "verdict_write_share": round(write / total, 3),
        "supervisor_step_share": round(steps.get("bench_supervisor", 0.0) / total, 3),
    }


def _store_env(engine: str, pg_server: str | None, run: str) -> dict[str, str]:
    """The warehouse and the control plane on ``engine``: SQLite files in the home, or a fresh database
    (one per ``run``: a process creates a control-plane schema once per URL)."""
    if engine == "sqlite":
        return {}
    url = fresh_database(pg_server, f"{PG_DATABASE}_{run}")
    return {"FOUREYES_WAREHOUSE_URL": url, "FOUREYES_CONTROL_URL": url}


@contextlib.contextmanager
def timed(*methods: tuple[type, str]) -> Iterator[dict[str, float]]:
    """Seconds spent in each method (all calls, in this process) while the block runs."""
    seconds: dict[str, float] = defaultdict(float)
    originals = [(owner, name, getattr(owner, name)) for owner, name in methods]

    def wrapped(owner: type, name: str, method):
        def timing(*args, **kwargs):
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                seconds[f"{owner.__name__}.{name}"] += time.perf_counter() - started

        return timing

    for owner, name, method in originals:
        setattr(owner, name, wrapped(owner, name, method))
    try:
        yield seconds
    finally:
        for owner, name, method in originals:
            setattr(owner, name, method)


def verdict_writes(n: int, engine: str, pg_server: str | None, runs: int) -> dict:
    """One supervision's verdicts written as before (a Decision and a dict per proposal) and as now."""
    refs = references()
    frame = proposals(n, actions=0.001).assign(tier="FULL", served_inputs="")
    supervision = Supervisor(schema=Trades, rules=TEN_RULES).review(frame, refs)
    with tempfile.TemporaryDirectory() as home:
        url = _store_env(engine, pg_server, "writes").get("FOUREYES_CONTROL_URL") or f"sqlite:///{home}/control.db"
        control = ControlPlaneResource(url=url)
        control.decision_log.supervision("bench", "p", "v")  # creates the schema

        def record() -> SupervisionRecord:
            return SupervisionRecord(uuid.uuid4().hex, "bench", "p", "v", False, "", {"proposals": n}, run_id="r")

        def before() -> None:
            batch = _per_row_decisions(record(), frame, supervision)
            _per_row_insert(control.engine, [_to_row(d) for d in batch], batch and batch[0])

        def now() -> None:
            supervised = record()
            control.decision_log.record(_decisions(supervised, frame, supervision, None, {}), supervision=supervised)

        old, new = median_seconds(before, runs), median_seconds(now, runs)
        dispose_all()
    return {
        "engine": engine,
        "proposals": n,
        "before_s": round(old, 2),
        "now_s": round(new, 2),
        "speedup": round(old / new, 1),
    }


def _per_row_decisions(record: SupervisionRecord, frame: pd.DataFrame, supervision) -> list[Decision]:
    """The baseline: the supervisor's decisions as it built them before, one Decision per row."""
    reasons = supervision.reasons()
    built = []
    for position, proposal, verdict in zip(
        frame.index, json_records(frame), supervision.verdicts.to_numpy(), strict=True
    ):
        confidence = proposal.get("confidence")
        built.append(
            Decision(
                agent=record.agent,
                partition=record.partition,
                proposal_id=str(proposal.get("proposal_id") or f"row-{position}"),
                proposals_version=record.proposals_version,
                supervision_id=record.supervision_id,
                action=str(proposal.get("action") or "unknown"),
                proposal=proposal,
                rationale=str(proposal.get("rationale") or ""),
                confidence=float(confidence) if isinstance(confidence, float) and math.isfinite(confidence) else None,
                verdict=str(verdict),
                reasons=reasons.get(position, ()),
                run_id=record.run_id,
                tier=proposal.get("tier") or None,
                decided_at=record.supervised_at,
            )
        )
    return built


def _per_row_insert(engine, rows: list[dict[str, object]], first: Decision) -> None:
    """The baseline: dict rows turned into columns, then one single-row INSERT or one COPY ``write_row`` each."""
    with write_transaction(engine) as conn:
        names = list(rows[0])
        columns = [[row[name] for row in rows] for name in names]
        target = f"decisions ({', '.join(names)})"
        if conn.dialect.name == "sqlite":
            at = names.index("decided_at")
            columns[at] = list(map(sqlite_timestamp, columns[at]))
            sql = f"INSERT INTO {target} VALUES ({', '.join('?' for _ in names)})"
            conn.connection.driver_connection.cursor().executemany(sql, zip(*columns, strict=True))
        else:
            with conn.connection.driver_connection.cursor() as cursor, cursor.copy(f"COPY {target} FROM STDIN") as copy:
                for row in zip(*columns, strict=True):
                    copy.write_row(row)
        conn.execute(
            supervisions.insert().values(
                supervision_id=first.supervision_id,
                agent=first.agent,
                partition_key=first.partition,
                proposals_version=first.proposals_version,
                run_id=first.run_id,
                blocked=False,
                block_reason="",
                counts={"proposals": len(rows)},
                supervised_at=first.decided_at,
                status="completed",
            )
        )


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


def write_results(throughput_rows: list[dict], full: list[dict], writes: list[dict], header: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Supervisor throughput",
        "",
        f"Machine: {header['machine']}; load average {header['load']} when the runs began; measured "
        f"{header['measured']}.",
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
        "## A full materialisation (one run each)",
        "",
        "Proposals asset (propose + warehouse write), the supervisor check (read proposals and ten "
        "reference tables, review, write every verdict to the decision log in one transaction with the "
        "supervision, approvals and outbox entries), the executor (claim, book, confirm each approved "
        "action); 0.1% of the proposals are trades, the rest holds. The warehouse and the control plane "
        f"are on the engine named. Goal: 10^6 proposals end to end in under {END_TO_END_GOAL_S:.0f} s.",
        "",
        "| engine | proposals | total (s) | proposals step (s) | supervisor step (s) | of which review (s) "
        "| of which verdict write (s) | executor step (s) | actions | verdict write share | goal |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for m in full:
        steps = m["steps_s"]
        met = ("met" if m["total_s"] < END_TO_END_GOAL_S else "not met") if m["proposals"] == 1_000_000 else ""
        lines.append(
            f"| {m['engine']} | {m['proposals']:,} | {m['total_s']} | {steps.get('bench_proposals', '')} | "
            f"{steps.get('bench_supervisor', '')} | {m['supervisor_review_s']} | {m['verdict_write_s']} | "
            f"{steps.get('bench_actions', '')} | {m['actions_executed']} | {m['verdict_write_share']:.0%} | {met} |"
        )
    lines += [
        "",
        "## Writing one supervision's verdicts, before and now (same run)",
        "",
        "Before: a `Decision` and a dict per proposal, JSON-encoded one by one, then one single-row INSERT "
        "per proposal (SQLite) or one COPY `write_row` per proposal (PostgreSQL). Now: the decision log's "
        "columns built from the table, multi-row INSERTs on the driver (SQLite) or COPY (PostgreSQL). "
        "Both in one transaction with the supervision row; median of the runs.",
        "",
        "| engine | proposals | before (s) | now (s) | before / now |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {w['engine']} | {w['proposals']:,} | {w['before_s']} | {w['now_s']} | {w['speedup']}x |" for w in writes
    ]
    (RESULTS / "supervisor.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "supervisor.json").write_text(
        json.dumps(
            {**header, "throughput": throughput_rows, "materialisation": full, "verdict_writes": writes}, indent=2
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--materialise", default="1000000", help="sizes for the full runs ('' for none)")
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated subset of sqlite,postgresql")
    parser.add_argument("--pg-url", help="a PostgreSQL server to use instead of starting .ci/postgres")
    parser.add_argument(
        "--baseline",
        type=int,
        help="proposals for the before/now verdict writes (default: the largest full run, at most 100,000)",
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    engines = [e for e in args.engines.split(",") if e]
    sizes = [int(s) for s in args.materialise.split(",") if s]
    baseline = args.baseline or min(max(sizes, default=100_000), 100_000)
    pg_server = (args.pg_url or start_postgres()) if "postgresql" in engines else None
    header = {
        "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}, pandas {pd.__version__}, "
        f"pandera {version('pandera')}, dagster {dg.__version__}, SQLite {_sqlite_version()}"
        + (f", PostgreSQL {_pg_version(pg_server)}" if pg_server else ""),
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "measured": dt.date.today().isoformat(),
    }
    print("supervisor throughput (schema + 10 rules):", flush=True)
    rows = throughput([int(s) for s in args.sizes.split(",") if s], args.runs)
    full, writes = [], []
    for engine in engines:
        for n in sizes:
            print(f"  materialising {n:,} proposals on {engine} ...", flush=True)
            full.append(materialisation(n, actions=0.001, engine=engine, pg_server=pg_server))
        print(f"  writing {baseline:,} verdicts on {engine}, before and now ...", flush=True)
        writes.append(verdict_writes(baseline, engine, pg_server, args.runs))
    write_results(rows, full, writes, header)
    print((RESULTS / "supervisor.md").read_text())


def _sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


def _pg_version(server: str) -> str:
    with engine_for(server).connect() as conn:
        return conn.exec_driver_sql("SHOW server_version").scalar_one().split()[0]


if __name__ == "__main__":
    main()
