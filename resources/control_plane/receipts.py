"""Action receipts: the record of what the far side confirmed, one per idempotency key.

A receipt is written only once a target confirmed an action, in the same transaction that
marks its outbox entry delivered (``foureyes.resources.control_plane.outbox``). The idempotency key is its primary
key, so an action can hold at most one receipt however often it is re-run or retried.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import sqlalchemy as sa

from foureyes.resources.control_plane.schema import receipts
from foureyes.resources.engine import as_utc

EXECUTED = "executed"


def idempotency_key(agent: str, partition: str, proposal_id: str, action: str) -> str:
    """Stable key of one action: the same proposal and action always get the same key."""
    return hashlib.sha256(f"{agent}\x1f{partition}\x1f{proposal_id}\x1f{action}".encode()).hexdigest()[:40]


@dataclass(frozen=True)
class Receipt:
    idempotency_key: str
    agent: str
    partition: str
    proposal_id: str
    action: str
    target: str
    status: str
    attempts: int
    run_id: str | None
    executed_at: dt.datetime | None
    detail: dict | None

    def to_json(self) -> dict[str, object]:
        return {
            "idempotency_key": self.idempotency_key,
            "target": self.target,
            "status": self.status,
            "attempts": self.attempts,
            "run_id": self.run_id,
            "executed_at": self.executed_at.isoformat() if self.executed_at else None,
            "detail": self.detail,
        }


class ReceiptBook:
    def __init__(self, engine: sa.Engine):
        self._engine = engine

    def get(self, key: str) -> Receipt | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(receipts).where(receipts.c.idempotency_key == key)).one_or_none()
        return _from_row(row) if row else None

    def for_partition(self, agent: str, partition: str) -> list[Receipt]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(receipts)
                .where(receipts.c.agent == agent, receipts.c.partition_key == partition)
                .order_by(receipts.c.executed_at, receipts.c.idempotency_key)
            ).all()
        return [_from_row(r) for r in rows]


def _from_row(row: sa.Row) -> Receipt:
    return Receipt(
        idempotency_key=row.idempotency_key,
        agent=row.agent,
        partition=row.partition_key,
        proposal_id=row.proposal_id,
        action=row.action,
        target=row.target,
        status=row.status,
        attempts=row.attempts,
        run_id=row.run_id,
        executed_at=as_utc(row.executed_at),
        detail=row.detail,
    )
