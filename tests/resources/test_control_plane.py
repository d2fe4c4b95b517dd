"""Decision log and receipts on real SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
import sqlalchemy as sa

from resources import control_schema
from resources.control_plane import ControlPlaneResource
from resources.decision_log import APPROVED, REJECTED, Decision, Reason, SupervisionRecord
from resources.engine import dispose_all, engine_for
from resources.errors import ControlPlaneError
from resources.receipts import EXECUTED, ReceiptBook, idempotency_key


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
    log.record(
        [_decision("s1", "A", REJECTED), _decision("s1", "B", APPROVED)], supervision=_supervision("s1")
    )
    log.record(
        [_decision("s2", "A", APPROVED), _decision("s2", "B", APPROVED)], supervision=_supervision("s2")
    )
    log.record(
        [_decision("s3", "A", REJECTED, version="v2")], supervision=_supervision("s3", "v2", blocked=True)
    )
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


def test_a_decision_needs_a_known_verdict():
    with pytest.raises(ValueError, match="verdict 'maybe' is not one of"):
        _decision("s", "A", "maybe")


def _claim(book: ReceiptBook, run: str, key: str = "k1"):
    return book.claim(
        key=key,
        agent="var_risk",
        partition="p",
        proposal_id="A",
        action="escalate",
        target="books",
        run_id=run,
    )


def test_an_executed_action_is_never_claimed_again(db_url):
    book = ControlPlaneResource(url=db_url).receipts
    first = _claim(book, "run-1")
    assert first.may_execute and first.why == "new"
    book.confirm("k1", {"ok": True})
    again = _claim(book, "run-2")
    assert not again.may_execute and again.why.startswith("already executed")
    assert book.get("k1").status == EXECUTED and book.get("k1").attempts == 1


def test_a_live_claim_of_another_run_is_left_alone_until_its_lease_ends(db_url):
    engine = ControlPlaneResource(url=db_url).engine
    assert _claim(ReceiptBook(engine), "run-1").may_execute
    busy = _claim(ReceiptBook(engine), "run-2")
    assert not busy.may_execute and busy.why == "in progress in run run-1"
    expired = _claim(ReceiptBook(engine, lease=dt.timedelta(0)), "run-2")
    assert expired.may_execute and expired.why == "retry after claimed" and expired.receipt.attempts == 2


def test_a_failed_action_may_be_retried(db_url):
    book = ControlPlaneResource(url=db_url).receipts
    _claim(book, "run-1")
    book.fail("k1", {"error": "down"})
    retry = _claim(book, "run-2")
    assert retry.may_execute and retry.why == "retry after failed"


def test_concurrent_claims_of_one_key_let_exactly_one_run_execute(db_url):
    engine = ControlPlaneResource(url=db_url).engine
    results = []
    barrier = threading.Barrier(8)

    def claim(run: str) -> None:
        barrier.wait()
        results.append(_claim(ReceiptBook(engine), run, key="shared").may_execute)

    threads = [threading.Thread(target=claim, args=(f"run-{i}",)) for i in range(8)]
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
    import resources.control_plane as module

    module._ready.clear()
    with pytest.raises(ControlPlaneError, match="has schema version 0, this foureyes expects"):
        ControlPlaneResource(url=url).decision_log.record([])
