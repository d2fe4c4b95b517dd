"""The outbox on its own: what each step of a delivery writes, what it reads back, and in which order.

Everything runs on the real control-plane store (SQLite and PostgreSQL); a test only ever sets a
row's timestamps by hand, to put an entry where a clock would have put it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
import sqlalchemy as sa

from foureyes.resources.control_plane.outbox import (
    CANCELLED,
    DELIVERED,
    DELIVERING,
    FAILED,
    IN_DOUBT,
    LEASE,
    QUEUED,
    OutboxEntry,
)
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.control_plane.schema import outbox as outbox_table
from foureyes.resources.engine import write_transaction
from foureyes.resources.errors import FoureyesError

T0 = dt.datetime(2026, 11, 20, 9, 30, tzinfo=dt.UTC)


@pytest.fixture
def control(db_url) -> ControlPlaneResource:
    return ControlPlaneResource(url=db_url)


def _entry(key: str = "k1", *, agent: str = "toy", partition: str = "d1", proposal: str = "A") -> OutboxEntry:
    return OutboxEntry(
        idempotency_key=key,
        agent=agent,
        partition=partition,
        proposal_id=proposal,
        proposals_version="v1",
        action="buy",
        target="books",
        payload={"portfolio_id": "P1", "qty": 3},
        rationale="momentum",
    )


def _enqueue(control: ControlPlaneResource, *entries: OutboxEntry) -> int:
    with write_transaction(control.engine) as conn:
        return control.outbox.enqueue(conn, entries)


def _set(control: ControlPlaneResource, key: str, **values) -> None:
    with write_transaction(control.engine) as conn:
        conn.execute(sa.update(outbox_table).where(outbox_table.c.idempotency_key == key).values(**values))


def test_enqueue_counts_only_the_entries_it_newly_queued(control):
    with write_transaction(control.engine) as conn:
        assert control.outbox.enqueue(conn, []) == 0
    assert _enqueue(control, _entry("k1"), _entry("k2"), _entry("k1")) == 2
    assert _enqueue(control, _entry("k2"), _entry("k3")) == 1


def test_a_queued_entry_reads_back_whole(control):
    before = dt.datetime.now(dt.UTC)
    _enqueue(control, _entry())
    entry = control.outbox.get("k1")
    assert (entry.agent, entry.partition, entry.proposal_id, entry.proposals_version) == ("toy", "d1", "A", "v1")
    assert (entry.action, entry.target, entry.payload, entry.rationale) == (
        "buy",
        "books",
        {"portfolio_id": "P1", "qty": 3},
        "momentum",
    )
    assert (entry.status, entry.attempts, entry.last_error, entry.run_id) == (QUEUED, 0, None, None)
    assert entry.created_at == entry.next_attempt_at and before <= entry.created_at <= dt.datetime.now(dt.UTC)
    assert entry.created_at.tzinfo is not None and entry.delivered_at is None and entry.lease_until is None


def test_an_unknown_key_is_not_found(control):
    assert control.outbox.lookup("nope") is None
    with pytest.raises(
        FoureyesError, match=r"^no outbox entry 'nope'; `foureyes outbox list --status all` shows them$"
    ):
        control.outbox.get("nope")


def test_a_lease_records_the_run_that_took_it_and_holds_for_the_lease_time(control):
    _enqueue(control, _entry())
    now = control.outbox.get("k1").next_attempt_at
    assert control.outbox.lease("k1", "run-7", now=now)
    leased = control.outbox.get("k1")
    assert (leased.status, leased.run_id, leased.lease_until) == (DELIVERING, "run-7", now + LEASE)


def test_force_leases_an_entry_before_it_is_due_and_nothing_else_does(control):
    _enqueue(control, _entry())
    _set(control, "k1", next_attempt_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    assert not control.outbox.lease("k1", "run-1")
    assert not control.outbox.lease("k1", "run-1", reclaim=True)
    assert control.outbox.lease("k1", "run-1", force=True)


@pytest.mark.parametrize("status", [DELIVERED, FAILED, CANCELLED, IN_DOUBT])
def test_reclaiming_takes_only_an_interrupted_delivery_never_a_settled_entry(control, status):
    _enqueue(control, _entry())
    _set(control, "k1", status=status, lease_until=T0)  # a lease left behind on a settled row
    assert not control.outbox.lease("k1", "run-2", reclaim=True)
    assert control.outbox.get("k1").status == status


def test_an_entry_is_interrupted_only_once_its_delivery_lease_has_run_out():
    leased = replace(_entry(), status=DELIVERING, lease_until=T0)
    assert not leased.interrupted(T0 - dt.timedelta(microseconds=1))
    assert not leased.interrupted(T0)
    assert leased.interrupted(T0 + dt.timedelta(microseconds=1))
    assert leased.interrupted()  # its lease ended long ago
    assert not replace(leased, status=QUEUED).interrupted()
    assert not replace(leased, lease_until=None).interrupted()


def test_a_delivery_writes_its_receipt_and_clears_the_lease_and_the_last_error(control):
    _enqueue(control, _entry("k1"), _entry("k2", proposal="B"))
    assert control.outbox.lease("k1", "run-1")
    control.outbox.retry_later("k1", "down")
    control.outbox.lease("k1", "run-2", force=True)
    entry = control.outbox.get("k1")
    control.outbox.delivered(entry, "run-2", {"ref": "ORD-1"})
    delivered = control.outbox.get("k1")
    assert (delivered.status, delivered.attempts, delivered.lease_until, delivered.last_error) == (
        DELIVERED,
        2,
        None,
        None,
    )
    receipt = control.receipts.get("k1")
    assert (receipt.agent, receipt.partition, receipt.proposal_id, receipt.action, receipt.target) == (
        "toy",
        "d1",
        "A",
        "buy",
        "books",
    )
    assert (receipt.status, receipt.attempts, receipt.run_id, receipt.detail) == (
        "executed",
        2,
        "run-2",
        {"ref": "ORD-1"},
    )
    assert receipt.executed_at == delivered.delivered_at and receipt.executed_at is not None
    assert delivered.to_json()["delivered_at"] == delivered.delivered_at.isoformat()


def test_every_delivered_entry_gets_its_own_receipt_and_a_repeated_confirmation_keeps_the_first(control):
    _enqueue(control, _entry("k1"), _entry("k2", proposal="B"))
    control.outbox.delivered(control.outbox.get("k1"), "run-1", {"ref": "ORD-1"})
    control.outbox.delivered(control.outbox.get("k2"), "run-1", {"ref": "ORD-2"})
    assert control.receipts.get("k2").detail == {"ref": "ORD-2"}
    control.outbox.delivered(control.outbox.get("k1"), "run-9", {"ref": "ORD-1b"})  # confirmed again: one receipt
    assert [(r.idempotency_key, r.run_id, r.detail) for r in control.receipts.for_partition("toy", "d1")] == [
        ("k1", "run-1", {"ref": "ORD-1"}),
        ("k2", "run-1", {"ref": "ORD-2"}),
    ]
    assert control.outbox.get("k1").attempts == 2


def test_retry_later_backs_off_from_thirty_seconds_and_doubles(control):
    _enqueue(control, _entry())
    for attempt, wait in ((1, 30), (2, 60), (3, 120)):
        control.outbox.lease("k1", f"run-{attempt}", force=True)
        before = dt.datetime.now(dt.UTC)
        retried = control.outbox.retry_later("k1", f"down #{attempt}")
        after = dt.datetime.now(dt.UTC)
        assert (retried.status, retried.attempts, retried.last_error, retried.lease_until) == (
            QUEUED,
            attempt,
            f"down #{attempt}",
            None,
        )
        assert before + dt.timedelta(seconds=wait) <= retried.next_attempt_at <= after + dt.timedelta(seconds=wait)


@pytest.mark.parametrize("how", ["retry_later", "fail", "cancel", "in_doubt"])
def test_an_error_is_stored_scrubbed_and_cut_to_2000_characters(control, how):
    _enqueue(control, _entry())
    getattr(control.outbox, how)("k1", "x" * 2500)
    assert control.outbox.get("k1").last_error == "x" * 2000


def test_settling_an_entry_records_why_clears_its_lease_and_counts_only_a_refusal_as_an_attempt(control):
    _enqueue(control, _entry("k1"), _entry("k2", proposal="B"), _entry("k3", proposal="C"))
    for key in ("k1", "k2", "k3"):
        assert control.outbox.lease(key, "run-1")
    failed = control.outbox.fail("k1", "422: over the limit")
    cancelled = control.outbox.cancel("k2", "superseded")
    doubtful = control.outbox.in_doubt("k3", "timed out after sending")
    assert [(e.status, e.last_error, e.attempts, e.lease_until) for e in (failed, cancelled, doubtful)] == [
        (FAILED, "422: over the limit", 1, None),
        (CANCELLED, "superseded", 0, None),
        (IN_DOUBT, "timed out after sending", 0, None),
    ]
    assert control.outbox.get("k3") == doubtful


def test_retry_now_makes_a_backed_off_entry_due_at_once(control):
    _enqueue(control, _entry())
    control.outbox.lease("k1", "run-1")
    control.outbox.retry_later("k1", "down")
    assert not control.outbox.lease("k1", "run-2")
    assert control.outbox.retry_now() == 1
    assert control.outbox.get("k1").next_attempt_at <= dt.datetime.now(dt.UTC)
    assert control.outbox.lease("k1", "run-2")


def test_find_filters_by_status_agent_partition_and_due_time(control):
    _enqueue(
        control,
        _entry("k1"),
        _entry("k2", agent="other"),
        _entry("k3", partition="d2"),
        _entry("k4", proposal="B"),
    )
    for key, due in (("k1", T0), ("k2", T0), ("k3", T0), ("k4", T0 + dt.timedelta(seconds=1))):
        _set(control, key, next_attempt_at=due)
    control.outbox.cancel("k4", "superseded")

    def keys(**filters) -> list[str]:
        return [e.idempotency_key for e in control.outbox.find(**filters)]

    assert keys() == ["k1", "k2", "k3", "k4"]
    assert keys(status=QUEUED) == ["k1", "k2", "k3"]
    assert keys(status=CANCELLED) == ["k4"]
    assert keys(agent="toy") == ["k1", "k3", "k4"]
    assert keys(partition="d1") == ["k1", "k2", "k4"]
    assert keys(agent="toy", partition="d1") == ["k1", "k4"]
    assert keys(due_by=T0) == ["k1", "k2", "k3"]  # due exactly then: included
    assert keys(due_by=T0 - dt.timedelta(microseconds=1)) == []
    assert keys(due_by=T0 + dt.timedelta(seconds=1)) == ["k1", "k2", "k3", "k4"]


def test_find_lists_entries_oldest_first_then_by_key(control):
    _enqueue(control, _entry("c"), _entry("b"), _entry("a"), _entry("d"))
    for key, created in (
        ("c", T0),
        ("d", T0),
        ("a", T0 + dt.timedelta(seconds=1)),
        ("b", T0 + dt.timedelta(seconds=2)),
    ):
        _set(control, key, created_at=created)
    assert [e.idempotency_key for e in control.outbox.find()] == ["c", "d", "a", "b"]


def test_an_entry_not_yet_queued_reads_as_json_without_times():
    assert _entry().to_json() == {
        "idempotency_key": "k1",
        "agent": "toy",
        "partition": "d1",
        "proposal_id": "A",
        "action": "buy",
        "target": "books",
        "status": QUEUED,
        "attempts": 0,
        "next_attempt_at": None,
        "last_error": None,
        "delivered_at": None,
    }


def test_an_entry_reads_as_json_with_its_times_in_iso_format(control):
    _enqueue(control, _entry())
    queued = control.outbox.get("k1")
    assert queued.to_json() == {
        "idempotency_key": "k1",
        "agent": "toy",
        "partition": "d1",
        "proposal_id": "A",
        "action": "buy",
        "target": "books",
        "status": QUEUED,
        "attempts": 0,
        "next_attempt_at": queued.next_attempt_at.isoformat(),
        "last_error": None,
        "delivered_at": None,
    }
    _set(
        control,
        "k1",
        next_attempt_at=T0,
        delivered_at=T0 + dt.timedelta(minutes=1),
        last_error="late",
        status=DELIVERED,
    )
    done = control.outbox.get("k1").to_json()
    assert (done["next_attempt_at"], done["delivered_at"], done["last_error"], done["status"]) == (
        "2026-11-20T09:30:00+00:00",
        "2026-11-20T09:31:00+00:00",
        "late",
        DELIVERED,
    )


def _approved_again(entry: OutboxEntry) -> OutboxEntry:
    """The same action (same key), approved by a newer proposals version with other arguments."""
    return replace(entry, proposals_version="v2", payload={"portfolio_id": "P1", "qty": 5}, rationale="re-run")


def test_an_action_cancelled_as_superseded_and_approved_again_is_queued_again_with_the_new_arguments(control):
    _enqueue(control, _entry())
    control.outbox.cancel("k1", "superseded by proposals version v2")
    assert _enqueue(control, _approved_again(_entry())) == 1
    entry = control.outbox.get("k1")
    assert (entry.status, entry.proposals_version, entry.payload["qty"], entry.attempts) == (QUEUED, "v2", 5, 0)
    assert (entry.last_error, entry.lease_until, entry.rationale) == (None, None, "re-run")


def test_an_action_still_queued_by_an_older_version_takes_the_version_approving_it_now(control):
    _enqueue(control, _entry())
    _set(control, "k1", attempts=2, last_error="503", next_attempt_at=T0 + dt.timedelta(hours=1))
    assert _enqueue(control, _approved_again(_entry())) == 1  # else the executor would cancel it as v1's
    entry = control.outbox.get("k1")
    assert (entry.status, entry.proposals_version, entry.payload["qty"]) == (QUEUED, "v2", 5)


@pytest.mark.parametrize("status", [DELIVERING, DELIVERED, IN_DOUBT, FAILED])
def test_an_action_in_flight_or_settled_is_never_queued_again(control, status):
    _enqueue(control, _entry())
    _set(control, "k1", status=status, attempts=1, lease_until=T0)
    assert _enqueue(control, _approved_again(_entry())) == 0
    entry = control.outbox.get("k1")
    assert (entry.status, entry.proposals_version, entry.payload["qty"], entry.attempts) == (status, "v1", 3, 1)


def test_a_supervision_queues_more_actions_than_one_statement_holds(control):
    keys = [f"k{i:05d}" for i in range(1234)]
    assert _enqueue(control, *(_entry(key, proposal=key) for key in keys)) == len(keys)
    assert [e.idempotency_key for e in control.outbox.find(status=QUEUED)] == sorted(keys)
