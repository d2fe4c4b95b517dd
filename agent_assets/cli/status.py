"""``foureyes status``: what every agent is doing now, and what went wrong recently.

One line per agent: its phase (the most urgent of its partitions: a stuck one, else a busy
one, else the last it worked on), since when, the age of its heartbeat, its last decision
and tier; STUCK with the reason when a heartbeat or a phase is over its limit. Then the
alerts of the last day (stuck agents, failed runs).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from foureyes.cli.text_table import text_table
from foureyes.resources.control_plane.agent_runs import AgentRunRecord
from foureyes.resources.control_plane.agent_state import AgentState, Stuck, duration
from foureyes.resources.control_plane.alerts import Alert
from foureyes.resources.control_plane.decisions import SupervisionRecord
from foureyes.resources.control_plane.resource import ControlPlaneResource


@dataclass(frozen=True)
class AgentStatus:
    agent: str
    state: AgentState | None
    busy_partitions: int
    stuck: Stuck | None
    last_supervision: SupervisionRecord | None
    last_run: AgentRunRecord | None

    @property
    def supervision_failed(self) -> bool:
        return self.last_supervision is not None and self.last_supervision.failed

    def to_json(self, now: dt.datetime) -> dict[str, object]:
        s, sup, run = self.state, self.last_supervision, self.last_run
        return {
            "agent": self.agent,
            "phase": s.phase if s else None,
            "partition": s.partition if s else None,
            "run_id": s.run_id if s else None,
            "since": s.phase_since.isoformat() if s else None,
            "heartbeat_age_s": round((now - s.beat_at).total_seconds(), 1) if s else None,
            "last_outcome": s.outcome if s else None,
            "busy_partitions": self.busy_partitions,
            "stuck": self.stuck is not None,
            "stuck_reason": str(self.stuck) if self.stuck else None,
            "supervision_failed": self.supervision_failed,
            "last_decision": None
            if sup is None
            else {
                "partition": sup.partition,
                "supervised_at": sup.supervised_at.isoformat(),
                "status": sup.status,
                "blocked": sup.blocked,
                "block_reason": sup.block_reason or None,
                "counts": sup.counts,
            },
            "last_tier": None
            if run is None
            else {"tier": run.tier, "partition": run.partition, "reason": run.tier_reason},
        }


@dataclass(frozen=True)
class StatusReport:
    agents: tuple[AgentStatus, ...]
    alerts: tuple[Alert, ...]
    now: dt.datetime

    @property
    def stuck(self) -> list[AgentStatus]:
        return [a for a in self.agents if a.stuck]

    @property
    def needs_attention(self) -> bool:
        """Something a human must look at: a stuck agent, or one whose latest supervision failed."""
        return any(a.stuck or a.supervision_failed for a in self.agents)

    def to_json(self) -> dict[str, object]:
        return {
            "now": self.now.isoformat(),
            "agents": [a.to_json(self.now) for a in self.agents],
            "alerts": [a.to_json() for a in self.alerts],
        }


def agent_status(control_plane: ControlPlaneResource, agent: str, now: dt.datetime) -> AgentStatus:
    states = control_plane.state.states(agent)
    busy = [s for s in states if s.active]
    stuck = [s for s in busy if s.stuck(now)]
    shown = (stuck or busy or states or [None])[0]
    supervisions = control_plane.decision_log.latest_supervisions(agent, limit=1)
    return AgentStatus(
        agent=agent,
        state=shown,
        busy_partitions=len(busy),
        stuck=shown.stuck(now) if shown is not None else None,
        last_supervision=supervisions[0] if supervisions else None,
        last_run=control_plane.agent_runs.latest(agent),
    )


def status_report(control_plane: ControlPlaneResource, agents: Sequence[str]) -> StatusReport:
    """The status of the code location's agents, and of any other agent that reported to this store."""
    now = dt.datetime.now(dt.UTC)
    known = list(dict.fromkeys([*agents, *sorted({s.agent for s in control_plane.state.states()})]))
    return StatusReport(
        agents=tuple(agent_status(control_plane, agent, now) for agent in known),
        alerts=tuple(control_plane.alerts.recent()),
        now=now,
    )


def format_status(report: StatusReport) -> str:
    rows = [("agent", "phase", "partition", "since", "heartbeat", "last decision", "tier", "state")]
    for a in report.agents:
        s = a.state
        rows.append(
            (
                a.agent,
                s.phase if s else "never ran",
                (s.partition if s else "-") + (f" (+{a.busy_partitions - 1})" if a.busy_partitions > 1 else ""),
                f"{duration(report.now - s.phase_since)} ago" if s else "-",
                f"{duration(report.now - s.beat_at)} ago" if s and s.active else "-",
                _last_decision(a.last_supervision),
                f"{a.last_run.tier} ({a.last_run.partition})" if a.last_run else "-",
                f"STUCK: {a.stuck}" if a.stuck else _state(a),
            )
        )
    lines = text_table(rows)
    if report.alerts:
        lines += ["", f"alerts in the last 24h ({len(report.alerts)}):"]
        lines += [f"  {a.raised_at:%Y-%m-%d %H:%M}Z  {a.kind:<12} {a.subject}: {a.message}" for a in report.alerts]
    else:
        lines += ["", "no alerts in the last 24h"]
    return "\n".join(lines)


def _last_decision(sup: SupervisionRecord | None) -> str:
    if sup is None:
        return "-"
    c = sup.counts
    if sup.failed:
        return f"{sup.partition} FAILED"
    verdicts = "blocked" if sup.blocked else f"{c.get('approved', 0)}a/{c.get('rejected', 0)}r/{c.get('pending', 0)}p"
    return f"{sup.partition} {verdicts}"


def _state(status: AgentStatus) -> str:
    if status.supervision_failed:
        return f"SUPERVISION FAILED: {status.last_supervision.block_reason}"
    return _outcome(status.state)


def _outcome(state: AgentState | None) -> str:
    if state is None:
        return "-"
    if state.active:
        return "ok (working)"
    return state.outcome or "ok"
