"""Human approvals: the four-eyes record of who approved what, when and why.

A proposal the approval policy catches is *pending*: it executes only after enough distinct
approvers (one, or two above the four-eyes limit) said yes — none of them its proposer and
no agent, however spelled (``foureyes.resources.control_plane.principals``) — and before its deadline. One "no"
rejects it. An approval nobody decides in time expires to the safe default, rejected, and
the expiry is recorded like any other decision (by ``system``). Every vote is kept,
append-only, with its author, the operating-system account that cast it, its time and reason.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from foureyes.resources.control_plane.outbox import Outbox, OutboxEntry
from foureyes.resources.control_plane.principals import SYSTEM, ApprovalError, check_voter, identity_key, principal
from foureyes.resources.control_plane.receipts import idempotency_key
from foureyes.resources.control_plane.schema import approval_votes, approvals
from foureyes.resources.engine import as_utc, write_transaction

PENDING, APPROVED, REJECTED, EXPIRED = "pending", "approved", "rejected", "expired"
APPROVE, REJECT = "approve", "reject"


def approval_id(agent: str, partition: str, proposal_id: str, proposals_version: str) -> str:
    return hashlib.sha256(f"{agent}|{partition}|{proposal_id}|{proposals_version}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ApprovalRequest:
    agent: str
    partition: str
    proposal_id: str
    proposals_version: str
    policy: str
    required: int
    proposer: str
    summary: str
    expires_at: dt.datetime
    action: str = ""
    target: str = ""
    payload: dict | None = None
    rationale: str = ""
    run_id: str | None = None

    @property
    def approval_id(self) -> str:
        return approval_id(self.agent, self.partition, self.proposal_id, self.proposals_version)


@dataclass(frozen=True)
class Vote:
    approver: str
    decision: str
    reason: str
    voted_at: dt.datetime
    os_user: str | None = None


@dataclass(frozen=True)
class Approval:
    approval_id: str
    agent: str
    partition: str
    proposal_id: str
    proposals_version: str
    policy: str
    required: int
    proposer: str
    summary: str
    status: str
    requested_at: dt.datetime
    expires_at: dt.datetime
    decided_at: dt.datetime | None
    votes: tuple[Vote, ...] = ()
    action: str = ""

    @property
    def approvers(self) -> list[str]:
        return [v.approver for v in self.votes if v.decision == APPROVE]

    @property
    def idempotency_key(self) -> str:
        """The key of the action this approval would queue."""
        return idempotency_key(self.agent, self.partition, self.proposal_id, self.action)

    def to_json(self) -> dict[str, object]:
        return {
            "approval_id": self.approval_id,
            "agent": self.agent,
            "partition": self.partition,
            "proposal_id": self.proposal_id,
            "summary": self.summary,
            "policy": self.policy,
            "status": self.status,
            "required": self.required,
            "approvers": self.approvers,
            "proposer": self.proposer,
            "requested_at": self.requested_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "votes": [
                {
                    "by": v.approver,
                    "os_user": v.os_user,
                    "decision": v.decision,
                    "reason": v.reason,
                    "at": v.voted_at.isoformat(),
                }
                for v in self.votes
            ],
        }


class ApprovalBook:
    def __init__(self, engine: sa.Engine):
        self._engine = engine

    def request(self, conn: sa.Connection, requests: Iterable[ApprovalRequest]) -> int:
        """Open approvals inside the caller's transaction; an existing one is kept as it is."""
        rows = list({r.approval_id: r for r in requests}.values())
        if not rows:
            return 0
        known = set(
            conn.execute(
                sa.select(approvals.c.approval_id).where(approvals.c.approval_id.in_([r.approval_id for r in rows]))
            ).scalars()
        )
        new = [r for r in rows if r.approval_id not in known]
        if new:
            now = dt.datetime.now(dt.UTC)
            conn.execute(
                approvals.insert(),
                [
                    {
                        "approval_id": r.approval_id,
                        "agent": r.agent,
                        "partition_key": r.partition,
                        "proposal_id": r.proposal_id,
                        "proposals_version": r.proposals_version,
                        "policy": r.policy,
                        "required": r.required,
                        "proposer": principal(r.proposer),
                        "summary": r.summary,
                        "action": r.action,
                        "target": r.target,
                        "payload": {"proposal": r.payload or {}, "rationale": r.rationale},
                        "status": PENDING,
                        "requested_at": now,
                        "expires_at": r.expires_at,
                        "run_id": r.run_id,
                    }
                    for r in new
                ],
            )
        return len(new)

    def decide(
        self,
        approval: str,
        *,
        by: str,
        decision: str,
        reason: str,
        os_user: str | None = None,
        now: dt.datetime | None = None,
    ) -> Approval:
        """Record one approver's vote and settle the approval when it is decided.

        ``by`` is compared as a normalised principal (``foureyes.resources.control_plane.principals``); ``os_user``
        is the operating-system account that cast the vote, kept with it for the audit.
        """
        if decision not in (APPROVE, REJECT):
            raise ApprovalError(f"decision {decision!r} is not one of 'approve', 'reject'")
        if not reason.strip():
            raise ApprovalError("a reason is required for every approval decision")
        now = now or dt.datetime.now(dt.UTC)
        with write_transaction(self._engine) as conn:
            found = self._locked(conn, approval)
            if found.status != PENDING:  # settled, so decided_at is set (``_settle`` sets both)
                decided = f"{found.decided_at:%Y-%m-%d %H:%M}Z"
                raise ApprovalError(f"approval {found.approval_id} is already {found.status} (decided {decided})")
            voter = check_voter(by, proposer=found.proposer, agents={found.agent, *self._agents(conn)})
            expired = now >= found.expires_at
            if expired:  # recorded, then refused below once the transaction has committed
                self._expire(conn, found, now)
            else:
                self._vote(conn, found, by=voter, decision=decision, reason=reason, os_user=os_user, now=now)
                return self._load(conn, found.approval_id)
        raise ApprovalError(
            f"approval {found.approval_id} expired at {found.expires_at:%Y-%m-%d %H:%M}Z: rejected by default"
        )

    def _vote(
        self,
        conn: sa.Connection,
        found: Approval,
        *,
        by: str,
        decision: str,
        reason: str,
        os_user: str | None,
        now: dt.datetime,
    ) -> None:
        if identity_key(by) in {identity_key(v.approver) for v in found.votes}:
            raise ApprovalError(f"{by} already voted on approval {found.approval_id}; a second approver must differ")
        conn.execute(
            approval_votes.insert().values(
                approval_id=found.approval_id,
                approver=by,
                approver_key=identity_key(by),
                os_user=os_user,
                decision=decision,
                reason=reason,
                voted_at=now,
            )
        )
        if decision == REJECT:
            self._settle(conn, found, REJECTED, now)
        elif len(found.approvers) + 1 >= found.required:
            self._settle(conn, found, APPROVED, now)
            self._queue_action(conn, found.approval_id)

    def _agents(self, conn: sa.Connection) -> set[str]:
        """Every agent that ever asked this store for an approval: none of them may vote."""
        return set(conn.execute(sa.select(approvals.c.agent).distinct()).scalars())

    def _queue_action(self, conn: sa.Connection, approval: str) -> None:
        """A granted approval queues its action in the same transaction (the outbox pattern)."""
        row = conn.execute(sa.select(approvals).where(approvals.c.approval_id == approval)).one()
        Outbox(self._engine).enqueue(
            conn,
            [
                OutboxEntry(
                    idempotency_key=idempotency_key(row.agent, row.partition_key, row.proposal_id, row.action),
                    agent=row.agent,
                    partition=row.partition_key,
                    proposal_id=row.proposal_id,
                    proposals_version=row.proposals_version,
                    action=row.action,
                    target=row.target,
                    payload=row.payload["proposal"],
                    rationale=row.payload["rationale"],
                )
            ],
        )

    def expire_overdue(self, now: dt.datetime | None = None, agent: str | None = None) -> list[Approval]:
        """Expire every pending approval (of ``agent``) past its deadline: rejected by default, recorded."""
        now = now or dt.datetime.now(dt.UTC)
        overdue_query = sa.select(approvals).where(approvals.c.status == PENDING, approvals.c.expires_at <= now)
        if agent:
            overdue_query = overdue_query.where(approvals.c.agent == agent)
        with write_transaction(self._engine) as conn:
            overdue = self._loaded(conn, overdue_query)
            for approval in overdue:
                self._expire(conn, approval, now)
            return self._loaded(conn, _by_ids([a.approval_id for a in overdue]))

    def get(self, approval: str) -> Approval:
        with self._engine.connect() as conn:
            return self._load(conn, self._resolve(conn, approval))

    def find(
        self, *, status: str | None = None, agent: str | None = None, partition: str | None = None
    ) -> list[Approval]:
        query = sa.select(approvals).order_by(approvals.c.requested_at, approvals.c.approval_id)
        if status:
            query = query.where(approvals.c.status == status)
        if agent:
            query = query.where(approvals.c.agent == agent)
        if partition:
            query = query.where(approvals.c.partition_key == partition)
        with self._engine.connect() as conn:
            return self._loaded(conn, query)

    def for_version(self, agent: str, partition: str, proposals_version: str) -> dict[str, Approval]:
        """The approvals of one proposals version, by proposal id."""
        query = sa.select(approvals).where(
            approvals.c.agent == agent,
            approvals.c.partition_key == partition,
            approvals.c.proposals_version == proposals_version,
        )
        with self._engine.connect() as conn:
            return {a.proposal_id: a for a in self._loaded(conn, query)}

    def decided_after(self, cursor: float, agent: str | None = None) -> list[Approval]:
        """Approvals (of ``agent``) settled after ``cursor``, a UTC timestamp, oldest first: what a sensor acts on."""
        since = dt.datetime.fromtimestamp(cursor, dt.UTC)
        query = (
            sa.select(approvals)
            .where(approvals.c.decided_at > since)
            .order_by(approvals.c.decided_at, approvals.c.approval_id)
        )
        if agent:
            query = query.where(approvals.c.agent == agent)
        with self._engine.connect() as conn:
            return self._loaded(conn, query)

    # -- internals -------------------------------------------------------------------------

    def _expire(self, conn: sa.Connection, found: Approval, now: dt.datetime) -> None:
        conn.execute(
            approval_votes.insert().values(
                approval_id=found.approval_id,
                approver=SYSTEM,
                approver_key=identity_key(SYSTEM),
                decision=REJECT,
                reason=f"expired undecided at {found.expires_at:%Y-%m-%d %H:%M}Z: rejected by default",
                voted_at=now,
            )
        )
        self._settle(conn, found, EXPIRED, now)

    def _settle(self, conn: sa.Connection, found: Approval, status: str, now: dt.datetime) -> None:
        conn.execute(
            approvals.update().where(approvals.c.approval_id == found.approval_id).values(status=status, decided_at=now)
        )

    def _locked(self, conn: sa.Connection, approval: str) -> Approval:
        resolved = self._resolve(conn, approval)
        if conn.dialect.name == "postgresql":
            conn.execute(
                sa.select(approvals.c.approval_id).where(approvals.c.approval_id == resolved).with_for_update()
            )
        return self._load(conn, resolved)

    def _resolve(self, conn: sa.Connection, approval: str) -> str:
        """Accept a full id or an unambiguous prefix (at least 6 characters)."""
        if len(approval) < 6:
            raise ApprovalError(f"approval id {approval!r} is too short: give at least 6 characters")
        matches = (
            conn.execute(
                sa.select(approvals.c.approval_id).where(approvals.c.approval_id.startswith(approval, autoescape=True))
            )
            .scalars()
            .all()
        )
        if not matches:
            raise ApprovalError(f"no approval {approval!r}; `foureyes approvals list` shows the pending ones")
        if len(matches) > 1:
            raise ApprovalError(f"approval id {approval!r} is ambiguous: {', '.join(sorted(matches))}")
        return matches[0]

    def _load(self, conn: sa.Connection, approval: str) -> Approval:
        (found,) = self._loaded(conn, _by_ids([approval]))
        return found

    def _loaded(self, conn: sa.Connection, query: sa.Select) -> list[Approval]:
        """The approvals a query selects, with their votes: two statements, however many there are."""
        rows = conn.execute(query).all()
        votes: dict[str, list[Vote]] = {r.approval_id: [] for r in rows}
        if rows:
            for v in conn.execute(
                sa.select(approval_votes)
                .where(approval_votes.c.approval_id.in_(list(votes)))
                .order_by(approval_votes.c.id)
            ):
                votes[v.approval_id].append(Vote(v.approver, v.decision, v.reason, as_utc(v.voted_at), v.os_user))
        return [
            Approval(
                approval_id=row.approval_id,
                agent=row.agent,
                partition=row.partition_key,
                proposal_id=row.proposal_id,
                proposals_version=row.proposals_version,
                policy=row.policy,
                required=row.required,
                proposer=row.proposer,
                summary=row.summary,
                status=row.status,
                requested_at=as_utc(row.requested_at),
                expires_at=as_utc(row.expires_at),
                decided_at=as_utc(row.decided_at),
                votes=tuple(votes[row.approval_id]),
                action=row.action,
            )
            for row in rows
        ]


def _by_ids(ids: list[str]) -> sa.Select:
    return sa.select(approvals).where(approvals.c.approval_id.in_(ids)).order_by(approvals.c.approval_id)
