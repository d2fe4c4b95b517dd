"""Who may do what: the configured principals, their scopes, and their bearer tokens.

A principal is a person or an agent (``agent:<name>``) with scopes: ``read`` (status,
decisions, traces, approvals and the outbox), ``approve`` (vote on approvals; people only)
and ``operate`` (retry the outbox). A person may be bound to an operating-system account:
on the CLI, and on the MCP server over stdio, that account *is* the principal. Over HTTP a
principal authenticates with a bearer token. A token is shown once, when it is issued, and
stored only as its SHA-256: the token is 256 random bits, so a fast hash is enough. A salt or
a slow hash matters only for a secret a person chose. A token can expire and be revoked, and
disabling a principal ends all its tokens.

An operating-system account that no principal claims may read and do nothing else: it
already holds the store's credentials, so reading through foureyes gives it nothing new. It
cannot approve or operate, because nobody configured it to.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import pwd
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, replace

import sqlalchemy as sa

from foureyes.resources.control_plane.principals import AGENT_PREFIX, SYSTEM, identity_key, principal
from foureyes.resources.control_plane.schema import principal_tokens, principals
from foureyes.resources.engine import as_utc, write_transaction
from foureyes.resources.errors import FoureyesError

READ, APPROVE, OPERATE = "read", "approve", "operate"
SCOPES = (READ, APPROVE, OPERATE)
PERSON, AGENT = "person", "agent"
TOKEN_PREFIX = "fey_"
TOKEN_ENV = "FOUREYES_TOKEN"
OS_PREFIX = "os:"


class AccessError(FoureyesError):
    """A principal that is not allowed what it asked for (unknown, disabled, or missing a scope)."""


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: who, with which scopes, and how that was established."""

    name: str
    kind: str
    scopes: tuple[str, ...]
    authenticated_by: str  # "token 1a2b3c4d", "os-user alice"
    os_user: str | None = None
    configured: bool = True

    @property
    def is_agent(self) -> bool:
        return self.kind == AGENT

    def allows(self, scope: str) -> bool:
        return scope in self.scopes

    def require(self, scope: str, what: str) -> None:
        if not self.allows(scope):
            held = ", ".join(self.scopes) or "none"
            raise AccessError(f"{self.name} may not {what}: it needs the {scope!r} scope (it has: {held})")


@dataclass(frozen=True)
class PrincipalRecord:
    name: str
    kind: str
    scopes: tuple[str, ...]
    os_user: str | None
    created_at: dt.datetime
    created_by: str
    disabled_at: dt.datetime | None
    tokens: tuple[TokenRecord, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "kind": self.kind,
            "scopes": list(self.scopes),
            "os_user": self.os_user,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "disabled_at": self.disabled_at.isoformat() if self.disabled_at else None,
            "tokens": [t.to_json() for t in self.tokens],
        }


@dataclass(frozen=True)
class TokenRecord:
    token_id: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None

    def live(self, now: dt.datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)

    def to_json(self) -> dict[str, object]:
        return {
            "token_id": self.token_id,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


@dataclass(frozen=True)
class IssuedToken:
    """A token as it is handed over: the secret itself exists only here, never in a store."""

    principal: str
    token_id: str
    token: str
    expires_at: dt.datetime | None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def os_account() -> str:
    """The account this process runs as, from the kernel: ``$USER`` is typed, the uid is not."""
    return pwd.getpwuid(os.geteuid()).pw_name


def kind_of(name: str) -> str:
    return AGENT if principal(name).startswith(AGENT_PREFIX) else PERSON


class PrincipalBook:
    def __init__(self, engine: sa.Engine):
        self._engine = engine

    def add(self, name: str, scopes: Iterable[str], *, os_user: str | None = None, created_by: str) -> PrincipalRecord:
        """Configure a principal; a name that reads as an existing one (in any spelling) is refused."""
        recorded, kind = principal(name), kind_of(name)
        granted = _checked_scopes(scopes, kind)
        key = identity_key(recorded)
        if not key or recorded.startswith(OS_PREFIX) or key == identity_key(SYSTEM):
            raise AccessError(f"{name!r} cannot name a principal (empty, os:..., or reserved)")
        if os_user is not None and kind == AGENT:
            raise AccessError("an agent principal is not bound to an operating-system account")
        with write_transaction(self._engine) as conn:
            same = principals.c.principal_key == key
            if os_user is not None:
                same = same | (principals.c.os_user == os_user)
            clash = conn.execute(sa.select(principals.c.name).where(same)).scalar()
            if clash is not None:
                raise AccessError(f"{name!r} is already configured as principal {clash!r} (or holds {os_user!r})")
            conn.execute(
                principals.insert().values(
                    name=recorded,
                    principal_key=key,
                    kind=kind,
                    scopes=list(granted),
                    os_user=os_user,
                    created_at=_now(),
                    created_by=created_by,
                )
            )
        return self.get(recorded)

    def grant(self, name: str, scopes: Iterable[str]) -> PrincipalRecord:
        """Replace a principal's scopes (its tokens keep working with the new ones)."""
        found = self.get(name)
        with write_transaction(self._engine) as conn:
            conn.execute(
                principals.update()
                .where(principals.c.name == found.name)
                .values(scopes=list(_checked_scopes(scopes, found.kind)))
            )
        return self.get(found.name)

    def disable(self, name: str) -> PrincipalRecord:
        found = self.get(name)
        with write_transaction(self._engine) as conn:
            conn.execute(principals.update().where(principals.c.name == found.name).values(disabled_at=_now()))
        return self.get(found.name)

    def issue_token(self, name: str, *, expires_at: dt.datetime | None = None) -> IssuedToken:
        found = self.get(name)
        if found.disabled_at is not None:
            raise AccessError(f"principal {found.name!r} is disabled: no token is issued")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        hashed = token_hash(token)
        with write_transaction(self._engine) as conn:
            conn.execute(
                principal_tokens.insert().values(
                    token_hash=hashed,
                    token_id=hashed[:12],
                    principal=found.name,
                    created_at=_now(),
                    expires_at=expires_at,
                )
            )
        return IssuedToken(found.name, hashed[:12], token, expires_at)

    def revoke(self, token_id: str) -> TokenRecord:
        with write_transaction(self._engine) as conn:
            done = conn.execute(
                principal_tokens.update()
                .where(principal_tokens.c.token_id == token_id, principal_tokens.c.revoked_at.is_(None))
                .values(revoked_at=_now())
            )
            if done.rowcount != 1:
                raise AccessError(f"no live token {token_id!r}; `foureyes principals list` shows the token ids")
            row = conn.execute(sa.select(principal_tokens).where(principal_tokens.c.token_id == token_id)).one()
        return _token(row)

    def authenticate(self, token: str, now: dt.datetime | None = None) -> Principal | None:
        """The principal a bearer token stands for, or None: unknown, expired, revoked or disabled alike."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        hashed = token_hash(token)
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(principal_tokens, principals.c.kind, principals.c.scopes, principals.c.disabled_at)
                .join(principals, principals.c.name == principal_tokens.c.principal)
                .where(principal_tokens.c.token_hash == hashed)
            ).one_or_none()
        if row is None or row.disabled_at is not None:  # found by its hash: nothing left to compare
            return None
        if not _token(row).live(now or _now()):
            return None
        return Principal(row.principal, row.kind, tuple(row.scopes), f"token {row.token_id}")

    def of_os_user(self, account: str) -> Principal:
        """The principal an operating-system account is: the one bound to it, else a reader named ``os:<account>``."""
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(principals).where(principals.c.os_user == account)).one_or_none()
        how = f"os-user {account}"
        if row is None:
            return Principal(f"{OS_PREFIX}{account}", PERSON, (READ,), how, os_user=account, configured=False)
        if row.disabled_at is not None:
            return Principal(f"{OS_PREFIX}{account}", PERSON, (), how, os_user=account, configured=False)
        return Principal(row.name, row.kind, tuple(row.scopes), how, os_user=account)

    def from_environment(self, environ: dict[str, str] | None = None) -> Principal:
        """The CLI's and the stdio server's caller: ``$FOUREYES_TOKEN`` if given, else the operating-system account."""
        token = (os.environ if environ is None else environ).get(TOKEN_ENV)
        if token:
            found = self.authenticate(token.strip())
            if found is None:
                raise AccessError(f"${TOKEN_ENV} is not a valid token")
            return replace(found, os_user=os_account())
        return self.of_os_user(os_account())

    def current(self, conn: sa.Connection, who: Principal) -> Principal | None:
        """The principal as the store holds it now, inside the caller's transaction (None: gone or disabled)."""
        if not who.configured:
            return None
        row = conn.execute(sa.select(principals).where(principals.c.name == who.name)).one_or_none()
        if row is None or row.disabled_at is not None:
            return None
        return Principal(row.name, row.kind, tuple(row.scopes), who.authenticated_by, who.os_user)

    def get(self, name: str) -> PrincipalRecord:
        found = [p for p in self.list() if identity_key(p.name) == identity_key(name)]
        if not found:
            raise AccessError(f"no principal {name!r}; `foureyes principals list` shows them")
        return found[0]

    def list(self) -> list[PrincipalRecord]:
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(principals).order_by(principals.c.name)).all()
            tokens = conn.execute(sa.select(principal_tokens).order_by(principal_tokens.c.created_at)).all()
        by_principal: dict[str, list[TokenRecord]] = {}
        for t in tokens:
            by_principal.setdefault(t.principal, []).append(_token(t))
        return [
            PrincipalRecord(
                r.name,
                r.kind,
                tuple(r.scopes),
                r.os_user,
                as_utc(r.created_at),
                r.created_by,
                as_utc(r.disabled_at),
                tuple(by_principal.get(r.name, ())),
            )
            for r in rows
        ]


def _checked_scopes(scopes: Iterable[str], kind: str) -> tuple[str, ...]:
    granted = tuple(dict.fromkeys(s.strip().lower() for s in scopes if s.strip()))
    unknown = [s for s in granted if s not in SCOPES]
    if unknown:
        raise AccessError(f"unknown scope(s) {', '.join(unknown)}: the scopes are {', '.join(SCOPES)}")
    if kind == AGENT and APPROVE in granted:
        raise AccessError("an agent principal never approves: it cannot hold the 'approve' scope")
    return granted


def _token(row: sa.Row) -> TokenRecord:
    return TokenRecord(row.token_id, as_utc(row.created_at), as_utc(row.expires_at), as_utc(row.revoked_at))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
