"""The decision log: one row per proposal per supervision, with its verdict and reasons.

Verdicts are data: the executor reads them from here, never from the agent's own output.
A supervision is identified by ``supervision_id``; the executor acts on the latest
supervision of the exact proposals version it is about to execute.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from json.encoder import encode_basestring_ascii
from types import SimpleNamespace

import sqlalchemy as sa

from foureyes.resources.control_plane.approvals import ApprovalBook, ApprovalRequest
from foureyes.resources.control_plane.outbox import Outbox, OutboxEntry
from foureyes.resources.control_plane.schema import decisions, supervisions
from foureyes.resources.engine import as_utc, insert_columns, write_transaction
from foureyes.resources.errors import FoureyesError

APPROVED, REJECTED, PENDING = "approved", "rejected", "pending"
COMPLETED, FAILED = "completed", "failed"  # a supervision's own outcome: it judged the batch, or it broke
READING_ORDER = {REJECTED: 0, PENDING: 1, APPROVED: 2}  # what an operator reads first: what was stopped


class DecisionNotFoundError(FoureyesError):
    """No decision matches the proposal id asked for."""


_JSON = json.JSONEncoder(allow_nan=False, separators=(",", ":"))
VERDICTS = (APPROVED, REJECTED, PENDING)


def json_text(value: object) -> str:
    """The log's JSON text of a JSON-safe value: compact, ASCII, no NaN."""
    return _JSON.encode(value)


#: ``json_text`` of a string, without the encoder's dispatch: what it calls for one (ASCII output).
json_string = encode_basestring_ascii


def reasons_text(reasons: Sequence[Reason]) -> str:
    """The log's JSON text of a decision's reasons."""
    return _JSON.encode([r.to_json() for r in reasons]) if reasons else "[]"


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
    tier: str | None = None
    model: str | None = None
    decided_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} is not one of {VERDICTS}")


@dataclass(frozen=True)
class SupervisionRecord:
    """The batch-level outcome of one supervision: blocked or not, and the counts.

    A supervision that broke (``status`` failed) is recorded too, blocked, with why: the
    executor never acts on that proposals version, and ``decisions`` and ``status`` say so
    rather than showing an older supervision as if it were current.
    """

    supervision_id: str
    agent: str
    partition: str
    proposals_version: str
    blocked: bool
    block_reason: str
    counts: dict[str, int]
    run_id: str | None = None
    supervised_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    status: str = COMPLETED

    @property
    def failed(self) -> bool:
        return self.status == FAILED


@dataclass(frozen=True)
class DecisionColumns:
    """Decisions as the decision log's columns: how a supervision of a million proposals is built
    and written, without a ``Decision``, a dict or a JSON encoder call per proposal.

    ``columns`` maps log columns to one value per decision (``proposal`` and ``reasons`` as JSON
    text), ``same`` the columns every decision shares (agent, partition, supervision, time) to
    their one value. Together they name every column of the log but its id.
    """

    columns: Mapping[str, Sequence[object]]
    same: Mapping[str, object] = field(default_factory=dict)

    @classmethod
    def of(cls, batch: Iterable[Decision]) -> DecisionColumns:
        rows = [_to_row(d) for d in batch]
        return cls({name: [row[name] for row in rows] for name in _LOGGED})

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()), ()))

    def value(self, name: str, i: int) -> object:
        return self.same[name] if name in self.same else self.columns[name][i]

    def decision(self, i: int) -> Decision:
        """The ``i``-th decision, as it will read back from the log."""
        row = {name: self.value(name, i) for name in _LOGGED}
        json_columns = {name: json.loads(row[name]) for name in ("proposal", "reasons")}
        return _from_row(SimpleNamespace(**(row | json_columns)))

    def counts(self) -> Counter[str]:
        """Decisions per verdict."""
        if "verdict" in self.same:
            return Counter({self.same["verdict"]: len(self)})
        return Counter(self.columns["verdict"])

    def first_to_read(self, limit: int) -> list[Decision]:
        """The first ``limit`` decisions in reading order (``DecisionLog.first_to_read``'s, before writing)."""
        verdicts = self.columns["verdict"] if "verdict" in self.columns else [self.same["verdict"]] * len(self)
        found: list[int] = []
        for verdict in sorted(READING_ORDER, key=READING_ORDER.__getitem__):
            found += islice((i for i, v in enumerate(verdicts) if v == verdict), max(0, limit - len(found)))
        return [self.decision(i) for i in found]


class DecisionLog:
    """Reads and appends decisions in the control-plane store."""

    def __init__(self, engine: sa.Engine):
        self._engine = engine

    def record(
        self,
        batch: Iterable[Decision] | DecisionColumns,
        supervision: SupervisionRecord | None = None,
        approvals: Iterable[ApprovalRequest] = (),
        actions: Iterable[OutboxEntry] = (),
    ) -> int:
        """Append one supervision atomically: its decisions, batch record, approval requests and
        the outbox entries of the actions it approved (so no approved action is ever lost).

        The decisions go in through the driver's bulk path (``insert_columns``), inside the same
        SQLAlchemy transaction as the few other rows: its commit makes all of them durable, or none.
        """
        written = batch if isinstance(batch, DecisionColumns) else DecisionColumns.of(batch)
        with write_transaction(self._engine) as conn:
            insert_columns(conn, decisions, written.columns, written.same)
            book = ApprovalBook(self._engine)
            if supervision is not None:
                conn.execute(supervisions.insert().values(**_supervision_row(supervision)))
                book.supersede_older(conn, supervision.agent, supervision.partition, supervision.proposals_version)
            book.request(conn, approvals)
            Outbox(self._engine).enqueue(conn, actions)
        return len(written)

    def supervision(self, agent: str, partition: str, proposals_version: str) -> SupervisionRecord | None:
        """The latest supervision of exactly this proposals version, if any."""
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(supervisions)
                .where(
                    supervisions.c.agent == agent,
                    supervisions.c.partition_key == partition,
                    supervisions.c.proposals_version == proposals_version,
                )
                .order_by(supervisions.c.supervised_at.desc())
                .limit(1)
            ).one_or_none()
        return _to_supervision(row) if row else None

    def latest_supervisions(
        self, agent: str, partition: str | None = None, limit: int | None = None
    ) -> list[SupervisionRecord]:
        """Supervisions of an agent, newest first (one partition, or all; the newest ``limit``)."""
        query = sa.select(supervisions).where(supervisions.c.agent == agent)
        if partition is not None:
            query = query.where(supervisions.c.partition_key == partition)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(supervisions.c.supervised_at.desc()).limit(limit)).all()
        return [_to_supervision(r) for r in rows]

    def of_supervision(
        self,
        supervision_id: str,
        *,
        verdicts: tuple[str, ...] | None = None,
        exclude_action: str | None = None,
    ) -> list[Decision]:
        """One supervision's decisions; optionally only some verdicts, or without one action (holds)."""
        query = sa.select(decisions).where(decisions.c.supervision_id == supervision_id)
        if verdicts is not None:
            query = query.where(decisions.c.verdict.in_(verdicts))
        if exclude_action is not None:
            query = query.where(decisions.c.action != exclude_action)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(decisions.c.id)).all()
        return [_from_row(r) for r in rows]

    def first_to_read(self, supervision_id: str, limit: int) -> list[Decision]:
        """The first ``limit`` decisions in reading order: rejected, pending, then approved, each
        in the order they were recorded. One indexed query per verdict, never the whole batch."""
        found: list[Decision] = []
        with self._engine.connect() as conn:
            for verdict in sorted(READING_ORDER, key=READING_ORDER.__getitem__):
                if len(found) >= limit:
                    break
                rows = conn.execute(
                    sa.select(decisions)
                    .where(decisions.c.supervision_id == supervision_id, decisions.c.verdict == verdict)
                    .order_by(decisions.c.id)
                    .limit(limit - len(found))
                ).all()
                found += [_from_row(r) for r in rows]
        return found

    def latest_for_proposal(self, proposal_id: str) -> Decision:
        """The newest decision on a proposal (an id, or an unambiguous prefix of at least 6 characters)."""
        if len(proposal_id) < 6:
            raise DecisionNotFoundError(f"proposal id {proposal_id!r} is too short: give at least 6 characters")
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(decisions)
                .where(decisions.c.proposal_id.startswith(proposal_id, autoescape=True))
                .order_by(decisions.c.decided_at.desc(), decisions.c.id.desc())
            ).all()
        if not rows:
            raise DecisionNotFoundError(f"no decision on proposal {proposal_id!r}")
        if len({r.proposal_id for r in rows}) > 1:
            found = ", ".join(sorted({r.proposal_id for r in rows}))
            raise DecisionNotFoundError(f"proposal id {proposal_id!r} is ambiguous: {found}")
        return _from_row(rows[0])

    def for_partition(self, agent: str, partition: str) -> list[Decision]:
        """Every decision ever logged for one agent partition, oldest first."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(decisions)
                .where(decisions.c.agent == agent, decisions.c.partition_key == partition)
                .order_by(decisions.c.id)
            ).all()
        return [_from_row(r) for r in rows]


_LOGGED = [c.name for c in decisions.columns if c.name != "id"]


def _to_row(d: Decision) -> dict[str, object]:
    return {
        "agent": d.agent,
        "partition_key": d.partition,
        "proposal_id": d.proposal_id,
        "proposals_version": d.proposals_version,
        "supervision_id": d.supervision_id,
        "run_id": d.run_id,
        "action": d.action,
        "proposal": json_text(d.proposal),
        "rationale": d.rationale,
        "confidence": d.confidence,
        "verdict": d.verdict,
        "reasons": reasons_text(d.reasons),
        "tier": d.tier,
        "model": d.model,
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
        tier=row.tier,
        model=row.model,
        decided_at=as_utc(row.decided_at),
    )


def _supervision_row(s: SupervisionRecord) -> dict[str, object]:
    return {
        "supervision_id": s.supervision_id,
        "agent": s.agent,
        "partition_key": s.partition,
        "proposals_version": s.proposals_version,
        "run_id": s.run_id,
        "blocked": s.blocked,
        "block_reason": s.block_reason,
        "counts": s.counts,
        "supervised_at": s.supervised_at,
        "status": s.status,
    }


def _to_supervision(row: sa.Row) -> SupervisionRecord:
    return SupervisionRecord(
        supervision_id=row.supervision_id,
        agent=row.agent,
        partition=row.partition_key,
        proposals_version=row.proposals_version,
        blocked=row.blocked,
        block_reason=row.block_reason,
        counts=row.counts,
        run_id=row.run_id,
        supervised_at=as_utc(row.supervised_at),
        status=row.status,
    )
