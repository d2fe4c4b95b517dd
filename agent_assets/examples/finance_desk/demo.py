"""The demo: the daily job over a few business days, one of them fed a broken price file.

It runs on whatever the settings point at (the embedded SQLite default, or PostgreSQL),
records its runs in the Dagster instance under ``$DAGSTER_HOME`` (so ``make ui`` shows
them), and summarises per agent and partition what was proposed, what the supervisor
approved, rejected or sent for human approval, and what the executor did — then traces the
output built on the bad partition.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import dagster as dg

from foureyes import ControlPlaneResource, FoureyesError, FoureyesSettings, SqlWarehouseResource
from foureyes.examples.finance_desk.calendar import business_days_ending
from foureyes.examples.finance_desk.daily_run import run_business_day
from foureyes.examples.finance_desk.definitions import AGENTS, DAILY_JOB, MARKET_DATA_JOB, build_definitions
from foureyes.examples.finance_desk.faults import parse_faults
from foureyes.observe import DagsterRecords, Trace, format_text, trace
from foureyes.resources import redact_url

TRACED = ("var_risk_proposals", "holdings")  # an agent output, and a derived asset with no fallback
SHOWN_REJECTIONS = 6
APPROVED, REJECTED, PENDING, EXECUTED = "approved", "rejected", "pending", "executed"  # verdicts, receipts
APPROVAL_REASON = "approval"  # the severity of a reason that only says "needs a human"


@dataclass(frozen=True)
class AgentDay:
    agent: str
    partition: str
    tier: str
    tier_reason: str
    proposals: int
    approved: int
    rejected: int
    pending: int
    executed: int
    already_executed: int
    rejections: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunOutcome:
    partition: str
    run_id: str
    succeeded: bool
    note: str
    agents: tuple[AgentDay, ...]


@dataclass(frozen=True)
class DemoSummary:
    warehouse_url: str
    control_url: str
    faults: str
    model: str
    seconds: float
    runs: tuple[RunOutcome, ...]
    traces: tuple[Trace, ...] = field(default_factory=tuple)

    @property
    def all_runs_succeeded(self) -> bool:
        return all(r.succeeded for r in self.runs)

    def to_json(self) -> dict:
        data = asdict(self)
        data["traces"] = [t.to_json() for t in self.traces]
        return data


def run_demo(
    settings: FoureyesSettings,
    *,
    days: int = 5,
    end: str = "2026-11-20",
    faults: str = "",
    progress: Callable[[str], None] | None = None,
) -> DemoSummary:
    """Run the daily job once per business day and collect what happened."""
    injected = parse_faults(faults)
    control = ControlPlaneResource(url=settings.control_url)
    warehouse = SqlWarehouseResource(url=settings.warehouse_url)
    control.reach()  # a store that is down is one line, not five failed days
    warehouse.reach()
    defs = build_definitions(settings, faults=faults)
    model = "FOUREYES_MODELS" if settings.models else "the stand-in model (FOUREYES_MODELS is not set)"
    instance = dagster_instance(settings)
    started = time.perf_counter()
    runs = []
    for partition in business_days_ending(end, days):
        if progress:
            progress(f"{partition}: ingesting market data ({MARKET_DATA_JOB}), then running {DAILY_JOB} ...")
        day = run_business_day(defs, partition, instance, quiet=True)
        notes = [f"{f.kind} in {f.asset}" for f in injected if f.partition == partition]
        if day.failed_steps():
            notes.append("failed: " + ", ".join(day.failed_steps()))
        days_of_agents = tuple(_agent_day(control, agent.name, partition, day.agents.run_id) for agent in AGENTS)
        runs.append(RunOutcome(partition, day.agents.run_id, day.agents.success, "; ".join(notes), days_of_agents))
    traces = []
    records = DagsterRecords(instance, defs.resolve_asset_graph())
    for partition in sorted({f.partition for f in injected}):
        for asset in TRACED:
            try:
                traces.append(trace(control, asset, partition, records=records, warehouse=warehouse))
            except FoureyesError:
                continue  # the output was never built (e.g. the input was missing): nothing to trace
    return DemoSummary(
        warehouse_url=redact_url(settings.warehouse_url),
        control_url=redact_url(settings.control_url),
        faults=faults,
        model=model,
        seconds=round(time.perf_counter() - started, 1),
        runs=tuple(runs),
        traces=tuple(traces),
    )


def dagster_instance(settings: FoureyesSettings) -> dg.DagsterInstance:
    """The persistent instance under $DAGSTER_HOME (default $FOUREYES_HOME/dagster)."""
    home = Path(os.environ.get("DAGSTER_HOME") or settings.home / "dagster")
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")
    return dg.DagsterInstance.from_config(str(home))


def _agent_day(control: ControlPlaneResource, agent: str, partition: str, run_id: str) -> AgentDay:
    log = control.decision_log
    latest = next(iter(log.latest_supervisions(agent, partition, limit=1)), None)
    counts = latest.counts if latest else {}
    rejected = log.of_supervision(latest.supervision_id, verdicts=(REJECTED,)) if latest else []
    receipts = control.receipts.for_partition(agent, partition)
    run = control.agent_runs.latest(agent, partition)
    return AgentDay(
        agent=agent,
        partition=partition,
        tier=run.tier if run else "-",
        tier_reason=run.tier_reason if run else "",
        proposals=counts.get("proposals", 0),
        approved=counts.get(APPROVED, 0),
        rejected=counts.get(REJECTED, 0),
        pending=counts.get(PENDING, 0),
        executed=sum(1 for r in receipts if r.status == EXECUTED and r.run_id == run_id),
        already_executed=sum(1 for r in receipts if r.status == EXECUTED and r.run_id != run_id),
        rejections=tuple(" | ".join(r.message for r in d.reasons if r.severity != APPROVAL_REASON) for d in rejected),
    )


def format_summary(summary: DemoSummary) -> str:
    header = (
        f"{'partition':<11} {'agent':<13} {'tier':<12} {'proposals':>9} {'approved':>8} {'rejected':>8} "
        f"{'pending':>7} {'executed':>8} {'dup-skipped':>11}"
    )
    lines = [
        "",
        f"foureyes demo: {len(AGENTS)} agents over {len(summary.runs)} business days in {summary.seconds}s",
        f"  warehouse     {summary.warehouse_url}",
        f"  control plane {summary.control_url}",
        f"  faults        {summary.faults or 'none'}",
        f"  loan_triage   runs on {summary.model}",
        "",
        header,
        "-" * len(header),
    ]
    for run in summary.runs:
        status = "" if run.succeeded else "  RUN FAILED"
        for i, day in enumerate(run.agents):
            first = run.partition if i == 0 else ""
            note = (f"  {run.note}{status}" if run.note or status else "") if i == 0 else ""
            lines.append(
                f"{first:<11} {day.agent:<13} {day.tier:<12} {day.proposals:>9} {day.approved:>8} "
                f"{day.rejected:>8} "
                f"{day.pending:>7} {day.executed:>8} {day.already_executed:>11}{note}"
            )
    degraded = [(run.partition, d) for run in summary.runs for d in run.agents if d.tier not in ("FULL", "-")]
    if degraded:
        lines += ["", "Degraded runs (fallback chain):"]
        lines += [f"  {partition}  {d.agent:<13} {d.tier}: {d.tier_reason}" for partition, d in degraded]
    for run in summary.runs:
        rejected = [(d.agent, r) for d in run.agents for r in d.rejections]
        if not rejected or not run.note:
            continue
        lines += ["", f"Rejected on {run.partition} ({run.note}):"]
        lines += [f"  {agent:<13} {reason}" for agent, reason in rejected[:SHOWN_REJECTIONS]]
        if len(rejected) > SHOWN_REJECTIONS:
            hidden = len(rejected) - SHOWN_REJECTIONS
            lines.append(f"  ... {hidden} more in the decision log (and the business_rules check metadata)")
    for item in summary.traces:
        lines += ["", f"Trace of {item.root.label}, built on the faulty day:", format_text(item)]
    pending = sum(d.pending for run in summary.runs for d in run.agents)
    lines += [
        "",
        "dup-skipped: actions already executed by an earlier run (idempotency key + receipt).",
        f"pending: {pending} proposal(s) wait for human approval: `foureyes approvals list`, then "
        "`foureyes approvals approve ID --reason WHY`, as a principal with the approve scope "
        "(`foureyes principals add NAME --scope read --scope approve`; its token in $FOUREYES_TOKEN).",
        "Next: `foureyes status`, `foureyes decisions --agent var_risk --partition <day>`, "
        "`foureyes trace var_risk_proposals --partition <day>`, or `make ui` to browse the runs.",
    ]
    return "\n".join(lines)
