"""Decision log and receipts on real SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import sqlalchemy as sa

from foureyes.resources.control_plane import schema as control_schema
from foureyes.resources.control_plane.decisions import APPROVED, REJECTED, Decision, Reason, SupervisionRecord
from foureyes.resources.control_plane.outbox import CANCELLED, DELIVERED, FAILED, IN_DOUBT, QUEUED, OutboxEntry, backoff
from foureyes.resources.control_plane.receipts import EXECUTED, idempotency_key
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.engine import dispose_all, engine_for, write_transaction
from foureyes.resources.errors import ControlPlaneError


def _decision(supervision: str, proposal: str, verdict: str, version: str = "v1") -> Decision:
    return Decision(
        agent="var_risk",
        partition="2026-11-20",
        proposal_id=proposal,
        proposals_version=version,
        supervision_id=supervision,
        action="escalate",
        proposal={"portfolio_id": proposal, "x": 1.5},
        rationale="because",
        confidence=0.9,
        verdict=verdict,
        reasons=(Reason("r1", "error", "too big"),) if verdict == REJECTED else (),
    )


def _supervision(supervision: str, version: str = "v1", blocked: bool = False) -> SupervisionRecord:
    return SupervisionRecord(
        supervision, "var_risk", "2026-11-20", version, blocked, "why" if blocked else "", {"n": 2}
    )


def test_latest_supervision_of_the_exact_version_wins(db_url):
    log = ControlPlaneResource(url=db_url).decision_log
    log.record([_decision("s1", "A", REJECTED), _decision("s1", "B", APPROVED)], supervision=_supervision("s1"))
    log.record([_decision("s2", "A", APPROVED), _decision("s2", "B", APPROVED)], supervision=_supervision("s2"))
    log.record([_decision("s3", "A", REJECTED, version="v2")], supervision=_supervision("s3", "v2", blocked=True))
    latest = log.supervision("var_risk", "2026-11-20", "v1")
    assert latest.supervision_id == "s2" and not latest.blocked and latest.counts == {"n": 2}
    decisions = log.of_supervision(latest.supervision_id)
    assert [(d.proposal_id, d.verdict) for d in decisions] == [("A", APPROVED), ("B", APPROVED)]
    assert log.supervision("var_risk", "2026-11-20", "v3") is None
    assert log.supervision("var_risk", "2026-11-20", "v2").blocked
    assert [s.supervision_id for s in log.latest_supervisions("var_risk")] == ["s3", "s2", "s1"]
    history = log.for_partition("var_risk", "2026-11-20")
    assert len(history) == 5
    assert history[0].reasons == (Reason("r1", "error", "too big"),)
    assert history[0].proposal == {"portfolio_id": "A", "x": 1.5}
    assert history[0].decided_at.tzinfo is not None


def test_a_crash_while_recording_a_supervision_leaves_none_of_it(db_url, monkeypatch):
    log = ControlPlaneResource(url=db_url).decision_log

    def crash(self, conn, actions):  # the last write of the transaction: the outbox entries
        raise OSError("disk full")

    monkeypatch.setattr("foureyes.resources.control_plane.decisions.Outbox.enqueue", crash)
    with pytest.raises(OSError, match="disk full"):
        log.record([_decision("s1", "A", APPROVED)], supervision=_supervision("s1"))
    assert log.supervision("var_risk", "2026-11-20", "v1") is None
    assert log.of_supervision("s1") == []
    monkeypatch.undo()
    log.record([_decision("s1", "A", APPROVED)], supervision=_supervision("s1"))  # the retry records it whole
    assert [d.proposal_id for d in log.of_supervision("s1")] == ["A"]


def test_a_decision_needs_a_known_verdict():
    with pytest.raises(ValueError, match="verdict 'maybe' is not one of"):
        _decision("s", "A", "maybe")


def _queue(control: ControlPlaneResource, key: str = "k1") -> OutboxEntry:
    entry = OutboxEntry(
        idempotency_key=key,
        agent="var_risk",
        partition="p",
        proposal_id="A",
        proposals_version="v1",
        action="escalate",
        target="books",
        payload={"portfolio_id": "A"},
        rationale="because",
    )
    with write_transaction(control.engine) as conn:
        control.outbox.enqueue(conn, [entry, entry])  # twice: queued once
    return control.outbox.get(key)


def test_a_delivered_action_gets_one_receipt_and_is_never_leased_again(db_url):
    control = ControlPlaneResource(url=db_url)
    entry = _queue(control)
    assert entry.status == QUEUED and entry.attempts == 0
    assert control.outbox.lease("k1", "run-1")
    control.outbox.delivered(entry, "run-1", {"ok": True})
    assert not control.outbox.lease("k1", "run-2", force=True)
    receipt = control.receipts.get("k1")
    assert receipt.status == EXECUTED and receipt.run_id == "run-1" and receipt.detail == {"ok": True}
    assert control.outbox.get("k1").status == DELIVERED
    _queue(control)  # the same verdict written again (a re-supervision) does not re-queue it
    assert control.outbox.get("k1").status == DELIVERED


def test_a_lease_keeps_other_runs_out_until_it_ends(db_url):
    control = ControlPlaneResource(url=db_url)
    _queue(control)
    assert control.outbox.lease("k1", "run-1")
    assert not control.outbox.lease("k1", "run-2")
    ends = control.outbox.get("k1").lease_until
    assert not control.outbox.lease("k1", "run-2", now=ends, reclaim=True)  # at its end exactly: still held
    after = ends + dt.timedelta(microseconds=1)
    assert control.outbox.get("k1").interrupted(after)
    assert not control.outbox.lease("k1", "run-2", now=after)  # run-1 crashed mid-delivery: may have arrived
    assert control.outbox.lease("k1", "run-2", now=after, reclaim=True)  # a deduplicating target: resent


def test_transient_failures_back_off_and_refusals_wait_for_a_human(db_url):
    control = ControlPlaneResource(url=db_url)
    _queue(control)
    control.outbox.lease("k1", "run-1")
    retried = control.outbox.retry_later("k1", "tool server down")
    assert retried.status == QUEUED and retried.attempts == 1 and retried.last_error == "tool server down"
    assert retried.next_attempt_at > dt.datetime.now(dt.UTC) + dt.timedelta(seconds=20)
    assert not control.outbox.lease("k1", "run-2")  # not due yet
    assert [backoff(n).total_seconds() for n in (1, 2, 3, 20)] == [30, 60, 120, 3600]
    control.outbox.lease("k1", "run-2", force=True)
    failed = control.outbox.fail("k1", "422: unknown instrument")
    assert failed.status == FAILED and failed.attempts == 2
    assert control.outbox.retry_now(["k1"]) == 1
    assert control.outbox.get("k1").status == QUEUED
    assert control.outbox.cancel("k1", "superseded").status == CANCELLED
    assert not control.outbox.lease("k1", "run-3", force=True)


def test_an_action_in_doubt_is_sent_again_only_when_a_human_names_it(db_url):
    control = ControlPlaneResource(url=db_url)
    _queue(control)
    assert control.outbox.lease("k1", "run-1")
    doubtful = control.outbox.in_doubt("k1", "timed out after sending")
    assert doubtful.status == IN_DOUBT and doubtful.attempts == 0
    assert not control.outbox.lease("k1", "run-2", force=True, reclaim=True)
    assert control.outbox.retry_now() == 0  # "retry everything" leaves it alone
    assert control.outbox.get("k1").status == IN_DOUBT
    assert control.outbox.retry_now(["k1"]) == 1  # named by the operator
    assert control.outbox.lease("k1", "run-3")


def test_concurrent_deliveries_of_one_action_let_exactly_one_run_send_it(db_url):
    control = ControlPlaneResource(url=db_url)
    _queue(control, key="shared")
    results = []
    barrier = threading.Barrier(8)

    def lease(run: str) -> None:
        barrier.wait()
        results.append(ControlPlaneResource(url=db_url).outbox.lease("shared", run))

    threads = [threading.Thread(target=lease, args=(f"run-{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]


def test_idempotency_keys_are_stable_and_distinct():
    assert idempotency_key("a", "p", "x", "escalate") == idempotency_key("a", "p", "x", "escalate")
    assert idempotency_key("a", "p", "x", "escalate") != idempotency_key("a", "p", "x", "reduce_exposure")


def test_a_store_of_another_schema_version_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path}/control.db"
    ControlPlaneResource(url=url).decision_log.record([])  # creates the schema
    with engine_for(url).begin() as conn:
        conn.execute(sa.update(control_schema.meta).values(value="0"))
    dispose_all()
    import foureyes.resources.control_plane.resource as module

    module._ready.clear()
    with pytest.raises(ControlPlaneError, match="has schema version 0, this foureyes expects"):
        ControlPlaneResource(url=url).decision_log.record([])
