"""Four eyes on real SQLite and PostgreSQL: who may approve, how many, and until when."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import threading
import time

import pytest
import sqlalchemy as sa

from foureyes.resources.control_plane.approvals import (
    APPROVED,
    EXPIRED,
    PENDING,
    REJECTED,
    ApprovalRequest,
    approval_id,
)
from foureyes.resources.control_plane.decisions import SupervisionRecord
from foureyes.resources.control_plane.principals import SYSTEM, ApprovalError
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.control_plane.schema import approval_votes, approvals
from foureyes.resources.engine import write_transaction

NOW = dt.datetime(2026, 11, 20, 18, 0, tzinfo=dt.UTC)
TICK = dt.timedelta(microseconds=1)


def _open(
    url: str,
    proposal: str,
    required: int,
    hours: float = 8,
    proposer: str = "agent:margin_calls",
    agent: str = "margin_calls",
    partition: str = "2026-11-20",
    version: str = "v1",
    **fields,
) -> tuple[ControlPlaneResource, str]:
    control = ControlPlaneResource(url=url)
    request = _request(proposal, required, hours, proposer, agent, partition, version, **fields)
    supervision = SupervisionRecord("s-" + request.approval_id, agent, partition, version, False, "", {"pending": 1})
    control.decision_log.record([], supervision=supervision, approvals=[request, request])  # twice: kept once
    return control, request.approval_id


def _request(
    proposal: str,
    required: int = 1,
    hours: float = 8,
    proposer: str = "agent:margin_calls",
    agent: str = "margin_calls",
    partition: str = "2026-11-20",
    version: str = "v1",
    **fields,
) -> ApprovalRequest:
    return ApprovalRequest(
        agent=agent,
        partition=partition,
        proposal_id=proposal,
        proposals_version=version,
        policy="large_margin_call",
        required=required,
        proposer=proposer,
        summary=f"call for {proposal}",
        expires_at=NOW + dt.timedelta(hours=hours),
        **fields,
    )


def _approve(control: ControlPlaneResource, approval: str, by: str, **kwargs):
    return control.approvals.decide(approval, by=by, decision="approve", reason="checked", now=NOW, **kwargs)


def test_one_approval_settles_a_single_approver_request(db_url):
    control, approval = _open(db_url, "P1", required=1)
    decided = _approve(control, approval, "alice", os_user="ops01")
    assert decided.status == APPROVED and decided.approvers == ["alice"]
    assert [(v.approver, v.reason, v.os_user) for v in decided.votes] == [("alice", "checked", "ops01")]
    with pytest.raises(ApprovalError, match=r"is already approved \(decided 2026-11-20 18:00Z\)"):
        control.approvals.decide(approval, by="bob", decision="reject", reason="late", now=NOW)


def test_four_eyes_needs_two_distinct_approvers(db_url):
    control, approval = _open(db_url, "P2", required=2)
    first = _approve(control, approval, "alice")
    assert first.status == PENDING and first.approvers == ["alice"]
    with pytest.raises(ApprovalError, match=r"alice already voted on approval .*; a second approver must differ"):
        _approve(control, approval, "alice")
    second = _approve(control, approval, "bob")
    assert second.status == APPROVED and second.approvers == ["alice", "bob"]


SAME_PERSON = [
    "Alice",
    "ALICE",
    " alice ",
    "alice\t",
    "al ice",
    "a.lice",
    "a-lice",
    "ａｌｉｃｅ",  # full-width
    "ÁLICE",  # accented
    "alice\u00a0",  # no-break space
    "a_l_i_c_e",
    "ALİCE",  # Turkish dotted capital I
]


@pytest.mark.parametrize("spelling", SAME_PERSON)
def test_one_person_in_another_spelling_is_not_a_second_approver(db_url, spelling):
    control, approval = _open(db_url, "P8", required=2)
    _approve(control, approval, "alice")
    with pytest.raises(ApprovalError, match="already voted on approval"):
        _approve(control, approval, spelling)
    assert control.approvals.get(approval).status == PENDING


AGENT_SPELLINGS = [
    "agent:margin_calls",
    "Agent:Margin_Calls",
    " AGENT : margin_calls ",
    "agent:margin calls",
    "ａｇｅｎｔ：ｍａｒｇｉｎ＿ｃａｌｌｓ",
    "margin_calls",  # the bare name
    "MARGIN-CALLS",
    "Margin Calls",
    "margin.calls",
    "agent margin_calls",  # no colon: not an agent: prefix, still the agent principal
    "Agent.Margin-Calls",
    "agent:var_risk",  # any agent principal, not only the proposer
    "agent:someone_else",
    "var_risk",  # the bare name of another agent the store knows
]


@pytest.mark.parametrize("spelling", AGENT_SPELLINGS)
def test_an_agent_in_any_spelling_can_never_vote(db_url, spelling):
    _open(db_url, "P0", required=1, agent="var_risk", proposer="agent:var_risk")  # the store knows var_risk
    control, approval = _open(db_url, "P9", required=1)
    for decision in ("approve", "reject"):
        with pytest.raises(ApprovalError, match="is an agent principal: agents never approve or reject"):
            control.approvals.decide(approval, by=spelling, decision=decision, reason="me", now=NOW)
    assert control.approvals.get(approval).status == PENDING and not control.approvals.get(approval).votes


@pytest.mark.parametrize("spelling", ["alice", "Alice", " ALICE", "ａｌｉｃｅ"])
def test_a_person_who_proposed_cannot_approve(db_url, spelling):
    control, approval = _open(db_url, "P10", required=1, proposer="Alice")
    with pytest.raises(ApprovalError, match="proposed this action and cannot approve or reject it"):
        _approve(control, approval, spelling)


def test_one_rejection_is_final(db_url):
    control, approval = _open(db_url, "P3", required=2)
    _approve(control, approval, "alice")
    rejected = control.approvals.decide(approval, by="bob", decision="reject", reason="disputed MTM", now=NOW)
    assert rejected.status == REJECTED


def test_undecided_approvals_expire_to_rejected_and_say_so(db_url):
    control, approval = _open(db_url, "P4", required=1, hours=1)
    late = NOW + dt.timedelta(hours=2)
    with pytest.raises(ApprovalError, match="expired at 2026-11-20 19:00Z: rejected by default"):
        control.approvals.decide(approval, by="alice", decision="approve", reason="sorry", now=late)
    expired = control.approvals.get(approval)
    assert expired.status == EXPIRED
    assert [(v.approver, v.decision) for v in expired.votes] == [(SYSTEM, "reject")]
    assert "expired undecided" in expired.votes[0].reason


def test_a_vote_at_the_deadline_is_too_late_and_one_just_before_counts(db_url):
    control, late = _open(db_url, "P11", required=1, hours=1)
    deadline = NOW + dt.timedelta(hours=1)
    with pytest.raises(ApprovalError, match="expired at"):
        control.approvals.decide(late, by="alice", decision="approve", reason="at the bell", now=deadline)
    _, in_time = _open(db_url, "P12", required=1, hours=1)
    decided = control.approvals.decide(in_time, by="alice", decision="approve", reason="just in", now=deadline - TICK)
    assert decided.status == APPROVED


def test_the_sweep_expires_only_overdue_ones(db_url):
    control, soon = _open(db_url, "P5", required=1, hours=1)
    _, later = _open(db_url, "P6", required=1, hours=10)
    deadline = NOW + dt.timedelta(hours=1)
    assert control.approvals.expire_overdue(deadline - TICK) == []  # a microsecond early: nothing
    swept = control.approvals.expire_overdue(deadline)  # at the deadline exactly: expired
    assert [a.approval_id for a in swept] == [soon] and swept[0].status == EXPIRED
    assert control.approvals.get(later).status == PENDING
    assert [a.approval_id for a in control.approvals.decided_after(0)] == [soon]


@pytest.mark.parametrize(
    ("approval", "kwargs", "match"),
    [
        ("abc", {}, "too short: give at least 6 characters"),
        ("ffffffffff", {}, "no approval 'ffffffffff'; `foureyes approvals list` shows the pending ones"),
        (None, {"by": " "}, "an approver must be named"),
        (None, {"by": "..."}, "an approver must be named"),
        (None, {"by": "system"}, "is reserved for decisions foureyes records itself"),
        (None, {"by": "SYSTEM "}, "is reserved for decisions foureyes records itself"),
        (None, {"reason": ""}, "^a reason is required for every approval decision$"),
        (None, {"reason": "   "}, "^a reason is required for every approval decision$"),
        (None, {"decision": "maybe"}, "decision 'maybe' is not one of 'approve', 'reject'"),
    ],
)
def test_bad_decisions_are_refused_with_the_reason(db_url, approval, kwargs, match):
    control, opened = _open(db_url, "P7", required=1)
    args = {"by": "alice", "decision": "approve", "reason": "ok", "now": NOW, **kwargs}
    with pytest.raises(ApprovalError, match=match):
        control.approvals.decide(approval or opened[:8], **args)
    assert control.approvals.get(opened).status == PENDING


@pytest.fixture
def tokyo_clock(monkeypatch):
    """The machine's local time zone is nine hours ahead of UTC while the test runs."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _stored(control: ControlPlaneResource, query: sa.Select) -> list[sa.Row]:
    with control.engine.connect() as conn:
        return conn.execute(query).all()


def test_an_approval_id_is_16_hex_digits_of_agent_partition_proposal_and_version():
    assert approval_id("a", "b", "c", "d") == "b54856b7a8705958"
    assert approval_id("a", "b", "c", "d") == hashlib.sha256(b"a|b|c|d").hexdigest()[:16]


def test_an_approval_reads_back_as_it_was_requested_with_a_utc_request_time(db_url, tokyo_clock):
    before = dt.datetime.now(dt.UTC)
    control, approval = _open(
        db_url, "P20", required=2, action="margin_call", target="collateral_desk", run_id="run-20"
    )
    after = dt.datetime.now(dt.UTC)
    got = control.approvals.get(approval)
    assert (got.approval_id, got.agent, got.partition, got.proposal_id, got.proposals_version) == (
        approval,
        "margin_calls",
        "2026-11-20",
        "P20",
        "v1",
    )
    assert (got.policy, got.required, got.proposer, got.summary, got.status) == (
        "large_margin_call",
        2,
        "agent:margin_calls",
        "call for P20",
        PENDING,
    )
    assert got.action == "margin_call" and got.decided_at is None and got.votes == ()
    assert before <= got.requested_at <= after and got.requested_at.tzinfo is not None
    assert got.expires_at == NOW + dt.timedelta(hours=8)
    assert _stored(control, sa.select(approvals.c.run_id, approvals.c.target)) == [("run-20", "collateral_desk")]


def test_the_json_record_of_an_approval_names_every_vote(db_url):
    control, approval = _open(db_url, "P21", required=2)
    decided = _approve(control, approval, "alice", os_user="ops01")
    assert decided.to_json() == {
        "approval_id": approval,
        "agent": "margin_calls",
        "partition": "2026-11-20",
        "proposal_id": "P21",
        "summary": "call for P21",
        "policy": "large_margin_call",
        "status": PENDING,
        "required": 2,
        "approvers": ["alice"],
        "proposer": "agent:margin_calls",
        "requested_at": decided.requested_at.isoformat(),
        "expires_at": "2026-11-21T02:00:00+00:00",
        "decided_at": None,
        "votes": [
            {"by": "alice", "os_user": "ops01", "decision": "approve", "reason": "checked", "at": NOW.isoformat()}
        ],
    }
    settled = control.approvals.decide(approval, by="bob", decision="reject", reason="no", now=NOW + TICK)
    record = settled.to_json()
    assert record["status"] == REJECTED and record["decided_at"] == (NOW + TICK).isoformat()
    assert [v["by"] for v in record["votes"]] == ["alice", "bob"] and record["approvers"] == ["alice"]


def test_requesting_an_open_approval_again_keeps_it_as_it_is(db_url):
    control, approval = _open(db_url, "P22", required=2)
    first = _approve(control, approval, "alice")
    book = control.approvals
    with write_transaction(control.engine) as conn:
        assert book.request(conn, []) == 0
        assert book.request(conn, [_request("P22", required=1, hours=1), _request("P23")]) == 1
    again = book.get(approval)
    assert again == first  # neither its votes, nor its required count, nor its deadline changed
    assert [a.proposal_id for a in book.find()] == ["P22", "P23"]


def test_a_granted_approval_queues_its_action_with_the_proposal_and_rationale(db_url):
    control, approval = _open(
        db_url,
        "P24",
        required=1,
        action="margin_call",
        target="collateral_desk",
        payload={"amount": 5_000_000},
        rationale="MTM moved",
    )
    decided = _approve(control, approval, "alice")
    assert decided.status == APPROVED and decided.decided_at == NOW
    queued = control.outbox.get(decided.idempotency_key)
    assert (queued.agent, queued.partition, queued.proposal_id, queued.proposals_version) == (
        "margin_calls",
        "2026-11-20",
        "P24",
        "v1",
    )
    assert (queued.action, queued.target, queued.payload, queued.rationale) == (
        "margin_call",
        "collateral_desk",
        {"amount": 5_000_000},
        "MTM moved",
    )


def test_an_approval_without_a_payload_queues_an_empty_proposal(db_url):
    control, approval = _open(db_url, "P25", required=1, action="margin_call")
    decided = _approve(control, approval, "alice")
    queued = control.outbox.get(decided.idempotency_key)
    assert (queued.payload, queued.rationale) == ({}, "")


def test_a_rejection_is_settled_when_it_is_cast_and_queues_nothing(db_url):
    control, approval = _open(db_url, "P26", required=1, action="margin_call")
    rejected = control.approvals.decide(approval, by="bob", decision="reject", reason="disputed", now=NOW)
    assert rejected.status == REJECTED and rejected.decided_at == NOW
    assert [(v.approver, v.decision, v.reason, v.voted_at) for v in rejected.votes] == [
        ("bob", "reject", "disputed", NOW)
    ]
    assert control.outbox.find() == []


def test_votes_are_listed_in_the_order_they_were_cast(db_url):
    control, approval = _open(db_url, "P27", required=3)
    _approve(control, approval, "zoe")
    decided = _approve(control, approval, "bob")
    assert [v.approver for v in decided.votes] == ["zoe", "bob"] and decided.approvers == ["zoe", "bob"]


def test_a_voter_is_recorded_under_the_normalised_name(db_url):
    control, approval = _open(db_url, "P28", required=2)
    decided = _approve(control, approval, "  Ops :  Alice   Smith ")
    assert decided.approvers == ["ops:alice smith"]


def test_an_expiry_is_a_system_rejection_with_its_deadline(db_url):
    control, approval = _open(db_url, "P29", required=1, hours=1)
    late = NOW + dt.timedelta(hours=2)
    message = f"^approval {approval} expired at 2026-11-20 19:00Z: rejected by default$"
    with pytest.raises(ApprovalError, match=message):
        control.approvals.decide(approval, by="alice", decision="approve", reason="sorry", now=late)
    expired = control.approvals.get(approval)
    assert expired.decided_at == late
    assert [(v.approver, v.decision, v.reason, v.voted_at) for v in expired.votes] == [
        (SYSTEM, "reject", "expired undecided at 2026-11-20 19:00Z: rejected by default", late)
    ]
    assert _stored(control, sa.select(approval_votes.c.approver_key)) == [("system",)]
    with pytest.raises(ApprovalError, match=rf"^approval {approval} is already expired \(decided 2026-11-20 20:00Z\)$"):
        control.approvals.decide(approval, by="alice", decision="approve", reason="again", now=late)


def test_a_sweep_never_touches_a_decided_approval(db_url):
    control, approval = _open(db_url, "P30", required=1, hours=1)
    _approve(control, approval, "alice")
    assert control.approvals.expire_overdue(NOW + dt.timedelta(hours=2)) == []
    settled = control.approvals.get(approval)
    assert settled.status == APPROVED and [v.approver for v in settled.votes] == ["alice"]


def test_a_sweep_returns_what_it_expired_by_id(db_url):
    control, first = _open(db_url, "D1", required=1, hours=1)
    _, second = _open(db_url, "D3", required=1, hours=1)
    swept = control.approvals.expire_overdue(NOW + dt.timedelta(hours=1))
    assert [a.approval_id for a in swept] == sorted([first, second]) == [second, first]
    assert {a.status for a in swept} == {EXPIRED}


def test_the_sweep_and_the_sensor_cursor_run_on_utc_whatever_the_local_time_zone(db_url, tokyo_clock):
    control = ControlPlaneResource(url=db_url)
    soon = ApprovalRequest(
        agent="margin_calls",
        partition="2026-11-20",
        proposal_id="P31",
        proposals_version="v1",
        policy="large_margin_call",
        required=1,
        proposer="agent:margin_calls",
        summary="call",
        expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
    )
    control.decision_log.record([], approvals=[soon])
    assert control.approvals.expire_overdue() == []  # nine hours ahead locally, one hour early in UTC
    _, approval = _open(db_url, "P32", required=1)
    _approve(control, approval, "alice")
    assert [a.approval_id for a in control.approvals.decided_after(NOW.timestamp() - 1)] == [approval]


def test_the_sensor_cursor_lists_approvals_decided_strictly_after_it_oldest_first_then_by_id(db_url):
    control, d1 = _open(db_url, "D1", required=1)  # ids: D1 > D2 > D3
    _, d2 = _open(db_url, "D2", required=1)
    _, d3 = _open(db_url, "D3", required=1)
    assert d1 > d2 > d3
    minute = dt.timedelta(minutes=1)
    control.approvals.decide(d1, by="alice", decision="approve", reason="ok", now=NOW)
    control.approvals.decide(d2, by="alice", decision="approve", reason="ok", now=NOW + minute)
    control.approvals.decide(d3, by="alice", decision="reject", reason="no", now=NOW + minute)
    book = control.approvals
    assert [a.approval_id for a in book.decided_after(NOW.timestamp() - 1)] == [d1, d3, d2]
    assert [a.approval_id for a in book.decided_after(NOW.timestamp())] == [d3, d2]
    assert book.decided_after((NOW + minute).timestamp()) == []


def test_find_lists_approvals_in_request_order_then_by_id(db_url):
    control = ControlPlaneResource(url=db_url)
    with write_transaction(control.engine) as conn:  # one request: one request time
        control.approvals.request(conn, [_request("T2"), _request("T1")])
    with write_transaction(control.engine) as conn:
        control.approvals.request(conn, [_request("D3")])
    found = [a.proposal_id for a in control.approvals.find()]
    assert found == ["T1", "T2", "D3"]
    assert [a.approval_id for a in control.approvals.find()] != sorted(a.approval_id for a in control.approvals.find())


def test_find_filters_by_status_agent_and_partition(db_url):
    control, f1 = _open(db_url, "F1", required=1)
    _open(db_url, "F2", required=1, agent="var_risk", proposer="agent:var_risk")
    _open(db_url, "F3", required=1, partition="2026-11-21")
    _approve(control, f1, "alice")
    book = control.approvals

    def ids(**filters):
        return [a.proposal_id for a in book.find(**filters)]

    assert ids() == ["F1", "F2", "F3"]
    assert ids(status=APPROVED) == ["F1"]
    assert ids(status=PENDING) == ["F2", "F3"]
    assert ids(agent="var_risk") == ["F2"]
    assert ids(partition="2026-11-21") == ["F3"]
    assert ids(agent="margin_calls", partition="2026-11-20", status=APPROVED) == ["F1"]
    assert [v.approver for v in book.find(status=APPROVED)[0].votes] == ["alice"]


def test_the_approvals_of_a_version_are_only_that_agent_partition_and_version(db_url):
    control, mine = _open(db_url, "P1", required=1)
    _open(db_url, "P2", required=1, agent="var_risk", proposer="agent:var_risk")
    _open(db_url, "P3", required=1, partition="2026-11-21")
    _open(db_url, "P4", required=1, version="v2")
    found = control.approvals.for_version("margin_calls", "2026-11-20", "v1")
    assert list(found) == ["P1"] and found["P1"].approval_id == mine
    assert list(control.approvals.for_version("margin_calls", "2026-11-20", "v2")) == ["P4"]


def test_an_approval_is_found_by_a_six_character_prefix(db_url):
    control, approval = _open(db_url, "P33", required=1)
    assert control.approvals.get(approval[:6]).approval_id == approval
    assert _approve(control, approval[:6], "alice").status == APPROVED


def test_an_ambiguous_prefix_is_refused_naming_every_match(db_url):
    control, first = _open(db_url, "Q16365", required=1)  # both ids begin 63cc50a
    _, second = _open(db_url, "Q27314", required=1)
    assert (first, second) == ("63cc50af75155d06", "63cc50a2dfe58d7b")
    expected = f"approval id '63cc50' is ambiguous: {second}, {first}"  # sorted
    with pytest.raises(ApprovalError, match=f"^{re.escape(expected)}$"):
        control.approvals.get("63cc50")
    with pytest.raises(ApprovalError, match="is ambiguous"):
        _approve(control, "63cc50a", "alice")
    assert control.approvals.get("63cc50af").approval_id == first


@pytest.mark.parametrize("prefix", ["______", "%%%%%%", "63cc5_"])
def test_like_wildcards_in_a_prefix_match_only_themselves(db_url, prefix):
    control, _ = _open(db_url, "Q16365", required=1)
    with pytest.raises(ApprovalError, match=f"^no approval {re.escape(repr(prefix))};"):
        control.approvals.get(prefix)


def test_concurrent_approvers_are_counted_one_at_a_time(db_url):
    control, approval = _open(db_url, "P34", required=2, action="margin_call")
    voters = [f"approver{i}" for i in range(6)]
    barrier = threading.Barrier(len(voters))
    outcomes = []

    def vote(by: str) -> None:
        book = ControlPlaneResource(url=db_url).approvals
        barrier.wait()
        try:
            outcomes.append(book.decide(approval, by=by, decision="approve", reason="ok", now=NOW).status)
        except ApprovalError as error:
            outcomes.append(re.sub(r" \(decided .*\)$", "", str(error)))

    threads = [threading.Thread(target=vote, args=(by,)) for by in voters]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == sorted([PENDING, APPROVED] + [f"approval {approval} is already approved"] * 4)
    assert len(control.approvals.get(approval).approvers) == 2
    assert len(control.outbox.find()) == 1
