"""Principals on real SQLite and PostgreSQL: who they are, what they may do, and their tokens."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest
import sqlalchemy as sa

from foureyes.resources.control_plane.principal_book import (
    AGENT,
    APPROVE,
    OPERATE,
    PERSON,
    READ,
    TOKEN_ENV,
    AccessError,
    Principal,
    os_account,
    token_hash,
)
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.control_plane.schema import metadata, principal_tokens, principals
from foureyes.resources.engine import write_transaction

NOW = dt.datetime(2026, 11, 20, 18, 0, tzinfo=dt.UTC)


@pytest.fixture
def control(db_url: str) -> ControlPlaneResource:
    return ControlPlaneResource(url=db_url)


def _everything_stored(control: ControlPlaneResource, db_url: str) -> str:
    """Every byte the store holds: the SQLite files themselves, or every row of every table."""
    if db_url.startswith("sqlite"):
        path = Path(db_url.removeprefix("sqlite:///"))
        control.engine.dispose()  # the WAL checkpointed into the file, or still beside it: both are read
        return "".join(p.read_bytes().decode("latin-1") for p in path.parent.glob(path.name + "*"))
    with control.engine.connect() as conn:
        return "\n".join(str(row) for t in metadata.sorted_tables for row in conn.execute(sa.select(t)))


def test_a_token_is_stored_only_as_its_sha256(control, db_url):
    control.principals.add("alice", [READ, APPROVE], created_by="tests")
    issued = control.principals.issue_token("alice")
    assert issued.token.startswith("fey_") and len(issued.token) > 40
    assert control.principals.authenticate(issued.token) is not None  # the store is in use, written to
    stored = _everything_stored(control, db_url)
    assert issued.token not in stored and issued.token.removeprefix("fey_") not in stored
    assert hashlib.sha256(issued.token.encode()).hexdigest() in stored
    with control.engine.connect() as conn:
        row = conn.execute(sa.select(principal_tokens)).one()
    assert (row.token_hash, row.token_id, row.principal) == (token_hash(issued.token), issued.token_id, "alice")
    assert issued.token_id == row.token_hash[:12]
    listed = control.principals.get("alice").to_json()
    assert issued.token not in str(listed) and [t["token_id"] for t in listed["tokens"]] == [issued.token_id]


def test_a_token_authenticates_its_principal_with_its_scopes(control):
    control.principals.add("Alice", [" Read ", "APPROVE", "read"], created_by="ops")
    issued = control.principals.issue_token("ALICE")
    found = control.principals.authenticate(issued.token)
    assert found == Principal("alice", PERSON, (READ, APPROVE), f"token {issued.token_id}")
    assert found.configured and not found.is_agent and found.allows(APPROVE) and not found.allows(OPERATE)
    record = control.principals.get("a.lice")
    assert (record.name, record.kind, record.scopes, record.created_by, record.disabled_at) == (
        "alice",
        PERSON,
        (READ, APPROVE),
        "ops",
        None,
    )


@pytest.mark.parametrize(
    "token",
    ["", "fey_", "fey_" + "A" * 43, "not-a-token", "FEY_x", " fey_padded "],
    ids=["empty", "prefix", "unknown", "no prefix", "upper", "padded"],
)
def test_an_unknown_token_authenticates_nobody(control, token):
    control.principals.add("alice", [READ], created_by="tests")
    control.principals.issue_token("alice")
    assert control.principals.authenticate(token) is None


def test_a_revoked_token_authenticates_nobody_and_the_others_still_work(control):
    control.principals.add("alice", [READ], created_by="tests")
    first, second = control.principals.issue_token("alice"), control.principals.issue_token("alice")
    revoked = control.principals.revoke(first.token_id)
    assert revoked.token_id == first.token_id and revoked.revoked_at is not None
    assert control.principals.authenticate(first.token) is None
    assert control.principals.authenticate(second.token).name == "alice"
    with pytest.raises(AccessError, match=f"^no live token '{first.token_id}'; `foureyes principals list`"):
        control.principals.revoke(first.token_id)
    with pytest.raises(AccessError, match=r"^no live token 'feedfacefeed'"):
        control.principals.revoke("feedfacefeed")


def test_an_expired_token_authenticates_nobody_from_its_expiry_on(control):
    control.principals.add("alice", [READ], created_by="tests")
    issued = control.principals.issue_token("alice", expires_at=NOW)
    assert control.principals.authenticate(issued.token, now=NOW - dt.timedelta(microseconds=1)).name == "alice"
    assert control.principals.authenticate(issued.token, now=NOW) is None
    assert control.principals.authenticate(issued.token) is None  # the real clock is past it too


def test_a_disabled_principal_authenticates_by_no_token_and_gets_none(control):
    control.principals.add("alice", [READ, APPROVE], os_user="ops01", created_by="tests")
    issued = control.principals.issue_token("alice")
    disabled = control.principals.disable("alice")
    assert disabled.disabled_at is not None
    assert control.principals.authenticate(issued.token) is None
    with pytest.raises(AccessError, match=r"^principal 'alice' is disabled: no token is issued$"):
        control.principals.issue_token("alice")
    # its operating-system account is nobody's now: a reader with nothing, not alice
    assert control.principals.of_os_user("ops01") == Principal("os:ops01", PERSON, (), "os-user ops01", "ops01", False)


def test_an_unconfigured_account_reads_and_does_nothing_else(control):
    reader = control.principals.of_os_user("nobody")
    assert reader == Principal("os:nobody", PERSON, (READ,), "os-user nobody", "nobody", configured=False)
    for scope, what in ((APPROVE, "approve"), (OPERATE, "retry the outbox")):
        with pytest.raises(
            AccessError, match=rf"^os:nobody may not {what}: it needs the '{scope}' scope \(it has: read\)$"
        ):
            reader.require(scope, what)
    reader.require(READ, "read")


def test_an_account_bound_to_a_principal_is_that_principal(control):
    control.principals.add("alice", [READ, APPROVE, OPERATE], os_user="ops01", created_by="tests")
    assert control.principals.of_os_user("ops01") == Principal(
        "alice", PERSON, (READ, APPROVE, OPERATE), "os-user ops01", "ops01"
    )
    with pytest.raises(AccessError, match=r"^'bob' is already configured as principal 'alice' \(or holds 'ops01'\)$"):
        control.principals.add("bob", [READ], os_user="ops01", created_by="tests")  # one account, one principal
    with pytest.raises(AccessError, match=r"^an agent principal is not bound to an operating-system account$"):
        control.principals.add("agent:var_risk", [READ], os_user="svc", created_by="tests")


def test_the_environment_names_the_caller_by_token_else_by_account(control):
    control.principals.add("alice", [READ, APPROVE], created_by="tests")
    issued = control.principals.issue_token("alice")
    by_token = control.principals.from_environment({TOKEN_ENV: f" {issued.token}\n"})
    assert (by_token.name, by_token.authenticated_by, by_token.os_user) == (
        "alice",
        f"token {issued.token_id}",
        os_account(),
    )
    by_account = control.principals.from_environment({})
    assert (by_account.name, by_account.scopes, by_account.configured) == (f"os:{os_account()}", (READ,), False)
    for bad in ("fey_nonsense", issued.token + "x"):
        with pytest.raises(AccessError, match=rf"^\${TOKEN_ENV} is not a valid token$"):
            control.principals.from_environment({TOKEN_ENV: bad})


def test_an_agent_principal_never_holds_approve(control):
    with pytest.raises(AccessError, match=r"^an agent principal never approves: it cannot hold the 'approve' scope$"):
        control.principals.add("Agent : Var_Risk", [READ, APPROVE], created_by="tests")
    agent = control.principals.add("Agent : Var_Risk", [READ, OPERATE], created_by="tests")
    assert (agent.name, agent.kind, agent.scopes) == ("agent:var_risk", AGENT, (READ, OPERATE))
    with pytest.raises(AccessError, match="never approves"):
        control.principals.grant("agent:var_risk", [APPROVE])
    assert control.principals.get("agent:var_risk").scopes == (READ, OPERATE)


def test_scopes_are_checked_and_granting_replaces_them(control):
    message = r"^unknown scope\(s\) admin, root: the scopes are read, approve, operate$"
    with pytest.raises(AccessError, match=message):
        control.principals.add("alice", [READ, "admin", "root"], created_by="tests")
    control.principals.add("alice", [READ], created_by="tests")
    issued = control.principals.issue_token("alice")
    assert control.principals.grant("alice", [APPROVE]).scopes == (APPROVE,)
    assert control.principals.authenticate(issued.token).scopes == (APPROVE,)  # the token reads them anew
    with pytest.raises(AccessError, match=r"^no principal 'bob'; `foureyes principals list` shows them$"):
        control.principals.grant("bob", [READ])


def test_principals_are_listed_by_name_with_their_tokens(control):
    control.principals.add("zoe", [READ], created_by="tests")
    control.principals.add("agent:toy", [READ], created_by="tests")
    control.principals.add("bob", [READ, APPROVE], os_user="bob01", created_by="tests")
    first = control.principals.issue_token("bob", expires_at=NOW)
    listed = control.principals.list()
    assert [(p.name, p.kind, p.os_user) for p in listed] == [
        ("agent:toy", AGENT, None),
        ("bob", PERSON, "bob01"),
        ("zoe", PERSON, None),
    ]
    assert [(t.token_id, t.expires_at) for t in listed[1].tokens] == [(first.token_id, NOW)]
    assert listed[1].to_json()["tokens"] == [
        {"token_id": first.token_id, "created_at": listed[1].tokens[0].created_at.isoformat(),
         "expires_at": NOW.isoformat(), "revoked_at": None}
    ]  # fmt: skip


def test_two_rows_for_one_identity_are_refused_by_the_table_itself(control):
    control.principals.add("alice", [READ], created_by="tests")
    row = {"kind": PERSON, "scopes": [READ], "created_at": NOW, "created_by": "sql"}
    with pytest.raises(sa.exc.IntegrityError), write_transaction(control.engine) as conn:
        conn.execute(principals.insert().values(name="ALICE", principal_key="alice", **row))
    assert [p.name for p in control.principals.list()] == ["alice"]
