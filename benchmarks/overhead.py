"""What foureyes costs over Dagster by hand: the same agents, the same computation, 20 partitions.

For each of 20 business days (after two warm-up days), in one process and one Dagster
instance, in turn (the order rotates every day):

* ``foureyes``: the shipped finance desk's three agents (``var_risk``, ``margin_calls``,
  ``rebalancing``: the ``foureyes_daily`` job less ``loan_triage``) as shipped — for each its
  proposals asset (inputs served through the fallback resource, model chain, tier, agent-run
  record, heartbeats), its supervisor checks (schema, rules, reviewers, decision log, approval
  requests, outbox) and its executor (outbox delivery, receipts, tool-call log), OpenLineage
  events to the control plane, proposals and actions stored by the warehouse IO manager;
* ``hand-written``: what a user who wanted the same guarantees would write in plain Dagster —
  a proposals asset (the same inputs read from the same warehouse, the same ``propose``, a
  proposal id), a blocking ``@dg.asset_check`` that validates the agent's own pandera model
  and evaluates the agent's own rule objects against the same reference tables, and an
  executor asset that appends the approved rows (not ``hold``, no rule of severity error
  broken) to a SQL table in the same warehouse;
* ``plain``: the same without supervision — the proposals asset and an actions asset that
  appends the non-hold proposals to a SQL table.

The hand-written and plain variants keep their proposals in Dagster's default filesystem IO
manager; all three run as prebuilt jobs through ``execute_in_process``. It reports the wall
time per run and the ratios (foureyes against the hand-written baseline, the fair one, and
against plain), then where the time goes: per stage of the supervisor loop (from each run's
event log) and, from one profiled foureyes run per day, the cumulative time of foureyes' own
stages (profiled on other days than the timed ones: a profiler slows what it watches).
Goal: foureyes at most 1.2x the hand-written baseline.

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
import warnings
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pandera.errors as pa_errors
from bench_results import RESULTS

from foureyes import Agent, ProposalContext
from foureyes.checks.rules import evaluate
from foureyes.checks.supervisor import BLOCK, HOLD
from foureyes.examples.finance_desk.calendar import BUSINESS_DAYS, business_days_ending
from foureyes.examples.finance_desk.daily_run import QUIET
from foureyes.examples.finance_desk.definitions import MARKET_DATA_JOB, build_definitions
from foureyes.examples.finance_desk.margin_calls import MARGIN_CALLS
from foureyes.examples.finance_desk.rebalancing import REBALANCING
from foureyes.examples.finance_desk.var_risk import VAR_RISK
from foureyes.propose.proposals import proposal_ids
from foureyes.resources.asset_inputs import AssetInput
from foureyes.resources.engine import engine_for
from foureyes.resources.settings import FoureyesSettings
from foureyes.resources.warehouse.store import SqlWarehouseResource

AGENTS = (VAR_RISK, MARGIN_CALLS, REBALANCING)
FOUREYES, HAND, PLAIN = "foureyes", "hand-written", "plain"
VARIANTS = (FOUREYES, HAND, PLAIN)
LOOP_STAGES = ("propose", "supervise", "execute")
GOAL = 1.2
END = "2026-11-20"
STAGES: dict[str, tuple[str, str]] = {  # stage -> (file suffix, function) whose cumulative time is the stage's
    "serve inputs (fallback, Dagster's record)": ("resources/fallback/inputs.py", "serve"),
    "agent compute (propose)": ("agent_assets/propose/proposals.py", "_run_agent"),
    "judge before storing (baseline fill-in)": ("agent_assets/propose/proposals.py", "_filled_in"),
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
        return spec.propose(
            ProposalContext(spec.name, partition, _read(warehouse, spec.inputs, partition), context.log)
        )

    @dg.asset(
        name=f"{spec.name}_plain_actions", partitions_def=BUSINESS_DAYS, ins={"proposed": dg.AssetIn(proposals.key)}
    )
    def actions(context: dg.AssetExecutionContext, warehouse: SqlWarehouseResource, proposed: pd.DataFrame) -> int:
        return _book(warehouse, f"{spec.name}_plain_books", proposed[proposed["action"] != HOLD], context.partition_key)

    return [proposals, actions]


def hand_supervised(spec: Agent) -> dg.Definitions:
    """The agent supervised by hand: its own pandera model and rules in a blocking check, then an executor.

    The declarations are the agent's own, called the way a user calls them: the pandera model's
    ``validate(lazy=True)``, and each rule object's vectorised test through the rule engine's
    ``evaluate`` (the pandas a user would write for those rules, without restating them).
    The executor asks the same rules again: a check cannot hand its verdicts downstream.
    """

    @dg.asset(name=f"{spec.name}_hand_proposals", partitions_def=BUSINESS_DAYS)
    def proposals(context: dg.AssetExecutionContext, warehouse: SqlWarehouseResource) -> pd.DataFrame:
        partition = context.partition_key
        proposed = spec.propose(
            ProposalContext(spec.name, partition, _read(warehouse, spec.inputs, partition), context.log)
        )
        return proposed.assign(proposal_id=proposal_ids(spec.name, partition, proposed, spec.natural_key))

    with warnings.catch_warnings():  # partitioned asset checks are a Dagster preview feature
        warnings.simplefilter("ignore", dg.PreviewWarning)

        @dg.asset_check(asset=proposals, name="supervision", blocking=True, partitions_def=BUSINESS_DAYS)
        def supervision(
            context: dg.AssetCheckExecutionContext, warehouse: SqlWarehouseResource, proposed: pd.DataFrame
        ) -> dg.AssetCheckResult:
            try:
                spec.proposals_schema.validate(proposed, lazy=True)
            except pa_errors.SchemaErrors as errors:
                return dg.AssetCheckResult(passed=False, metadata={"schema_failures": len(errors.failure_cases)})
            rejected = int(_rejected(spec, warehouse, proposed, context.partition_key).sum())
            severity = dg.AssetCheckSeverity.ERROR if spec.on_rejection == BLOCK else dg.AssetCheckSeverity.WARN
            return dg.AssetCheckResult(passed=rejected == 0, severity=severity, metadata={"rejected": rejected})

    @dg.asset(
        name=f"{spec.name}_hand_actions", partitions_def=BUSINESS_DAYS, ins={"proposed": dg.AssetIn(proposals.key)}
    )
    def actions(context: dg.AssetExecutionContext, warehouse: SqlWarehouseResource, proposed: pd.DataFrame) -> int:
        partition = context.partition_key
        approved = (proposed["action"] != HOLD).to_numpy() & ~_rejected(spec, warehouse, proposed, partition)
        return _book(warehouse, f"{spec.name}_hand_books", proposed[approved], partition)

    return dg.Definitions(assets=[proposals, actions], asset_checks=[supervision])


def _rejected(spec: Agent, warehouse: SqlWarehouseResource, proposed: pd.DataFrame, partition: str) -> np.ndarray:
    """Where an error-severity rule of the agent is broken, judged on the same reference tables as foureyes'."""
    references = _read(warehouse, spec.supervisor_inputs, partition)
    return evaluate(spec.rules, proposed, references).rejected().to_numpy()


def _read(warehouse: SqlWarehouseResource, inputs: tuple[AssetInput, ...], partition: str) -> dict[str, pd.DataFrame]:
    """The run's partition of each input (the whole table for an unpartitioned one), as the warehouse holds it."""
    return {
        i.name: warehouse.read_partition(
            i.key, partition if warehouse.partition_record(i.key, partition) is not None else None
        ).frame
        for i in inputs
    }


def _book(warehouse: SqlWarehouseResource, table: str, chosen: pd.DataFrame, partition: str) -> int:
    chosen.astype(str).assign(partition_key=partition).to_sql(
        table, engine_for(warehouse.url), if_exists="append", index=False
    )
    return len(chosen)


def variant_jobs(defs: dg.Definitions, home: Path) -> dict[str, dg.JobDefinition]:
    """The three variants as prebuilt jobs, so that each run pays for execution, never for building a job."""
    three = dg.define_asset_job("foureyes_three_agents", selection=dg.AssetSelection.groups(*(a.name for a in AGENTS)))
    baseline_resources = {
        "warehouse": defs.resources["foureyes_warehouse"],
        "io_manager": dg.FilesystemIOManager(base_dir=str(home / "baselines")),
    }
    hand = dg.Definitions.merge(
        *(hand_supervised(spec) for spec in AGENTS), dg.Definitions(resources=baseline_resources)
    )
    plain = dg.Definitions(assets=[a for spec in AGENTS for a in plain_assets(spec)], resources=baseline_resources)
    return {
        FOUREYES: dg.Definitions.merge(defs, dg.Definitions(jobs=[three])).resolve_job_def(three.name),
        HAND: hand.resolve_implicit_global_asset_job_def(),
        PLAIN: plain.resolve_implicit_global_asset_job_def(),
    }


def step_seconds(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    """Seconds per step of a run, from its STEP_SUCCESS events."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.STEP_SUCCESS).records
    return {
        r.event_log_entry.dagster_event.step_key: r.event_log_entry.dagster_event.event_specific_data.duration_ms / 1000
        for r in records
    }


def loop_stage(step: str) -> str:
    """The supervisor-loop stage of a step: ``<agent>_supervisor`` and ``<agent>_hand_proposals_supervision``
    supervise, ``<agent>_*actions`` execute, the proposals steps propose."""
    if "supervis" in step:
        return "supervise"
    return "execute" if step.endswith("actions") else "propose"


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
    defs = build_definitions(FoureyesSettings.from_env({"FOUREYES_HOME": str(home)}))
    jobs = variant_jobs(defs, home)
    expected_steps = {FOUREYES: 3 * len(AGENTS), HAND: 3 * len(AGENTS), PLAIN: 2 * len(AGENTS)}
    market_data = defs.resolve_job_def(MARKET_DATA_JOB)
    days = business_days_ending(END, 2 * partitions + warmup)
    runs: dict[str, list[float]] = {v: [] for v in VARIANTS}
    cpu: dict[str, list[float]] = {v: [] for v in VARIANTS}
    steps: dict[str, dict[str, list[float]]] = {v: defaultdict(list) for v in VARIANTS}
    stages: dict[str, list[float]] = defaultdict(list)
    profiled_runs: list[float] = []
    load_before = os.getloadavg()
    with dg.DagsterInstance.ephemeral() as instance:
        for n, day in enumerate(days):
            market_data.execute_in_process(partition_key=day, instance=instance, run_config=QUIET)
            if n >= warmup and (n - warmup) % 2:  # every other day: a profiled foureyes run, for the breakdown
                profiler = cProfile.Profile()
                started = time.perf_counter()
                profiler.runcall(
                    jobs[FOUREYES].execute_in_process, partition_key=day, instance=instance, run_config=QUIET
                )
                profiled_runs.append(time.perf_counter() - started)
                for stage, seconds in stage_seconds(profiler).items():
                    stages[stage].append(seconds)
                continue
            walls = {}
            for variant in VARIANTS[n % 3 :] + VARIANTS[: n % 3]:  # each goes first, second and last in turn
                started, started_cpu = time.perf_counter(), time.process_time()
                result = jobs[variant].execute_in_process(partition_key=day, instance=instance, run_config=QUIET)
                walls[variant], used_cpu = time.perf_counter() - started, time.process_time() - started_cpu
                per_step = step_seconds(instance, result.run_id)
                if not result.success or len(per_step) != expected_steps[variant]:
                    raise RuntimeError(f"{variant} run {result.run_id} failed or skipped steps: {sorted(per_step)}")
                if n < warmup:
                    continue
                runs[variant].append(walls[variant])
                cpu[variant].append(used_cpu)
                per_stage: dict[str, float] = defaultdict(float)
                for step, seconds in per_step.items():
                    per_stage[loop_stage(step)] += seconds
                per_stage["outside the steps (plan, run events, resources)"] = walls[variant] - sum(per_step.values())
                for stage, seconds in per_stage.items():
                    steps[variant][stage].append(seconds)
            print(f"  {day}: " + ", ".join(f"{v} {s * 1000:.0f} ms" for v, s in walls.items()), flush=True)
    return {
        "runs_s": runs,
        "cpu_s": cpu,
        "steps_s": {v: {k: statistics.mean(s) for k, s in per.items()} for v, per in steps.items()},
        "stages_s": {k: statistics.mean(v) for k, v in stages.items()},
        "profiled_run_s": statistics.mean(profiled_runs) if profiled_runs else None,
        "profiled_runs": len(profiled_runs),
        "load_average": {"before": load_before, "after": os.getloadavg()},
    }


def ratios(found: Mapping, measure: str = "runs_s") -> dict[str, float]:
    """Foureyes' median over each baseline's, of wall time (``runs_s``) or CPU time (``cpu_s``)."""
    median = {v: statistics.median(found[measure][v]) for v in VARIANTS}
    return {
        "foureyes/hand-written": median[FOUREYES] / median[HAND],
        "foureyes/plain": median[FOUREYES] / median[PLAIN],
    }


def write_results(found: dict, partitions: int) -> str:
    ratio, cpu_ratio = ratios(found), ratios(found, "cpu_s")
    fair = ratio["foureyes/hand-written"]
    before, after = (" / ".join(f"{x:.2f}" for x in found["load_average"][k]) for k in ("before", "after"))
    lines = [
        "# foureyes overhead over Dagster by hand",
        "",
        f"The shipped desk's three agents (var_risk, margin_calls, rebalancing), {partitions} business days, one "
        "in-process run per day of each variant, in an order that rotates daily; machine: "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, SQLite embedded default; load average "
        f"(1 / 5 / 15 min) {before} before, {after} after.",
        "",
        "| variant | median run (ms) | mean run (ms) | min (ms) | max (ms) | median CPU (ms) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    names = {
        PLAIN: "plain Dagster, unsupervised (6 assets)",
        HAND: "hand-written supervision: same pandera model + rules as a blocking check (6 assets + 3 checks)",
        FOUREYES: "foureyes (6 assets + 3 supervisor checks)",
    }
    for variant in (PLAIN, HAND, FOUREYES):
        samples = found["runs_s"][variant]
        lines.append(
            f"| {names[variant]} | {statistics.median(samples) * 1000:.0f} | {statistics.mean(samples) * 1000:.0f} | "
            f"{min(samples) * 1000:.0f} | {max(samples) * 1000:.0f} | "
            f"{statistics.median(found['cpu_s'][variant]) * 1000:.0f} |"
        )
    lines += [
        "",
        f"**Ratio foureyes / hand-written (medians): {fair:.2f}x** — goal at most {GOAL}x: "
        f"{'met' if fair <= GOAL else 'not met'}. Foureyes / plain: {ratio['foureyes/plain']:.2f}x. "
        f"In CPU time (the process's, less sensitive to what else the machine runs): "
        f"{cpu_ratio['foureyes/hand-written']:.2f}x the hand-written, {cpu_ratio['foureyes/plain']:.2f}x plain.",
        "",
        "## Per stage of the supervisor loop (mean seconds per run, summed over the three agents' steps)",
        "",
        "| stage | plain | hand-written | foureyes |",
        "|---|---:|---:|---:|",
    ]
    for stage in sorted(set().union(*found["steps_s"].values()), key=_stage_order):
        cells = [found["steps_s"][v].get(stage) for v in (PLAIN, HAND, FOUREYES)]
        lines.append(f"| {stage} | " + " | ".join("-" if c is None else f"{c:.3f}" for c in cells) + " |")
    if found["profiled_run_s"] is not None:
        lines += [
            "",
            f"## Where foureyes' time goes (cProfile, mean of {found['profiled_runs']} profiled runs on other "
            f"days, {found['profiled_run_s'] * 1000:.0f} ms each with the profiler on; a stage includes what it calls)",
            "",
            "| stage | seconds per run | share of the profiled run |",
            "|---|---:|---:|",
        ]
        for stage, seconds in sorted(found["stages_s"].items(), key=lambda kv: -kv[1]):
            lines.append(f"| {stage} | {seconds:.3f} | {seconds / found['profiled_run_s']:.0%} |")
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "overhead.md").write_text(text)
    (RESULTS / "overhead.json").write_text(
        json.dumps({**found, "ratios": ratio, "cpu_ratios": cpu_ratio, "goal": GOAL}, indent=2) + "\n"
    )
    return text


def _stage_order(stage: str) -> int:
    return LOOP_STAGES.index(stage) if stage in LOOP_STAGES else len(LOOP_STAGES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        print(f"materialising {args.partitions} + {args.warmup} warm-up business days three ways ...", flush=True)
        found = measure(args.partitions, args.warmup, Path(home))
    print(write_results(found, args.partitions))


if __name__ == "__main__":
    main()
