"""The action outbox: every approved action, written in the same transaction as its verdict.

Nothing approved is lost between "the supervisor said yes" and "the far side confirmed": the
verdict and the outbox row commit together (at supervision, or when a human grants an
approval). Delivery then takes a short *lease* on the row, sends the action with its
idempotency key, and on confirmation writes the receipt and marks the row delivered in one
transaction. A target that certainly did not get the action (down, declined) leaves the
row queued with exponential backoff (a sensor retries it); one that refuses it for good
marks it failed, for a human. A delivery that may have arrived without a confirmation — a
timeout, a dropped connection, a crash before the receipt — is sent again (same key) only
to a target that deduplicates on the key; for any other it is put *in doubt*, and only a
human's ``foureyes outbox retry KEY`` sends it again. So an action executes at most once,
whatever the far side does with duplicates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from foureyes.resources.control_plane.schema import outbox, receipts
from foureyes.resources.engine import as_utc, keyed_insert, statement_batches, write_transaction
from foureyes.resources.errors import FoureyesError
from foureyes.resources.redaction import scrub

QUEUED, DELIVERING, DELIVERED, FAILED, CANCELLED, IN_DOUBT = (
    "queued",
    "delivering",
    "delivered",
    "failed",
    "cancelled",
    "in_doubt",
)
STATUSES = (QUEUED, DELIVERING, DELIVERED, FAILED, CANCELLED, IN_DOUBT)
BACKOFF_BASE = dt.timedelta(seconds=30)
BACKOFF_MAX = dt.timedelta(hours=1)
LEASE = dt.timedelta(minutes=10)


@dataclass(frozen=True)
class OutboxEntry:
    idempotency_key: str
    agent: str
    partition: str
    proposal_id: str
    proposals_version: str
    action: str
    target: str
    payload: dict
    rationale: str
    status: str = QUEUED
    attempts: int = 0
    next_attempt_at: dt.datetime | None = None
    last_error: str | None = None
    created_at: dt.datetime | None = None
    delivered_at: dt.datetime | None = None
    lease_until: dt.datetime | None = None
    run_id: str | None = None  # the run that last took the lease

    def interrupted(self, now: dt.datetime | None = None) -> bool:
        """A delivery began, its lease ran out and no confirmation was recorded: it may have arrived."""
        return self.status == DELIVERING and self.lease_until is not None and self.lease_until < (now or _now())

    def to_json(self) -> dict[str, object]:
        return {
            "idempotency_key": self.idempotency_key,
            "agent": self.agent,
            "partition": self.partition,
            "proposal_id": self.proposal_id,
            "action": self.action,
            "target": self.target,
            "status": self.status,
            "attempts": self.attempts,
            "next_attempt_at": self.next_attempt_at.isoformat() if self.next_attempt_at else None,
            "last_error": self.last_error,
            "delivered_at": self.delivered_at.isoformat() if self.delivered_at else None,
        }


def backoff(attempts: int) -> dt.timedelta:
    """30 s, 1 min, 2 min, ... capped at one hour."""
    return min(BACKOFF_BASE * (2 ** max(attempts - 1, 0)), BACKOFF_MAX)


class Outbox:
    def __init__(self, engine: sa.Engine):
        self._engine = engine

    def enqueue(self, conn: sa.Connection, entries: Iterable[OutboxEntry]) -> int:
        """Queue actions inside the caller's (verdict's) transaction; how many were queued.

        A key in flight, delivered or settled is kept as it is, and so is one queued by the same
        proposals version: the same action is never queued twice. A key cancelled (superseded
        before it was ever sent) or still queued by an older version takes the arguments of the
        version approving it now: an action approved again must not stay cancelled, nor be
        cancelled later as the older version's. One statement per batch, so two supervisions of
        a partition racing on the same keys both commit (the second waits, then keeps the rows).
        """
        rows = {e.idempotency_key: e for e in entries}
        now = _now()
        new = [
            {
                "idempotency_key": e.idempotency_key,
                "agent": e.agent,
                "partition_key": e.partition,
                "proposal_id": e.proposal_id,
                "proposals_version": e.proposals_version,
                "action": e.action,
                "target": e.target,
                "payload": e.payload,
                "rationale": e.rationale,
                "status": QUEUED,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for e in rows.values()
        ]
        queued = 0
        for batch in statement_batches(conn, new):
            insert = keyed_insert(conn, outbox).values(batch)
            requeued = {
                column: insert.excluded[column]
                for column in ("proposal_id", "proposals_version", "action", "target", "payload", "rationale")
            }
            statement = insert.on_conflict_do_update(
                index_elements=[outbox.c.idempotency_key],
                set_={
                    **requeued,
                    "status": QUEUED,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "last_error": None,
                    "lease_until": None,
                    "run_id": None,
                },
                where=sa.or_(
                    outbox.c.status == CANCELLED,
                    sa.and_(outbox.c.status == QUEUED, outbox.c.proposals_version != insert.excluded.proposals_version),
                ),
            )
            queued += len(conn.execute(statement.returning(outbox.c.idempotency_key)).all())
        return queued

    def lease(
        self,
        key: str,
        run_id: str | None,
        now: dt.datetime | None = None,
        *,
        force: bool = False,
        reclaim: bool = False,
    ) -> bool:
        """Take the right to deliver ``key`` now; False if it is not due, delivered or leased by another.

        ``reclaim`` also takes an interrupted delivery (its lease ran out unconfirmed): for a
        target that deduplicates, or on an operator's say-so. ``force`` ignores the schedule.
        """
        now = now or _now()
        due = outbox.c.next_attempt_at <= now if not force else sa.true()
        free = sa.and_(outbox.c.status == QUEUED, due)
        if reclaim:
            free = sa.or_(free, sa.and_(outbox.c.status == DELIVERING, outbox.c.lease_until < now))
        with write_transaction(self._engine) as conn:
            taken = conn.execute(
                outbox.update()
                .where(outbox.c.idempotency_key == key, free)
                .values(status=DELIVERING, lease_until=now + LEASE, run_id=run_id)
            ).rowcount
        return taken == 1

    def delivered(self, entry: OutboxEntry, run_id: str | None, detail: dict) -> None:
        """The far side confirmed: the receipt and the delivered mark commit together."""
        now = _now()
        with write_transaction(self._engine) as conn:
            exists = conn.execute(
                sa.select(receipts.c.idempotency_key).where(receipts.c.idempotency_key == entry.idempotency_key)
            ).first()
            if exists is None:
                conn.execute(
                    receipts.insert().values(
                        idempotency_key=entry.idempotency_key,
                        agent=entry.agent,
                        partition_key=entry.partition,
                        proposal_id=entry.proposal_id,
                        action=entry.action,
                        target=entry.target,
                        status="executed",
                        attempts=entry.attempts + 1,
                        run_id=run_id,
                        claimed_at=now,
                        executed_at=now,
                        detail=detail,
                    )
                )
            conn.execute(
                outbox.update()
                .where(outbox.c.idempotency_key == entry.idempotency_key)
                .values(
                    status=DELIVERED,
                    delivered_at=now,
                    attempts=outbox.c.attempts + 1,
                    lease_until=None,
                    last_error=None,
                )
            )

    def retry_later(self, key: str, error: str) -> OutboxEntry:
        """Transient failure: back to the queue, due again after the backoff."""
        with write_transaction(self._engine) as conn:
            attempts = conn.execute(sa.select(outbox.c.attempts).where(outbox.c.idempotency_key == key)).scalar_one()
            conn.execute(
                outbox.update()
                .where(outbox.c.idempotency_key == key)
                .values(
                    status=QUEUED,
                    attempts=attempts + 1,
                    next_attempt_at=_now() + backoff(attempts + 1),
                    last_error=scrub(error)[:2000],
                    lease_until=None,
                )
            )
        return self.get(key)

    def in_doubt(self, key: str, why: str) -> OutboxEntry:
        """It may have arrived, unconfirmed: never sent again on its own, waiting for a human."""
        return self._settle(key, IN_DOUBT, why, attempted=False)

    def fail(self, key: str, error: str) -> OutboxEntry:
        """Permanent refusal: kept, visible, and retried only when a human says so."""
        return self._settle(key, FAILED, error, attempted=True)

    def cancel(self, key: str, reason: str) -> OutboxEntry:
        """No longer approved (re-supervised, superseded): never delivered, and recorded why."""
        return self._settle(key, CANCELLED, reason, attempted=False)

    def retry_now(self, keys: Iterable[str] | None = None) -> int:
        """Make queued or failed entries due now (all of them, or some); in-doubt ones only when named."""
        settled = [QUEUED, FAILED] if keys is None else [QUEUED, FAILED, IN_DOUBT]
        query = outbox.update().where(outbox.c.status.in_(settled))
        if keys is not None:
            query = query.where(outbox.c.idempotency_key.in_(list(keys)))
        with write_transaction(self._engine) as conn:
            return conn.execute(query.values(status=QUEUED, next_attempt_at=_now())).rowcount

    def get(self, key: str) -> OutboxEntry:
        found = self.lookup(key)
        if found is None:
            raise FoureyesError(f"no outbox entry {key!r}; `foureyes outbox list --status all` shows them")
        return found

    def lookup(self, key: str) -> OutboxEntry | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(outbox).where(outbox.c.idempotency_key == key)).one_or_none()
        return _from_row(row) if row else None

    def find(
        self,
        *,
        status: str | None = None,
        agent: str | None = None,
        partition: str | None = None,
        due_by: dt.datetime | None = None,
    ) -> list[OutboxEntry]:
        query = sa.select(outbox)
        if status is not None:
            query = query.where(outbox.c.status == status)
        if agent is not None:
            query = query.where(outbox.c.agent == agent)
        if partition is not None:
            query = query.where(outbox.c.partition_key == partition)
        if due_by is not None:
            query = query.where(outbox.c.next_attempt_at <= due_by)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(outbox.c.created_at, outbox.c.idempotency_key)).all()
        return [_from_row(r) for r in rows]

    def _settle(self, key: str, status: str, error: str, attempted: bool) -> OutboxEntry:
        with write_transaction(self._engine) as conn:
            conn.execute(
                outbox.update()
                .where(outbox.c.idempotency_key == key)
                .values(
                    status=status,
                    last_error=scrub(error)[:2000],
                    lease_until=None,
                    attempts=outbox.c.attempts + (1 if attempted else 0),
                )
            )
        return self.get(key)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _from_row(row: sa.Row) -> OutboxEntry:
    return OutboxEntry(
        idempotency_key=row.idempotency_key,
        agent=row.agent,
        partition=row.partition_key,
        proposal_id=row.proposal_id,
        proposals_version=row.proposals_version,
        action=row.action,
        target=row.target,
        payload=row.payload,
        rationale=row.rationale,
        status=row.status,
        attempts=row.attempts,
        next_attempt_at=as_utc(row.next_attempt_at),
        last_error=row.last_error,
        created_at=as_utc(row.created_at),
        delivered_at=as_utc(row.delivered_at),
        lease_until=as_utc(row.lease_until),
        run_id=row.run_id,
    )
