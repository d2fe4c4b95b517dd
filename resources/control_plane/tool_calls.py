"""The tool-call log: every call an agent or executor makes to a model or a tool.

Each call keeps its name, its parameters (any key that names a secret is redacted before it
is stored), status, latency and tries, and the decision it served: the proposals version
(a model call serves a whole batch) and, for an executor's call, the proposal itself.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import sqlalchemy as sa

from foureyes.resources.control_plane.schema import tool_calls
from foureyes.resources.engine import as_utc, write_transaction
from foureyes.resources.redaction import REDACTED, is_secret_name, scrub

MODEL, TOOL = "model", "tool"


@dataclass(frozen=True)
class ToolCall:
    agent: str
    partition: str
    stage: str
    kind: str
    tool: str
    parameters: Mapping[str, object]
    status: str
    latency_ms: float
    tries: int = 1
    detail: str = ""
    run_id: str | None = None
    proposals_version: str | None = None
    proposal_id: str | None = None
    called_at: dt.datetime | None = None

    def serves(self, proposals_version: str, proposal_id: str) -> bool:
        """Whether this call served that decision: its own call, or a call for its whole batch."""
        if self.proposal_id is not None:
            return self.proposal_id == proposal_id
        return self.proposals_version == proposals_version

    def to_json(self) -> dict[str, object]:
        return {
            "stage": self.stage,
            "kind": self.kind,
            "tool": self.tool,
            "parameters": dict(self.parameters),
            "status": self.status,
            "latency_ms": self.latency_ms,
            "tries": self.tries,
            "detail": self.detail,
            "proposal_id": self.proposal_id,
            "run_id": self.run_id,
            "called_at": self.called_at.isoformat() if self.called_at else None,
        }


def redact(value: object) -> object:
    """``value`` as it may be stored: any key naming a secret masked, any text scrubbed, at any depth."""
    if isinstance(value, Mapping):
        return {str(k): REDACTED if is_secret_name(str(k)) else redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return scrub(value)
    return value


class ToolCallLog:
    def __init__(self, engine: sa.Engine):
        self._engine = engine

    def record(self, calls: list[ToolCall]) -> None:
        if not calls:
            return
        now = dt.datetime.now(dt.UTC)
        rows = [
            {
                "agent": c.agent,
                "partition_key": c.partition,
                "run_id": c.run_id,
                "stage": c.stage,
                "kind": c.kind,
                "tool": c.tool,
                "parameters": redact(c.parameters),
                "status": c.status,
                "detail": scrub(c.detail)[:2000],
                "latency_ms": c.latency_ms,
                "tries": c.tries,
                "proposals_version": c.proposals_version,
                "proposal_id": c.proposal_id,
                "called_at": c.called_at or now,
            }
            for c in calls
        ]
        with write_transaction(self._engine) as conn:
            conn.execute(tool_calls.insert(), rows)

    def for_partition(self, agent: str, partition: str) -> list[ToolCall]:
        """Every call made for one agent partition, oldest first."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(tool_calls)
                .where(tool_calls.c.agent == agent, tool_calls.c.partition_key == partition)
                .order_by(tool_calls.c.id)
            ).all()
        return [
            ToolCall(
                agent=r.agent,
                partition=r.partition_key,
                stage=r.stage,
                kind=r.kind,
                tool=r.tool,
                parameters=r.parameters,
                status=r.status,
                latency_ms=r.latency_ms,
                tries=r.tries,
                detail=r.detail or "",
                run_id=r.run_id,
                proposals_version=r.proposals_version,
                proposal_id=r.proposal_id,
                called_at=as_utc(r.called_at),
            )
            for r in rows
        ]
