"""``foureyes decisions``: the complete record of one agent partition's decisions.

Per proposal, everything an auditor asks at once: what the agent read (dataset, served
partition, version), why it proposed what it did (rationale, confidence, alternatives), who
proposed it (model backend, prompt hash, policy version, tier), what the supervisor said
(verdict and rule results), who approved it, what it led to (outbox status, receipt) and
every model or tool call that served it.
"""

from __future__ import annotations

from dataclasses import dataclass

from foureyes.cli.text_table import text_table
from foureyes.resources.control_plane.agent_runs import AgentRunRecord
from foureyes.resources.control_plane.approvals import Approval
from foureyes.resources.control_plane.decisions import Decision, DecisionNotFoundError, SupervisionRecord
from foureyes.resources.control_plane.outbox import OutboxEntry
from foureyes.resources.control_plane.receipts import Receipt, idempotency_key
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.control_plane.tool_calls import MODEL, ToolCall

ALTERNATIVES = "alternatives"


@dataclass(frozen=True)
class DecisionRecord:
    """One proposal and everything that followed from it."""

    decision: Decision
    run: AgentRunRecord | None
    approval: Approval | None
    outbox: OutboxEntry | None
    receipt: Receipt | None
    calls: tuple[ToolCall, ...]

    def to_json(self) -> dict[str, object]:
        d, run = self.decision, self.run
        return {
            "proposal_id": d.proposal_id,
            "action": d.action,
            "proposal": d.proposal,
            "rationale": d.rationale,
            "confidence": d.confidence,
            "alternatives": d.proposal.get(ALTERNATIVES),
            "tier": d.tier,
            "model": d.model,
            "prompt_hash": run.prompt_hash if run else None,
            "policy_version": run.policy_version if run else None,
            "inputs": run.inputs if run else [],
            "verdict": d.verdict,
            "reasons": [r.to_json() for r in d.reasons],
            "approval": self.approval.to_json() if self.approval else None,
            "outbox": self.outbox.to_json() if self.outbox else None,
            "receipt": self.receipt.to_json() if self.receipt else None,
            "tool_calls": [c.to_json() for c in self.calls],
            "decided_at": d.decided_at.isoformat(),
        }


@dataclass(frozen=True)
class DecisionReport:
    agent: str
    partition: str
    supervision: SupervisionRecord
    run: AgentRunRecord | None
    records: tuple[DecisionRecord, ...]
    unsupervised: AgentRunRecord | None = None  # a newer proposals version nobody supervised

    @property
    def needs_attention(self) -> bool:
        """The latest supervision failed, or newer proposals were never supervised: exit non-zero."""
        return self.supervision.failed or self.unsupervised is not None

    def to_json(self) -> dict[str, object]:
        s = self.supervision
        return {
            "agent": self.agent,
            "partition": self.partition,
            "proposals_version": s.proposals_version,
            "supervision_id": s.supervision_id,
            "supervised_at": s.supervised_at.isoformat(),
            "supervision_status": s.status,
            "blocked": s.blocked,
            "block_reason": s.block_reason or None,
            "unsupervised_version": _unsupervised_json(self.unsupervised),
            "counts": s.counts,
            "decisions": [r.to_json() for r in self.records],
        }


def _unsupervised_json(run: AgentRunRecord | None) -> dict[str, object] | None:
    if run is None:
        return None
    return {"proposals_version": run.proposals_version, "run_id": run.run_id, "at": run.created_at.isoformat()}


def decision_report(
    control_plane: ControlPlaneResource, agent: str, partition: str, verdict: str | None = None
) -> DecisionReport:
    """The latest supervision of an agent partition, proposal by proposal (optionally one verdict only)."""
    supervisions = control_plane.decision_log.latest_supervisions(agent, partition, limit=1)
    if not supervisions:
        raise DecisionNotFoundError(
            f"no decisions for agent {agent!r} on partition {partition!r}: has {agent}_proposals been "
            "materialised (and supervised) for it?"
        )
    supervision = supervisions[0]
    version = supervision.proposals_version
    newest = control_plane.agent_runs.latest(agent, partition)
    unsupervised = (
        newest
        if newest is not None
        and newest.proposals_version != version
        and newest.created_at > supervision.supervised_at
        and control_plane.decision_log.supervision(agent, partition, newest.proposals_version) is None
        else None
    )
    decisions = control_plane.decision_log.of_supervision(supervision.supervision_id)
    if verdict is not None:
        decisions = [d for d in decisions if d.verdict == verdict]
    run = control_plane.agent_runs.latest(agent, partition, version)
    approvals = control_plane.approvals.for_version(agent, partition, version)
    outbox = {e.idempotency_key: e for e in control_plane.outbox.find(agent=agent, partition=partition)}
    receipts = {r.idempotency_key: r for r in control_plane.receipts.for_partition(agent, partition)}
    calls = [  # the model calls of the run that made these proposals; every delivery attempt of each action
        c
        for c in control_plane.tool_calls.for_partition(agent, partition)
        if c.kind != MODEL or (run is not None and c.run_id == run.run_id)
    ]
    records = []
    for d in decisions:
        key = idempotency_key(agent, partition, d.proposal_id, d.action)
        records.append(
            DecisionRecord(
                decision=d,
                run=run,
                approval=approvals.get(d.proposal_id),
                outbox=outbox.get(key),
                receipt=receipts.get(key),
                calls=tuple(c for c in calls if c.serves(version, d.proposal_id)),
            )
        )
    return DecisionReport(agent, partition, supervision, run, tuple(records), unsupervised)


def decision_record(control_plane: ControlPlaneResource, decision: Decision) -> DecisionRecord | None:
    """Everything that followed from one decision, when it belongs to its partition's latest supervision."""
    report = decision_report(control_plane, decision.agent, decision.partition)
    return next((r for r in report.records if r.decision.proposal_id == decision.proposal_id), None)


def format_decision(record: DecisionRecord) -> str:
    """One decision read backwards, as an auditor asks: what was done, who judged it, what the agent saw."""
    d, run = record.decision, record.run
    lines = [f"proposal {d.proposal_id} of {d.agent} {d.partition}: {d.action}"]
    executed = record.receipt is not None and record.receipt.executed_at is not None
    lines.append(
        f"  {_receipt_line(record.receipt)}"
        if executed
        else f"  receipt none ({record.outbox.status if record.outbox else 'not sent'})"
    )
    lines.append(f"  verdict {d.verdict.upper()} at {d.decided_at:%Y-%m-%d %H:%M:%S}Z")
    lines += [f"    {r.severity} {r.rule}: {r.message}" for r in d.reasons]
    lines.append(f"  decision: {d.rationale} (confidence {'-' if d.confidence is None else f'{d.confidence:.2f}'})")
    prompt = run.prompt_hash if run is not None and d.model else None  # a baseline row was prompted by nobody
    lines.append(f"    tier {d.tier or '-'}, model {d.model or 'none'}, prompt {prompt or '-'}")
    lines += [f"    call {_call_line(c)}" for c in sorted(record.calls, key=lambda c: c.stage != "propose")]
    return "\n".join(lines)


def format_report(report: DecisionReport) -> str:
    s, run = report.supervision, report.run
    counts = ", ".join(f"{n} {k}" for k, n in s.counts.items() if k != "proposals")
    lines = []
    if report.unsupervised is not None:
        u = report.unsupervised
        lines.append(
            f"NOT SUPERVISED: proposals version {u.proposals_version[:12]} (run {u.run_id}, "
            f"{u.created_at:%Y-%m-%d %H:%M:%S}Z) has no supervision; nothing of it executes. The latest "
            "supervision, of an earlier version, follows."
        )
    if s.failed:
        lines.append(
            f"{report.agent} {report.partition}: SUPERVISION FAILED for proposals version {s.proposals_version[:12]} "
            f"at {s.supervised_at:%Y-%m-%d %H:%M:%S}Z (run {s.run_id}): {s.block_reason}"
        )
    else:
        lines.append(
            f"{report.agent} {report.partition}: {s.counts.get('proposals', len(report.records))} proposal(s) "
            f"({counts}), proposals version {s.proposals_version[:12]}, "
            f"supervised {s.supervised_at:%Y-%m-%d %H:%M:%S}Z" + (f"\n  BLOCKED: {s.block_reason}" if s.blocked else "")
        )
    if run is not None:
        lines += [
            f"  tier {run.tier}" + (f" ({run.tier_reason})" if run.tier_reason else ""),
            f"  model {run.model or 'none'}, prompt {run.prompt_hash or '-'}, policy {run.policy_version or '-'}",
            "  inputs:",
            *(f"    {line}" for line in text_table(_input_rows(run))),
        ]
        batch_calls = [c for c in report.records[0].calls if c.proposal_id is None] if report.records else []
        if batch_calls:
            lines += ["  model and tool calls:", *(f"    {_call_line(c)}" for c in batch_calls)]
    for record in report.records:
        lines += ["", *_record_lines(record)]
    return "\n".join(lines)


def _input_rows(run: AgentRunRecord) -> list[tuple[str, ...]]:
    rows = [("dataset", "requested", "served", "version", "note")]
    for i in run.inputs:
        rows.append(
            (
                i["input"],
                str(i.get("requested") or "-"),
                str(i.get("served") or "-"),
                str(i.get("version") or "-")[:12],
                i.get("reason") or ("fresh" if not i.get("stale") else "stale"),
            )
        )
    return rows


def _record_lines(record: DecisionRecord) -> list[str]:
    d = record.decision
    confidence = "-" if d.confidence is None else f"{d.confidence:.2f}"
    lines = [
        f"{d.proposal_id}  {d.action}  -> {d.verdict.upper()}  (confidence {confidence})",
        f"  rationale: {d.rationale}",
    ]
    alternatives = d.proposal.get(ALTERNATIVES)
    if alternatives:
        lines.append(f"  alternatives: {alternatives}")
    lines += [f"  {r.severity} {r.rule}: {r.message}" for r in d.reasons]
    if record.approval is not None:
        a = record.approval
        votes = "; ".join(f"{v.approver} {v.decision}d ({v.reason})" for v in a.votes) or "no votes yet"
        lines.append(f"  approval {a.approval_id[:12]}: {a.status}, {len(a.approvers)}/{a.required} - {votes}")
    if record.receipt is not None and record.receipt.executed_at is not None:
        lines.append(f"  {_receipt_line(record.receipt)}")
    elif record.outbox is not None:
        o = record.outbox
        lines.append(
            f"  outbox {o.idempotency_key[:12]}: {o.status}, {o.attempts} attempt(s) {o.last_error or ''}".rstrip()
        )
    lines += [f"  call {_call_line(c)}" for c in record.calls if c.proposal_id is not None]
    return lines


def _receipt_line(receipt: Receipt) -> str:
    r = receipt
    return f"receipt {r.idempotency_key[:12]}: {r.status} on {r.target} at {r.executed_at:%Y-%m-%d %H:%M:%S}Z"


def _call_line(call: ToolCall) -> str:
    shown = {k: v for k, v in call.parameters.items() if k != "payload" and v is not None}
    params = ", ".join(f"{k}={v}" for k, v in shown.items())
    quiet = call.status == "executed" or (call.status == "ok" and call.kind == MODEL)  # nothing to add
    detail = f": {call.detail[:80]}" if call.detail and not quiet else ""
    took = f"{call.latency_ms:.0f} ms, try {call.tries}"
    return f"{call.stage} {call.kind} {call.tool} [{params}] {call.status} in {took}{detail}"
