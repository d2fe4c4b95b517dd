"""What foureyes costs over plain Dagster: the same agents, the same computation, 20 partitions.

For each of 20 business days (after two warm-up days), in one process and one Dagster
instance, alternating:

* ``foureyes``: the ``foureyes_daily`` job as shipped — for each of the three agents its
  proposals asset (inputs served through the fallback resource, model chain, tier, agent-run
  record, heartbeats), its supervisor checks (schema, rules, reviewers, decision log, approval
  requests, outbox) and its executor (outbox delivery, receipts, tool-call log), OpenLineage
  events to the control plane, proposals and actions stored by the warehouse IO manager;
* ``plain``: two plain Dagster assets per agent doing the same computation — the proposals
  asset reads the same input partitions from the same warehouse and calls the same
  ``propose`` function; the actions asset appends the non-hold proposals to a SQL table.
  Outputs go to Dagster's default filesystem IO manager.

It reports the wall time per run and the ratio, then where the extra time goes: per step
(from the run's event log) and, from one profiled run per day, the cumulative time of
foureyes' own stages (profiled on other days than the timed ones: a profiler slows what it
watches). Goal: foureyes at most 1.2x plain.

    python benchmarks/overhead.py [--partitions 20] [--warmup 2]
"""

import argparse
import cProfile
import json
import os
import platform
import pstats
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import pandas as pd
from bench_results import RESULTS

from foureyes import Agent, ProposalContext
from foureyes.checks.supervisor import HOLD
from foureyes.examples.finance_desk.calendar import BUSINESS_DAYS, business_days_ending
from foureyes.examples.finance_desk.daily_run import QUIET
from foureyes.examples.finance_desk.definitions import DAILY_JOB, MARKET_DATA_JOB, build_definitions
from foureyes.examples.finance_desk.margin_calls import MARGIN_CALLS
from foureyes.examples.finance_desk.rebalancing import REBALANCING
from foureyes.examples.finance_desk.var_risk import VAR_RISK
from foureyes.resources.asset_inputs import AssetInput
from foureyes.resources.engine import engine_for
from foureyes.resources.settings import FoureyesSettings
from foureyes.resources.warehouse.store import SqlWarehouseResource

AGENTS = (VAR_RISK, MARGIN_CALLS, REBALANCING)
GOAL = 1.2
END = "2026-11-20"
STAGES: dict[str, tuple[str, str]] = {  # stage -> (file suffix, function) whose cumulative time is the stage's
    "serve inputs (fallback, Dagster's record)": ("resources/fallback/inputs.py", "serve"),
    "agent compute (propose)": ("agent_assets/propose/proposals.py", "_run_agent"),
    "supervisor review (schema, rules, reviewers)": ("checks/supervisor.py", "review"),
    "decision log + approvals + outbox (one txn)": ("resources/control_plane/decisions.py", "record"),
    "executor delivery + receipts": ("agent_assets/execute/executor.py", "deliver_partition"),
    "warehouse writes (IO manager)": ("resources/warehouse/store.py", "handle_output"),
    "warehouse reads (executor, supervisor)": ("resources/warehouse/store.py", "read_partition"),
    "lineage events (START/COMPLETE)": ("resources/lineage/emitter.py", "_emit"),
    "agent-run record": ("resources/control_plane/agent_runs.py", "record"),
    "heartbeats and phases": ("resources/control_plane/agent_state.py", "report"),
    "tool-call log": ("resources/control_plane/tool_calls.py", "record"),
}


def plain_assets(spec: Agent) -> list[dg.AssetsDefinition]:
    """The agent as two plain Dagster assets: the same inputs and ``propose``, no supervision."""

    @dg.asset(name=f"{spec.name}_plain_proposals", partitions_def=BUSINESS_DAYS)
    def proposals(context: dg.AssetExecutionContext, warehouse: SqlWarehouseResource) -> pd.DataFrame:
        partition = context.partition_key
        inputs = {
            i.name: warehouse.read_partition(i.key, _stored_as(warehouse, i, partition)).frame for i in spec.inputs
        }
        return spec.propose(ProposalContext(spec.name, partition, inputs, context.log))

    @dg.asset(
        name=f"{spec.name}_plain_actions", partitions_def=BUSINESS_DAYS, ins={"proposed": dg.AssetIn(proposals.key)}
    )
    def actions(context: dg.AssetExecutionContext, warehouse: SqlWarehouseResource, proposed: pd.DataFrame) -> int:
        chosen = proposed[proposed["action"] != HOLD].astype(str).assign(partition_key=context.partition_key)
        chosen.to_sql(f"{spec.name}_plain_books", engine_for(warehouse.url), if_exists="append", index=False)
        return len(chosen)

    return [proposals, actions]


def _stored_as(warehouse: SqlWarehouseResource, spec: AssetInput, partition: str) -> str | None:
    """The run's partition of a partitioned input, None for a whole table (as the warehouse holds it)."""
    return partition if warehouse.partition_record(spec.key, partition) is not None else None


def step_seconds(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    """Seconds per step of a run, from its STEP_SUCCESS events."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS).records
    return {
        r.event_log_entry.dagster_event.step_key: r.event_log_entry.dagster_event.event_specific_data.duration_ms / 1000
        for r in records
    }


def timed(run: Callable[[], dg.ExecuteInProcessResult]) -> tuple[float, dg.ExecuteInProcessResult]:
    started = time.perf_counter()
    result = run()
    elapsed = time.perf_counter() - started
    if not result.success:
        raise RuntimeError(f"benchmark run {result.run_id} failed")
    return elapsed, result


def stage_seconds(profile: cProfile.Profile) -> dict[str, float]:
    """Cumulative seconds of each foureyes stage in a profiled run."""
    stats = pstats.Stats(profile).stats
    found: dict[str, float] = defaultdict(float)
    for (path, _line, function), (_cc, _nc, _tt, cumulative, _callers) in stats.items():
        for stage, (suffix, name) in STAGES.items():
            if function == name and path.endswith(suffix):
                found[stage] += cumulative
    return dict(found)


def measure(partitions: int, warmup: int, home: Path) -> dict:
    settings = FoureyesSettings.from_env({"FOUREYES_HOME": str(home)})
    defs = build_definitions(settings)
    resources = defs.resources
    plain = [asset for spec in AGENTS for asset in plain_assets(spec)]
    days = business_days_ending(END, 2 * partitions + warmup)
    foureyes_job, market_data = defs.resolve_job_def(DAILY_JOB), defs.resolve_job_def(MARKET_DATA_JOB)
    plain_resources = {
        "warehouse": resources["foureyes_warehouse"],
        "io_manager": dg.FilesystemIOManager(base_dir=str(home / "plain")),
    }
    runs: dict[str, list[float]] = {"foureyes": [], "plain": []}
    steps: dict[str, dict[str, list[float]]] = {"foureyes": defaultdict(list), "plain": defaultdict(list)}
    stages: dict[str, list[float]] = defaultdict(list)
    profiled_runs: list[float] = []
    with dg.DagsterInstance.ephemeral() as instance:
        for n, day in enumerate(days):
            market_data.execute_in_process(partition_key=day, instance=instance, run_config=QUIET)
            if n >= warmup and (n - warmup) % 2:  # every other day: a profiled first run, for the breakdown
                profiler = cProfile.Profile()
                started = time.perf_counter()
                profiler.runcall(
                    foureyes_job.execute_in_process, partition_key=day, instance=instance, run_config=QUIET
                )
                profiled_runs.append(time.perf_counter() - started)
                for stage, seconds in stage_seconds(profiler).items():
                    stages[stage].append(seconds)
                continue
            fe_s, fe = timed(lambda day=day: foureyes_job.execute_in_process(
                partition_key=day, instance=instance, run_config=QUIET))  # fmt: skip
            plain_s, pl = timed(lambda day=day: dg.materialize(
                plain, partition_key=day, instance=instance, run_config=QUIET, resources=plain_resources))  # fmt: skip
            if n < warmup:
                continue
            runs["foureyes"].append(fe_s)
            runs["plain"].append(plain_s)
            for kind, result in (("foureyes", fe), ("plain", pl)):
                per_kind: dict[str, float] = defaultdict(float)
                for step, seconds in step_seconds(instance, result.run_id).items():
                    per_kind[_step_kind(step)] += seconds
                for step_kind, seconds in per_kind.items():
                    steps[kind][step_kind].append(seconds)
            print(f"  {day}: foureyes {fe_s * 1000:.0f} ms, plain {plain_s * 1000:.0f} ms", flush=True)
    return {
        "runs_s": runs,
        "steps_s": {kind: {k: statistics.mean(v) for k, v in per.items()} for kind, per in steps.items()},
        "stages_s": {k: statistics.mean(v) for k, v in stages.items()},
        "profiled_run_s": statistics.mean(profiled_runs),
    }


def _step_kind(step: str) -> str:
    """A step key without its agent: proposals, supervisor, actions (summed over the agents)."""
    for spec in AGENTS:
        step = step.replace(f"{spec.name}_", "")
    return step


def write_results(found: dict, partitions: int) -> str:
    fe, plain = found["runs_s"]["foureyes"], found["runs_s"]["plain"]
    fe_med, plain_med = statistics.median(fe), statistics.median(plain)
    ratio = fe_med / plain_med
    lines = [
        "# foureyes overhead over plain Dagster",
        "",
        f"The three shipped agents, {partitions} business days, one in-process run per day each way, alternating; "
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, SQLite embedded default.",
        "",
        "| | median run (ms) | mean run (ms) | min (ms) | max (ms) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, samples in (("plain Dagster (6 assets)", plain), ("foureyes (6 assets + 3 supervisor checks)", fe)):
        lines.append(
            f"| {name} | {statistics.median(samples) * 1000:.0f} | {statistics.mean(samples) * 1000:.0f} | "
            f"{min(samples) * 1000:.0f} | {max(samples) * 1000:.0f} |"
        )
    lines += [
        "",
        f"**Ratio foureyes / plain (medians): {ratio:.2f}x** — goal at most {GOAL}x: "
        f"{'met' if ratio <= GOAL else 'not met'}.",
        "",
        "## Per step (mean seconds per run, summed over the three agents)",
        "",
        "| step | plain | foureyes |",
        "|---|---:|---:|",
    ]
    step_kinds = sorted(set(found["steps_s"]["plain"]) | set(found["steps_s"]["foureyes"]))
    for kind in step_kinds:
        p, f = found["steps_s"]["plain"].get(kind), found["steps_s"]["foureyes"].get(kind)
        lines.append(f"| {kind} | {'-' if p is None else f'{p:.3f}'} | {'-' if f is None else f'{f:.3f}'} |")
    lines += [
        "",
        f"## Where foureyes' time goes (cProfile, mean of {partitions} profiled runs on other days, "
        f"{found['profiled_run_s'] * 1000:.0f} ms each with the profiler on; a stage includes what it calls)",
        "",
        "| stage | seconds per run | share of the profiled run |",
        "|---|---:|---:|",
    ]
    for stage, seconds in sorted(found["stages_s"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {stage} | {seconds:.3f} | {seconds / found['profiled_run_s']:.0%} |")
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "overhead.md").write_text(text)
    (RESULTS / "overhead.json").write_text(json.dumps({**found, "ratio": ratio}, indent=2) + "\n")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        print(f"materialising {args.partitions} + {args.warmup} warm-up business days both ways ...", flush=True)
        found = measure(args.partitions, args.warmup, Path(home))
    print(write_results(found, args.partitions))


if __name__ == "__main__":
    main()
