"""Action receipts: the at-most-once ledger of what executors did.

An executor *claims* an action's idempotency key before touching the target and *confirms*
it after the target accepted. The key is the primary key, so a re-run, a retry or a second
concurrent run finds the claim: a confirmed action is never executed again, and an action
claimed by a run that is still within its lease is left to that run. A claim whose lease ran
out (its run crashed between claim and confirm) may be retried; targets receive the same
idempotency key and deduplicate, so the retry cannot execute the action twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

import sqlalchemy as sa

from resources.control_schema import receipts
from resources.engine import as_utc, write_transaction

CLAIMED, EXECUTED, FAILED = "claimed", "executed", "failed"
DEFAULT_LEASE = dt.timedelta(minutes=10)


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
    claimed_at: dt.datetime
    executed_at: dt.datetime | None
    detail: dict | None


@dataclass(frozen=True)
class Claim:
    """The outcome of claiming a key: whether this run may execute, and the receipt as found."""

    may_execute: bool
    why: str
    receipt: Receipt


class ReceiptBook:
    def __init__(self, engine: sa.Engine, lease: dt.timedelta = DEFAULT_LEASE):
        self._engine = engine
        self._lease = lease

    def claim(
        self,
        *,
        key: str,
        agent: str,
        partition: str,
        proposal_id: str,
        action: str,
        target: str,
        run_id: str | None,
    ) -> Claim:
        """Claim ``key`` for this run; two runs racing to insert it both end with one claim."""
        fields = dict(key=key, agent=agent, partition=partition, proposal_id=proposal_id, action=action)
        try:
            return self._claim_once(**fields, target=target, run_id=run_id)
        except sa.exc.IntegrityError:
            return self._claim_once(**fields, target=target, run_id=run_id)

    def _claim_once(
        self,
        *,
        key: str,
        agent: str,
        partition: str,
        proposal_id: str,
        action: str,
        target: str,
        run_id: str | None,
    ) -> Claim:
        now = _now()
        with write_transaction(self._engine) as conn:
            row = _locked(conn, key)
            if row is None:
                conn.execute(
                    receipts.insert().values(
                        idempotency_key=key,
                        agent=agent,
                        partition_key=partition,
                        proposal_id=proposal_id,
                        action=action,
                        target=target,
                        status=CLAIMED,
                        attempts=1,
                        run_id=run_id,
                        claimed_at=now,
                    )
                )
                return Claim(True, "new", _from_row(_locked(conn, key)))
            found = _from_row(row)
            if found.status == EXECUTED:
                return Claim(False, f"already executed at {found.executed_at:%Y-%m-%d %H:%M:%S}Z", found)
            if found.status == CLAIMED and found.run_id != run_id and now - found.claimed_at < self._lease:
                return Claim(False, f"in progress in run {found.run_id}", found)
            conn.execute(
                receipts.update()
                .where(receipts.c.idempotency_key == key)
                .values(status=CLAIMED, attempts=receipts.c.attempts + 1, run_id=run_id, claimed_at=now)
            )
            return Claim(True, f"retry after {found.status}", _from_row(_locked(conn, key)))

    def confirm(self, key: str, detail: dict | None = None) -> Receipt:
        return self._settle(key, EXECUTED, detail)

    def fail(self, key: str, detail: dict | None = None) -> Receipt:
        return self._settle(key, FAILED, detail)

    def get(self, key: str) -> Receipt | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(receipts).where(receipts.c.idempotency_key == key)).one_or_none()
        return _from_row(row) if row else None

    def for_partition(self, agent: str, partition: str) -> list[Receipt]:
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(receipts)
                .where(receipts.c.agent == agent, receipts.c.partition_key == partition)
                .order_by(receipts.c.claimed_at, receipts.c.idempotency_key)
            ).all()
        return [_from_row(r) for r in rows]

    def _settle(self, key: str, status: str, detail: dict | None) -> Receipt:
        with write_transaction(self._engine) as conn:
            conn.execute(
                receipts.update()
                .where(receipts.c.idempotency_key == key)
                .values(status=status, executed_at=_now() if status == EXECUTED else None, detail=detail)
            )
            return _from_row(_locked(conn, key))


def _locked(conn: sa.Connection, key: str) -> sa.Row | None:
    query = sa.select(receipts).where(receipts.c.idempotency_key == key)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    return conn.execute(query).one_or_none()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


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
        claimed_at=as_utc(row.claimed_at),
        executed_at=as_utc(row.executed_at),
        detail=row.detail,
    )
