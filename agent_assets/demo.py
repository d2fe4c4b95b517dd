"""The demo: the daily job over a few business days, one of them fed a broken price file.

It runs on whatever the settings point at (the embedded SQLite default, or PostgreSQL),
records its runs in the Dagster instance under ``$DAGSTER_HOME`` (so ``make ui`` shows
them), and summarises per partition what the agent proposed, what the supervisor approved
or rejected, and what the executor did — then traces the output built on the bad partition.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import dagster as dg

from agent_assets.calendar import business_days_ending
from agent_assets.definitions import DAILY_JOB, build_definitions
from agent_assets.faults import parse_faults
from agent_assets.trace import Trace, format_trace, trace
from resources.control_plane import ControlPlaneResource
from resources.decision_log import APPROVED, REJECTED
from resources.errors import FoureyesError
from resources.receipts import EXECUTED
from resources.settings import FoureyesSettings
from resources.warehouse import SqlWarehouseResource

AGENT = "var_risk"
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


@dataclass(frozen=True)
class PartitionSummary:
    partition: str
    run_id: str
    succeeded: bool
    proposals: int
    approved: int
    rejected: int
    executed: int
    already_executed: int
    note: str = ""
    rejections: tuple[str, ...] = ()


@dataclass(frozen=True)
class DemoSummary:
    warehouse_url: str
    control_url: str
    faults: str
    seconds: float
    partitions: tuple[PartitionSummary, ...]
    traces: tuple[Trace, ...] = field(default_factory=tuple)

    @property
    def all_runs_succeeded(self) -> bool:
        return all(p.succeeded for p in self.partitions)

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
    settings = replace(settings, faults=faults)
    job = build_definitions(settings).resolve_job_def(DAILY_JOB)
    instance = dagster_instance(settings)
    control = ControlPlaneResource(url=settings.control_url)
    started = time.perf_counter()
    summaries = []
    for partition in business_days_ending(end, days):
        if progress:
            progress(f"materialising {DAILY_JOB} for {partition} ...")
        result = job.execute_in_process(
            partition_key=partition, instance=instance, raise_on_error=False, run_config=QUIET
        )
        fault = next((f"{f.kind} in {f.asset}" for f in injected if f.partition == partition), "")
        summaries.append(_summarise(control, partition, result, fault))
    traces = []
    for partition in sorted({f.partition for f in injected}):
        try:
            traces.append(
                trace(
                    control.lineage_store,
                    SqlWarehouseResource(url=settings.warehouse_url),
                    f"{AGENT}_proposals",
                    partition,
                )
            )
        except FoureyesError:
            continue  # the output was never built (e.g. the input was missing): nothing to trace
    return DemoSummary(
        warehouse_url=settings.warehouse_url,
        control_url=settings.control_url,
        faults=faults,
        seconds=round(time.perf_counter() - started, 1),
        partitions=tuple(summaries),
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


def _summarise(control: ControlPlaneResource, partition: str, result, fault: str) -> PartitionSummary:
    decisions = control.decision_log.for_partition(AGENT, partition)
    latest = [d for d in decisions if d.supervision_id == decisions[-1].supervision_id] if decisions else []
    receipts = control.receipts.for_partition(AGENT, partition)
    executed_now = sum(1 for r in receipts if r.status == EXECUTED and r.run_id == result.run_id)
    executed_before = sum(1 for r in receipts if r.status == EXECUTED and r.run_id != result.run_id)
    notes = [fault] if fault else []
    failed = [e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    if failed:
        notes.append("failed: " + ", ".join(sorted(set(failed))))
    return PartitionSummary(
        partition=partition,
        run_id=result.run_id,
        succeeded=result.success,
        proposals=len(latest),
        approved=sum(d.verdict == APPROVED for d in latest),
        rejected=sum(d.verdict == REJECTED for d in latest),
        executed=executed_now,
        already_executed=executed_before,
        note="; ".join(notes),
        rejections=tuple(" | ".join(r.message for r in d.reasons) for d in latest if d.reasons),
    )


def format_summary(summary: DemoSummary) -> str:
    header = (
        f"{'partition':<11} {'run':<7} {'proposals':>9} {'approved':>8} {'rejected':>8} "
        f"{'executed':>8} {'dup-skipped':>11}  note"
    )
    lines = [
        "",
        f"foureyes demo: {AGENT} over {len(summary.partitions)} business days in {summary.seconds}s",
        f"  warehouse     {summary.warehouse_url}",
        f"  control plane {summary.control_url}",
        f"  faults        {summary.faults or 'none'}",
        "",
        header,
        "-" * len(header),
    ]
    for p in summary.partitions:
        lines.append(
            f"{p.partition:<11} {'ok' if p.succeeded else 'FAILED':<7} {p.proposals:>9} {p.approved:>8} "
            f"{p.rejected:>8} {p.executed:>8} {p.already_executed:>11}  {p.note}"
        )
    rejections = [(p.partition, r) for p in summary.partitions for r in p.rejections]
    if rejections:
        lines += ["", "Rejected by the supervisor:"]
        lines += [f"  {partition}  {reason}" for partition, reason in rejections]
    for item in summary.traces:
        lines += [
            "",
            f"Trace of the output built on the faulty partition {item.partition}:",
            format_trace(item),
        ]
    lines += [
        "",
        "dup-skipped: actions already executed by an earlier run (idempotency key + receipt).",
        "Next: `foureyes trace var_risk_proposals --partition <day>`, or `make ui` to browse the runs.",
    ]
    return "\n".join(lines)
