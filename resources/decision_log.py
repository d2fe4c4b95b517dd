"""The decision log: one row per proposal per supervision, with its verdict and reasons.

Verdicts are data: the executor reads them from here, never from the agent's own output.
A supervision is identified by ``supervision_id``; the executor acts on the latest
supervision of the exact proposals version it is about to execute.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa

from resources.control_schema import decisions
from resources.engine import as_utc, write_transaction

APPROVED, REJECTED, PENDING = "approved", "rejected", "pending"
VERDICTS = (APPROVED, REJECTED, PENDING)


@dataclass(frozen=True)
class Reason:
    """Why a proposal was not approved: the rule (or check) and its message."""

    rule: str
    severity: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"rule": self.rule, "severity": self.severity, "message": self.message}


@dataclass(frozen=True)
class Decision:
    agent: str
    partition: str
    proposal_id: str
    proposals_version: str
    supervision_id: str
    action: str
    proposal: dict[str, object]
    rationale: str
    confidence: float | None
    verdict: str
    reasons: tuple[Reason, ...] = ()
    run_id: str | None = None
    decided_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} is not one of {VERDICTS}")


class DecisionLog:
    """Reads and appends decisions in the control-plane store."""

    def __init__(self, engine: sa.Engine):
        self._engine = engine

    def record(self, batch: Iterable[Decision]) -> int:
        """Append one supervision's decisions atomically; returns how many were written."""
        rows = [_to_row(d) for d in batch]
        if rows:
            with write_transaction(self._engine) as conn:
                conn.execute(decisions.insert(), rows)
        return len(rows)

    def latest_supervision(self, agent: str, partition: str, proposals_version: str) -> list[Decision]:
        """The decisions of the most recent supervision of exactly this proposals version."""
        with self._engine.connect() as conn:
            latest = conn.execute(
                sa.select(decisions.c.supervision_id)
                .where(
                    decisions.c.agent == agent,
                    decisions.c.partition_key == partition,
                    decisions.c.proposals_version == proposals_version,
                )
                .order_by(decisions.c.decided_at.desc(), decisions.c.id.desc())
                .limit(1)
            ).scalar()
            if latest is None:
                return []
            rows = conn.execute(
                sa.select(decisions).where(decisions.c.supervision_id == latest).order_by(decisions.c.id)
            ).all()
        return [_from_row(r) for r in rows]

    def for_partition(self, agent: str, partition: str) -> list[Decision]:
        """Every decision ever logged for one agent partition, oldest first."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(decisions)
                .where(decisions.c.agent == agent, decisions.c.partition_key == partition)
                .order_by(decisions.c.id)
            ).all()
        return [_from_row(r) for r in rows]


def _to_row(d: Decision) -> dict[str, object]:
    return {
        "agent": d.agent,
        "partition_key": d.partition,
        "proposal_id": d.proposal_id,
        "proposals_version": d.proposals_version,
        "supervision_id": d.supervision_id,
        "run_id": d.run_id,
        "action": d.action,
        "proposal": d.proposal,
        "rationale": d.rationale,
        "confidence": d.confidence,
        "verdict": d.verdict,
        "reasons": [r.to_json() for r in d.reasons],
        "decided_at": d.decided_at,
    }


def _from_row(row: sa.Row) -> Decision:
    return Decision(
        agent=row.agent,
        partition=row.partition_key,
        proposal_id=row.proposal_id,
        proposals_version=row.proposals_version,
        supervision_id=row.supervision_id,
        action=row.action,
        proposal=row.proposal,
        rationale=row.rationale,
        confidence=row.confidence,
        verdict=row.verdict,
        reasons=tuple(Reason(**r) for r in row.reasons),
        run_id=row.run_id,
        decided_at=as_utc(row.decided_at),
    )
