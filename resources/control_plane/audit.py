"""The audit trail: every call that read decisions or changed state, by whom, and how it ended.

Each entry names the authenticated principal and how it was authenticated, the channel
(``cli``, ``mcp-stdio``, ``mcp-http``), the tool, its arguments (secret-named values redacted)
with a digest of them, the outcome (``ok``, ``refused``, ``error``) and the time. The trail
lives in the control plane, apart from the warehouse, so no rewrite of the data touches it.
It is append-only and hash-chained: each entry's hash covers the previous one's, so an entry
edited or removed in the middle is found by ``verify``; entries cut from the end are found
by comparing ``head`` (the count and the last hash) with a copy kept elsewhere. Appends are serialised (the SQLite
write lock; an advisory lock on PostgreSQL) so that the chain never forks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace

import sqlalchemy as sa

from foureyes.resources.control_plane.schema import audit_log
from foureyes.resources.engine import as_utc, is_postgres, write_transaction
from foureyes.resources.redaction import REDACTED, is_secret_name, scrub

OK, REFUSED, ERROR = "ok", "refused", "error"
GENESIS = "0" * 64
_COLUMNS = (
    "at",
    "principal",
    "authenticated_by",
    "channel",
    "tool",
    "arguments",
    "arguments_digest",
    "outcome",
    "detail",
    "previous_hash",
    "entry_hash",
)
_CHAIN_LOCK = 0x61756469745F6C67  # "audit_lg"


def canonical_json(value: object) -> str:
    """One text for one value: keys sorted, no spaces, so that its digest is stable."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def digest(value: object) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


@dataclass(frozen=True)
class AuditEntry:
    principal: str
    authenticated_by: str
    channel: str
    tool: str
    arguments: Mapping[str, object]
    outcome: str
    detail: str = ""
    at: dt.datetime | None = None
    arguments_digest: str = ""
    previous_hash: str = ""
    entry_hash: str = ""
    id: int | None = None

    def chained(self) -> str:
        """The hash of this entry after ``previous_hash``: what ``verify`` recomputes."""
        fields = {
            "at": self.at.isoformat() if self.at else None,
            "principal": self.principal,
            "authenticated_by": self.authenticated_by,
            "channel": self.channel,
            "tool": self.tool,
            "arguments": self.arguments,
            "arguments_digest": self.arguments_digest,
            "outcome": self.outcome,
            "detail": self.detail,
        }
        return hashlib.sha256((self.previous_hash + canonical_json(fields)).encode()).hexdigest()

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "at": self.at.isoformat() if self.at else None,
            "principal": self.principal,
            "authenticated_by": self.authenticated_by,
            "channel": self.channel,
            "tool": self.tool,
            "arguments": dict(self.arguments),
            "arguments_digest": self.arguments_digest,
            "outcome": self.outcome,
            "detail": self.detail,
            "entry_hash": self.entry_hash,
        }


class AuditTrail:
    def __init__(self, engine: sa.Engine):
        self._engine = engine

    def record(self, entry: AuditEntry) -> AuditEntry:
        """Append one entry, chained to the last; its arguments are digested whole and stored redacted."""
        with write_transaction(self._engine) as conn:
            if is_postgres(self._engine):
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_CHAIN_LOCK)))
            last = conn.execute(sa.select(audit_log.c.entry_hash).order_by(audit_log.c.id.desc()).limit(1)).scalar()
            stamped = replace(
                entry,
                at=(entry.at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC),
                arguments=json.loads(canonical_json(redacted(entry.arguments))),  # as the JSON column reads back
                arguments_digest=digest(dict(entry.arguments)),
                detail=scrub(entry.detail)[:2000],
                previous_hash=last or GENESIS,
            )
            stamped = replace(stamped, entry_hash=stamped.chained())
            row = conn.execute(
                audit_log.insert().values(**{c: getattr(stamped, c) for c in _COLUMNS}).returning(audit_log.c.id)
            ).scalar_one()
        return replace(stamped, id=row)

    def find(
        self,
        *,
        principal: str | None = None,
        tool: str | None = None,
        since: dt.datetime | None = None,
        limit: int | None = None,
    ) -> list[AuditEntry]:
        """Entries oldest first (the newest ``limit`` of them)."""
        query = sa.select(audit_log)
        if principal:
            query = query.where(audit_log.c.principal == principal)
        if tool:
            query = query.where(audit_log.c.tool == tool)
        if since:
            query = query.where(audit_log.c.at >= since)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(audit_log.c.id.desc()).limit(limit)).all()
        return [_entry(r) for r in reversed(rows)]

    def verify(self) -> list[str]:
        """Every break in the chain: an entry whose hash, or whose link to the one before, does not hold."""
        problems, previous = [], GENESIS
        with self._engine.connect() as conn:
            for row in conn.execute(sa.select(audit_log).order_by(audit_log.c.id)):
                entry = _entry(row)
                if entry.previous_hash != previous:
                    problems.append(f"entry {entry.id}: does not follow the entry before it (one was removed)")
                if entry.chained() != entry.entry_hash:
                    problems.append(f"entry {entry.id}: its content does not match its hash (it was edited)")
                previous = entry.entry_hash
        return problems

    def head(self) -> tuple[int, str]:
        """How many entries there are, and the last one's hash: written down elsewhere, it shows a cut tail too."""
        with self._engine.connect() as conn:
            count = conn.execute(sa.select(sa.func.count()).select_from(audit_log)).scalar_one()
            last = conn.execute(sa.select(audit_log.c.entry_hash).order_by(audit_log.c.id.desc()).limit(1)).scalar()
        return count, last or GENESIS


def redacted(arguments: Mapping[str, object]) -> dict[str, object]:
    return {k: REDACTED if is_secret_name(k) else v for k, v in arguments.items()}


def _entry(row: sa.Row) -> AuditEntry:
    fields = {c: getattr(row, c) for c in _COLUMNS}
    return AuditEntry(**fields | {"at": as_utc(row.at), "id": row.id})
