"""The audit trail on real SQLite and PostgreSQL: append-only, hash-chained, redacted, never forked."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import sqlalchemy as sa

from foureyes.resources.control_plane.audit import GENESIS, OK, REFUSED, AuditEntry, canonical_json, digest
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.control_plane.schema import audit_log
from foureyes.resources.engine import write_transaction
from foureyes.resources.redaction import REDACTED

NOW = dt.datetime(2026, 11, 20, 18, 0, tzinfo=dt.UTC)


@pytest.fixture
def control(db_url: str) -> ControlPlaneResource:
    return ControlPlaneResource(url=db_url)


def _entry(tool: str = "status", principal: str = "alice", outcome: str = OK, **arguments) -> AuditEntry:
    return AuditEntry(principal, "token 1a2b3c4d5e6f", "cli", tool, arguments, outcome, at=NOW)


def _record(control: ControlPlaneResource, n: int) -> list[AuditEntry]:
    return [control.audit.record(_entry(f"tool{i}", n=i)) for i in range(n)]


def test_each_entry_is_chained_to_the_one_before(control):
    first, second, third = _record(control, 3)
    assert first.previous_hash == GENESIS
    assert (second.previous_hash, third.previous_hash) == (first.entry_hash, second.entry_hash)
    assert all(e.entry_hash == e.chained() for e in (first, second, third))
    assert control.audit.find() == [first, second, third]  # what is read back is what was recorded
    assert control.audit.verify() == []


def test_an_entry_reads_back_whole_with_a_digest_of_its_arguments(control):
    recorded = control.audit.record(
        _entry("approve", outcome=REFUSED, approval_id="ab12cd34", reason="ok", expected_digest=None)
    )
    (found,) = control.audit.find()
    assert found.to_json() == {
        "id": recorded.id,
        "at": NOW.isoformat(),
        "principal": "alice",
        "authenticated_by": "token 1a2b3c4d5e6f",
        "channel": "cli",
        "tool": "approve",
        "arguments": {"approval_id": "ab12cd34", "reason": "ok", "expected_digest": None},
        "arguments_digest": digest({"approval_id": "ab12cd34", "reason": "ok", "expected_digest": None}),
        "outcome": REFUSED,
        "detail": "",
        "entry_hash": recorded.entry_hash,
    }
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'


def test_secret_arguments_are_stored_redacted_and_digested_whole(control, db_url):
    control.audit.record(_entry("connect", api_key="sk-live-very-secret", password="hunter2!", name="desk"))
    (found,) = control.audit.find()
    assert found.arguments == {"api_key": REDACTED, "password": REDACTED, "name": "desk"}
    assert found.arguments_digest == digest({"api_key": "sk-live-very-secret", "password": "hunter2!", "name": "desk"})
    with control.engine.connect() as conn:
        stored = str(conn.execute(sa.select(audit_log)).all())
    assert "sk-live-very-secret" not in stored and "hunter2!" not in stored
    assert control.audit.verify() == []


def test_a_detail_is_scrubbed_and_bounded(control):
    control.audit.record(
        AuditEntry("bob", "os-user bob", "cli", "status", {}, "error", "postgresql://u:pw@db/x " + "x" * 5000)
    )
    (found,) = control.audit.find()
    assert "pw@" not in found.detail and len(found.detail) == 2000
    assert found.at is not None and found.at.tzinfo is not None


def test_an_edited_entry_is_found(control):
    entries = _record(control, 4)
    with write_transaction(control.engine) as conn:
        conn.execute(audit_log.update().where(audit_log.c.id == entries[1].id).values(detail="nothing happened"))
    assert control.audit.verify() == [f"entry {entries[1].id}: its content does not match its hash (it was edited)"]


@pytest.mark.parametrize(
    "column", ["principal", "outcome", "tool", "authenticated_by", "channel", "arguments_digest", "at"]
)
def test_an_edit_of_any_field_is_found(control, column):
    entries = _record(control, 3)
    value = NOW + dt.timedelta(seconds=1) if column == "at" else "forged"
    with write_transaction(control.engine) as conn:
        conn.execute(audit_log.update().where(audit_log.c.id == entries[1].id).values({column: value}))
    assert control.audit.verify() == [f"entry {entries[1].id}: its content does not match its hash (it was edited)"]


def test_edited_arguments_are_found(control):
    entries = _record(control, 3)
    with write_transaction(control.engine) as conn:
        conn.execute(audit_log.update().where(audit_log.c.id == entries[2].id).values(arguments={"n": 99}))
    assert control.audit.verify() == [f"entry {entries[2].id}: its content does not match its hash (it was edited)"]


def test_a_removed_entry_is_found(control):
    entries = _record(control, 4)
    with write_transaction(control.engine) as conn:
        conn.execute(audit_log.delete().where(audit_log.c.id == entries[1].id))
    assert control.audit.verify() == [f"entry {entries[2].id}: does not follow the entry before it (one was removed)"]


def test_an_entry_rehashed_after_an_edit_breaks_the_link_after_it(control):
    entries = _record(control, 3)
    forged = AuditEntry(**{**entries[1].__dict__, "outcome": REFUSED})
    forged_hash = forged.chained()
    with write_transaction(control.engine) as conn:
        conn.execute(
            audit_log.update().where(audit_log.c.id == entries[1].id).values(outcome=REFUSED, entry_hash=forged_hash)
        )
    assert control.audit.verify() == [f"entry {entries[2].id}: does not follow the entry before it (one was removed)"]


def test_find_filters_and_keeps_the_newest_oldest_first(control):
    for who, tool in [("alice", "status"), ("bob", "approve"), ("alice", "approve"), ("alice", "status")]:
        control.audit.record(_entry(tool, who))
    found = control.audit.find(principal="alice")
    assert [(e.principal, e.tool) for e in found] == [("alice", "status"), ("alice", "approve"), ("alice", "status")]
    assert [e.principal for e in control.audit.find(tool="approve")] == ["bob", "alice"]
    newest = control.audit.find(limit=2)
    assert [e.id for e in newest] == sorted(e.id for e in newest) and [e.tool for e in newest] == ["approve", "status"]
    assert control.audit.find(since=NOW + dt.timedelta(seconds=1)) == []
    assert len(control.audit.find(since=NOW)) == 4


def test_concurrent_appends_never_fork_the_chain(db_url):
    writers, each = 6, 5
    barrier = threading.Barrier(writers)
    failures = []

    def append(n: int) -> None:
        trail = ControlPlaneResource(url=db_url).audit
        barrier.wait()
        try:
            for i in range(each):
                trail.record(_entry(f"w{n}", n=n, i=i))
        except Exception as error:  # the test reports whatever broke
            failures.append(error)

    threads = [threading.Thread(target=append, args=(n,)) for n in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    control = ControlPlaneResource(url=db_url)
    assert failures == [] and len(control.audit.find()) == writers * each
    assert control.audit.verify() == []
    previous = {e.previous_hash for e in control.audit.find()}
    assert len(previous) == writers * each  # no two entries follow the same one
