"""Human approvals: the four-eyes record of who approved what, when and why.

A proposal the approval policy catches is *pending*: it executes only after enough distinct
approvers (one, or two above the four-eyes limit) said yes — each an authenticated principal
holding the ``approve`` scope, none of them its proposer and no agent, however spelled
(``principals``, ``principal_book``) — and before its deadline. One "no" rejects it.

An approval is bound to what was approved: the proposal id, its proposals version and the
digest of the action's arguments (action, target, proposal, rationale). A vote on a version
the agent has since superseded is refused as stale, and the approval is settled
``superseded``; a vote whose reviewer saw other arguments (``expected_digest``), or on a row
whose arguments no longer match their digest, is refused. An approval nobody decides in time
expires to the safe default, rejected, recorded like any other decision (by ``system``).

Every decision is a compare-and-swap on the approval's revision, inside a transaction that
holds the row: two approvers racing are counted one after the other, a vote sent twice is
counted once (the second is answered as a duplicate), and a granted approval queues its
action once. Every vote is kept, append-only, with its principal, how it was authenticated,
the operating-system account, the version and digest it approved, its time and reason.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from foureyes.resources.control_plane.audit import digest
from foureyes.resources.control_plane.outbox import Outbox, OutboxEntry
from foureyes.resources.control_plane.principal_book import APPROVE as APPROVE_SCOPE
from foureyes.resources.control_plane.principal_book import Principal, PrincipalBook
from foureyes.resources.control_plane.principals import SYSTEM, ApprovalError, check_voter, identity_key, principal
from foureyes.resources.control_plane.receipts import idempotency_key
from foureyes.resources.control_plane.schema import approval_votes, approvals, supervisions
from foureyes.resources.engine import as_utc, insert_ignoring_duplicates, statement_batches, write_transaction

PENDING, APPROVED, REJECTED, EXPIRED, SUPERSEDED = "pending", "approved", "rejected", "expired", "superseded"
STATUSES = (PENDING, APPROVED, REJECTED, EXPIRED, SUPERSEDED)
APPROVE, REJECT = "approve", "reject"
_CAS_TRIES = 5
MIN_DIGEST = 8  # the shortest digest prefix a reviewer may quote


class StaleApprovalError(ApprovalError):
    """A vote on a proposals version the agent has since replaced."""


class _LostRaceError(Exception):
    """The approval's revision moved between reading and writing: read it again."""


def arguments_digest(action: str, target: str, payload: dict | None) -> str:
    """What an approver approves, as one digest: the action, where it goes, and its arguments."""
    return digest({"action": action, "target": target, "payload": payload or {}})


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

    @property
    def stored_payload(self) -> dict:
        return {"proposal": self.payload or {}, "rationale": self.rationale}


@dataclass(frozen=True)
class Vote:
    approver: str
    decision: str
    reason: str
    voted_at: dt.datetime
    os_user: str | None = None
    authenticated_by: str | None = None
    proposals_version: str | None = None
    arguments_digest: str | None = None


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
    target: str = ""
    proposal: dict | None = None
    rationale: str = ""
    arguments_digest: str = ""
    revision: int = 0

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
            "proposals_version": self.proposals_version,
            "summary": self.summary,
            "action": self.action,
            "target": self.target,
            "proposal": self.proposal or {},
            "rationale": self.rationale,
            "arguments_digest": self.arguments_digest,
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
                    "authenticated_by": v.authenticated_by,
                    "os_user": v.os_user,
                    "proposals_version": v.proposals_version,
                    "arguments_digest": v.arguments_digest,
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
        """Open approvals inside the caller's transaction; an existing one is kept as it is.

        One statement per batch, so two supervisions of the same version racing on the same
        approvals both commit: the second waits for the first, then keeps its rows.
        """
        now = dt.datetime.now(dt.UTC)
        new = [
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
                "payload": r.stored_payload,
                "arguments_digest": arguments_digest(r.action, r.target, r.stored_payload),
                "revision": 0,
                "status": PENDING,
                "requested_at": now,
                "expires_at": r.expires_at,
                "run_id": r.run_id,
            }
            for r in {r.approval_id: r for r in requests}.values()
        ]
        opened = 0
        for batch in statement_batches(conn, new):
            insert = insert_ignoring_duplicates(conn, approvals).values(batch)
            opened += len(conn.execute(insert.returning(approvals.c.approval_id)).all())
        return opened

    def decide(
        self,
        approval: str,
        *,
        by: Principal,
        decision: str,
        reason: str,
        expected_digest: str | None = None,
        now: dt.datetime | None = None,
    ) -> Ballot:
        """Record one authenticated principal's vote and settle the approval when it is decided.

        ``by`` comes from ``PrincipalBook`` (a token or the operating-system account); the store
        checks again, inside the transaction, that the principal is configured, enabled, a person
        and holds ``approve``. ``expected_digest`` (the whole digest, or at least 8 characters of
        it) is what the approver reviewed: a vote on other arguments is refused.
        """
        if decision not in (APPROVE, REJECT):
            raise ApprovalError(f"decision {decision!r} is not one of 'approve', 'reject'")
        if not reason.strip():
            raise ApprovalError("a reason is required for every approval decision")
        if expected_digest is not None and len(expected_digest.strip()) < MIN_DIGEST:
            raise ApprovalError(f"give at least {MIN_DIGEST} characters of the arguments digest")
        now = now or dt.datetime.now(dt.UTC)
        for _ in range(_CAS_TRIES):
            try:
                return self._decide_once(approval, by, decision, reason, expected_digest, now)
            except _LostRaceError:
                continue
        raise ApprovalError(f"approval {approval} kept changing while voting: try again")

    def _decide_once(
        self, approval: str, by: Principal, decision: str, reason: str, expected: str | None, now: dt.datetime
    ) -> Ballot:
        with write_transaction(self._engine) as conn:
            found = self._locked(conn, approval)
            voter = self._voter(conn, found, by)
            if expected is not None and not found.arguments_digest.startswith(expected.strip().lower()):
                raise ApprovalError(
                    f"approval {found.approval_id}: you reviewed arguments {expected.strip()[:12]}, the approval is "
                    f"for {found.arguments_digest[:12]}; nothing was recorded"
                )
            cast = [v for v in found.votes if identity_key(v.approver) == identity_key(voter)]
            if cast:  # the same vote sent again counts once; a change of mind is refused
                if cast[0].decision == decision:
                    return Ballot(found, cast[0], counted=False)
                raise ApprovalError(f"{voter} already voted {cast[0].decision} on approval {found.approval_id}")
            if found.status != PENDING:  # settled, so decided_at is set (``_settle`` sets both)
                decided = f"{found.decided_at:%Y-%m-%d %H:%M}Z"
                if found.status == SUPERSEDED:
                    raise StaleApprovalError(
                        f"approval {found.approval_id} is stale: its proposals version "
                        f"{found.proposals_version[:12]} was superseded (at {decided}); nothing was approved"
                    )
                raise ApprovalError(f"approval {found.approval_id} is already {found.status} (decided {decided})")
            refusal = self._binding_refusal(conn, found, now)
            if refusal is None:
                vote = self._vote(conn, found, by=by, voter=voter, decision=decision, reason=reason, now=now)
                return Ballot(self._load(conn, found.approval_id), vote, counted=True)
        raise refusal  # the expiry or supersession is recorded: refused once the transaction has committed

    def _voter(self, conn: sa.Connection, found: Approval, by: Principal) -> str:
        current = PrincipalBook(self._engine).current(conn, by)
        if current is None:
            raise ApprovalError(f"{by.name} is not a configured principal (or it is disabled): it cannot vote")
        if current.is_agent:
            raise ApprovalError(f"{current.name} is an agent principal: agents never approve or reject")
        if not current.allows(APPROVE_SCOPE):
            raise ApprovalError(f"{current.name} does not hold the 'approve' scope: it cannot vote")
        return check_voter(current.name, proposer=found.proposer, agents={found.agent, *self._agents(conn)})

    def _binding_refusal(self, conn: sa.Connection, found: Approval, now: dt.datetime) -> ApprovalError | None:
        """Why this approval may not take a vote now (settling it if it is over), or None."""
        if now >= found.expires_at:
            self._expire(conn, found, now)
            return ApprovalError(
                f"approval {found.approval_id} expired at {found.expires_at:%Y-%m-%d %H:%M}Z: rejected by default"
            )
        current = _current_version(conn, found.agent, found.partition)
        if current is not None and current != found.proposals_version:
            self._supersede(conn, found, current, now)
            return StaleApprovalError(
                f"approval {found.approval_id} is stale: it is for proposals version {found.proposals_version[:12]}, "
                f"which {found.agent} superseded with {current[:12]}; nothing was approved "
                "(`foureyes approvals list` shows the current ones)"
            )
        row = conn.execute(sa.select(approvals).where(approvals.c.approval_id == found.approval_id)).one()
        if arguments_digest(row.action, row.target, row.payload) != found.arguments_digest:
            raise ApprovalError(
                f"approval {found.approval_id}: the stored action no longer matches the digest it was requested "
                "with; nothing was approved"
            )
        return None

    def _vote(
        self,
        conn: sa.Connection,
        found: Approval,
        *,
        by: Principal,
        voter: str,
        decision: str,
        reason: str,
        now: dt.datetime,
    ) -> Vote:
        vote = Vote(
            voter,
            decision,
            reason,
            now,
            os_user=by.os_user,
            authenticated_by=by.authenticated_by,
            proposals_version=found.proposals_version,
            arguments_digest=found.arguments_digest,
        )
        conn.execute(approval_votes.insert().values(approval_id=found.approval_id, **_vote_row(vote)))
        if decision == REJECT:
            self._settle(conn, found, REJECTED, now)
        elif len(found.approvers) + 1 >= found.required:
            self._settle(conn, found, APPROVED, now)
            self._queue_action(conn, found)
        else:
            self._settle(conn, found, PENDING, None)
        return vote

    def _agents(self, conn: sa.Connection) -> set[str]:
        """Every agent that ever asked this store for an approval: none of them may vote."""
        return set(conn.execute(sa.select(approvals.c.agent).distinct()).scalars())

    def _queue_action(self, conn: sa.Connection, found: Approval) -> None:
        """A granted approval queues its action in the same transaction (the outbox pattern)."""
        row = conn.execute(sa.select(approvals).where(approvals.c.approval_id == found.approval_id)).one()
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

    def supersede_older(self, conn: sa.Connection, agent: str, partition: str, version: str) -> int:
        """Settle, inside the caller's transaction, the pending approvals of the versions ``version`` replaces."""
        older = self._loaded(
            conn,
            sa.select(approvals)
            .where(
                approvals.c.agent == agent,
                approvals.c.partition_key == partition,
                approvals.c.proposals_version != version,
                approvals.c.status == PENDING,
            )
            .with_for_update(),  # a vote holding one commits first; it is then re-read, and skipped if settled
        )
        now = dt.datetime.now(dt.UTC)
        for found in older:
            self._supersede(conn, found, version, now)
        return len(older)

    def expire_overdue(self, now: dt.datetime | None = None, agent: str | None = None) -> list[Approval]:
        """Expire every pending approval (of ``agent``) past its deadline: rejected by default, recorded."""
        now = now or dt.datetime.now(dt.UTC)
        overdue_query = (
            sa.select(approvals).where(approvals.c.status == PENDING, approvals.c.expires_at <= now).with_for_update()
        )
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
        self._system_rejection(
            conn, found, f"expired undecided at {found.expires_at:%Y-%m-%d %H:%M}Z: rejected by default", now
        )
        self._settle(conn, found, EXPIRED, now)

    def _supersede(self, conn: sa.Connection, found: Approval, version: str, now: dt.datetime) -> None:
        reason = f"superseded by proposals version {version[:12]}: the approved arguments are no longer proposed"
        self._system_rejection(conn, found, reason, now)
        self._settle(conn, found, SUPERSEDED, now)

    def _system_rejection(self, conn: sa.Connection, found: Approval, reason: str, now: dt.datetime) -> None:
        vote = Vote(SYSTEM, REJECT, reason, now, None, "foureyes", found.proposals_version, found.arguments_digest)
        conn.execute(approval_votes.insert().values(approval_id=found.approval_id, **_vote_row(vote)))

    def _settle(self, conn: sa.Connection, found: Approval, status: str, now: dt.datetime | None) -> None:
        """The compare-and-swap: only the revision that was read may move on, and only while pending."""
        moved = conn.execute(
            approvals.update()
            .where(
                approvals.c.approval_id == found.approval_id,
                approvals.c.revision == found.revision,
                approvals.c.status == PENDING,
            )
            .values(status=status, decided_at=now, revision=found.revision + 1)
        )
        if moved.rowcount != 1:
            raise _LostRaceError()

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
                votes[v.approval_id].append(
                    Vote(
                        v.approver,
                        v.decision,
                        v.reason,
                        as_utc(v.voted_at),
                        v.os_user,
                        v.authenticated_by,
                        v.proposals_version,
                        v.arguments_digest,
                    )
                )
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
                target=row.target,
                proposal=row.payload.get("proposal", {}),
                rationale=row.payload.get("rationale", ""),
                arguments_digest=row.arguments_digest or "",
                revision=row.revision,
            )
            for row in rows
        ]


@dataclass(frozen=True)
class Ballot:
    """What one vote did: the approval after it, the vote on record, and whether this call counted it."""

    approval: Approval
    vote: Vote
    counted: bool

    def to_json(self) -> dict[str, object]:
        return {**self.approval.to_json(), "counted": self.counted, "by": self.vote.approver}


def _current_version(conn: sa.Connection, agent: str, partition: str) -> str | None:
    """The proposals version of the agent partition's latest supervision (None: never supervised)."""
    return conn.execute(
        sa.select(supervisions.c.proposals_version)
        .where(supervisions.c.agent == agent, supervisions.c.partition_key == partition)
        .order_by(supervisions.c.supervised_at.desc())
        .limit(1)
    ).scalar()


def _vote_row(vote: Vote) -> dict[str, object]:
    return {
        "approver": vote.approver,
        "approver_key": identity_key(vote.approver),
        "os_user": vote.os_user,
        "authenticated_by": vote.authenticated_by,
        "proposals_version": vote.proposals_version,
        "arguments_digest": vote.arguments_digest,
        "decision": vote.decision,
        "reason": vote.reason,
        "voted_at": vote.voted_at,
    }


def _by_ids(ids: list[str]) -> sa.Select:
    return sa.select(approvals).where(approvals.c.approval_id.in_(ids)).order_by(approvals.c.approval_id)
