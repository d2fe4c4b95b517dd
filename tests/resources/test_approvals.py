"""Four eyes on real SQLite and PostgreSQL: who may approve, how many, and until when."""

from __future__ import annotations

import datetime as dt
import hashlib
import multiprocessing
import queue
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
    SUPERSEDED,
    ApprovalBook,
    ApprovalRequest,
    Ballot,
    StaleApprovalError,
    approval_id,
    arguments_digest,
)
from foureyes.resources.control_plane.decisions import SupervisionRecord, _supervision_row
from foureyes.resources.control_plane.principal_book import APPROVE, READ, AccessError, Principal
from foureyes.resources.control_plane.principals import SYSTEM, ApprovalError, identity_key, principal
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.control_plane.schema import approval_votes, approvals, principals, supervisions
from foureyes.resources.engine import write_transaction
from tests.helpers import principal_of

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


def _person(control: ControlPlaneResource, name: str, **kwargs) -> Principal:
    """The principal ``name`` (read and approve), configured on first use."""
    if identity_key(name) not in {identity_key(p.name) for p in control.principals.list()}:
        return principal_of(control, name, **kwargs)
    book = control.principals
    return book.authenticate(book.issue_token(name).token)


def _ballot(control: ControlPlaneResource, approval: str, by: str | Principal, **kwargs) -> Ballot:
    kwargs = {"decision": "approve", "reason": "checked", "now": NOW, **kwargs}
    who = by if isinstance(by, Principal) else _person(control, by)
    return control.approvals.decide(approval, by=who, **kwargs)


def _approve(control: ControlPlaneResource, approval: str, by: str | Principal, **kwargs):
    """The approval after ``by``'s vote, which must have counted."""
    ballot = _ballot(control, approval, by, **kwargs)
    assert ballot.counted
    return ballot.approval


def _reject(control: ControlPlaneResource, approval: str, by: str | Principal, reason: str, **kwargs):
    return _approve(control, approval, by, decision="reject", reason=reason, **kwargs)


def _slip_in(control: ControlPlaneResource, name: str, kind: str = "person", scopes=(READ, APPROVE)) -> Principal:
    """A principal written straight into the table, past every check of ``principals.add``."""
    with write_transaction(control.engine) as conn:
        conn.execute(
            principals.insert().values(
                name=name,
                principal_key=f"slipped-{name}",
                kind=kind,
                scopes=list(scopes),
                created_at=NOW,
                created_by="sql",
            )
        )
    return Principal(name, kind, tuple(scopes), "token slipped")


def test_one_approval_settles_a_single_approver_request(db_url):
    control, approval = _open(db_url, "P1", required=1)
    decided = _approve(control, approval, _person(control, "alice", os_user="ops01"))
    assert decided.status == APPROVED and decided.approvers == ["alice"]
    assert [(v.approver, v.reason, v.os_user, v.authenticated_by) for v in decided.votes] == [
        ("alice", "checked", "ops01", "os-user ops01")
    ]
    with pytest.raises(ApprovalError, match=r"is already approved \(decided 2026-11-20 18:00Z\)"):
        _reject(control, approval, "bob", "late")


def test_four_eyes_needs_two_distinct_approvers(db_url):
    control, approval = _open(db_url, "P2", required=2, action="margin_call")
    first = _approve(control, approval, "alice")
    assert first.status == PENDING and first.approvers == ["alice"]
    again = _ballot(control, approval, "alice")  # the same vote sent twice (another token of alice's): once
    assert not again.counted and again.approval == first and again.vote == first.votes[0]
    with pytest.raises(ApprovalError, match=rf"^alice already voted approve on approval {approval}$"):
        _reject(control, approval, "alice", "changed my mind")
    assert control.approvals.get(approval) == first and control.outbox.find() == []
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
    with pytest.raises(AccessError, match=f"^{re.escape(repr(spelling))} is already configured as principal 'alice'"):
        control.principals.add(spelling, [READ, APPROVE], created_by="tests")
    assert [p.name for p in control.principals.list()] == ["alice"]
    # a second row slipped into the table under that spelling is still alice's second vote: not counted
    again = _ballot(control, approval, _slip_in(control, spelling))
    assert not again.counted and again.approval.approvers == ["alice"]
    with pytest.raises(ApprovalError, match="already voted approve on approval"):
        _reject(control, approval, _slip_in(control, spelling + "."), "me again")
    assert control.approvals.get(approval).status == PENDING and len(control.approvals.get(approval).votes) == 1


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
    if principal(spelling).startswith("agent:"):  # an agent principal never holds approve...
        with pytest.raises(AccessError, match="an agent principal never approves: it cannot hold the 'approve' scope"):
            control.principals.add(spelling, [READ, APPROVE], created_by="tests")
        voters = [principal_of(control, spelling, [READ])]
        with write_transaction(control.engine) as conn:  # ...not even when it is written into its row
            conn.execute(
                principals.update().where(principals.c.name == principal(spelling)).values(scopes=[READ, APPROVE])
            )
        voters.append(control.principals.authenticate(control.principals.issue_token(spelling).token))
        assert voters[-1].scopes == (READ, APPROVE) and voters[-1].is_agent
    else:  # a person whose name reads as an agent's is configured, and never votes
        voters = [principal_of(control, spelling)]
    voters.append(_slip_in(control, f"{spelling}.", kind="person"))  # an agent's name in a person's row
    for voter in voters:
        for decision in ("approve", "reject"):
            with pytest.raises(ApprovalError, match="is an agent principal: agents never approve or reject"):
                control.approvals.decide(approval, by=voter, decision=decision, reason="me", now=NOW)
    assert control.approvals.get(approval).status == PENDING and not control.approvals.get(approval).votes


@pytest.mark.parametrize("spelling", ["alice", "Alice", " ALICE", "ａｌｉｃｅ"])
def test_a_person_who_proposed_cannot_approve(db_url, spelling):
    control, approval = _open(db_url, "P10", required=1, proposer="Alice")
    for decision in ("approve", "reject"):
        with pytest.raises(ApprovalError, match="proposed this action and cannot approve or reject it"):
            _ballot(control, approval, spelling, decision=decision)
    assert control.approvals.get(approval).status == PENDING and not control.approvals.get(approval).votes


def test_one_rejection_is_final(db_url):
    control, approval = _open(db_url, "P3", required=2)
    _approve(control, approval, "alice")
    rejected = _reject(control, approval, "bob", "disputed MTM")
    assert rejected.status == REJECTED


def test_undecided_approvals_expire_to_rejected_and_say_so(db_url):
    control, approval = _open(db_url, "P4", required=1, hours=1)
    late = NOW + dt.timedelta(hours=2)
    with pytest.raises(ApprovalError, match="expired at 2026-11-20 19:00Z: rejected by default"):
        _approve(control, approval, "alice", reason="sorry", now=late)
    expired = control.approvals.get(approval)
    assert expired.status == EXPIRED
    assert [(v.approver, v.decision) for v in expired.votes] == [(SYSTEM, "reject")]
    assert "expired undecided" in expired.votes[0].reason


def test_a_vote_at_the_deadline_is_too_late_and_one_just_before_counts(db_url):
    control, late = _open(db_url, "P11", required=1, hours=1)
    deadline = NOW + dt.timedelta(hours=1)
    with pytest.raises(ApprovalError, match="expired at"):
        _approve(control, late, "alice", reason="at the bell", now=deadline)
    _, in_time = _open(db_url, "P12", required=1, hours=1)
    decided = _approve(control, in_time, "alice", reason="just in", now=deadline - TICK)
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
        (None, {"reason": ""}, "^a reason is required for every approval decision$"),
        (None, {"reason": "   "}, "^a reason is required for every approval decision$"),
        (None, {"decision": "maybe"}, "decision 'maybe' is not one of 'approve', 'reject'"),
        (None, {"expected_digest": "1a2b3c"}, "^give at least 8 characters of the arguments digest$"),
    ],
)
def test_bad_decisions_are_refused_with_the_reason(db_url, approval, kwargs, match):
    control, opened = _open(db_url, "P7", required=1)
    args = {"by": _person(control, "alice"), "decision": "approve", "reason": "ok", "now": NOW, **kwargs}
    with pytest.raises(ApprovalError, match=match):
        control.approvals.decide(approval or opened[:8], **args)
    assert control.approvals.get(opened).status == PENDING and not control.approvals.get(opened).votes


@pytest.mark.parametrize("name", [" ", "...", "system", "SYSTEM ", "ｓｙｓｔｅｍ", "os:alice", "OS : alice"])
def test_a_name_no_principal_may_take_is_refused_when_it_is_added(db_url, name):
    control = ControlPlaneResource(url=db_url)
    with pytest.raises(AccessError, match=r"cannot name a principal \(empty, os:..., or reserved\)$"):
        control.principals.add(name, [READ, APPROVE], created_by="tests")
    assert control.principals.list() == []


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("...", "an approver must be named"),
        ("system", "is reserved for decisions foureyes records itself"),
        ("SYSTEM ", "is reserved for decisions foureyes records itself"),
    ],
)
def test_a_reserved_name_slipped_into_the_table_still_cannot_vote(db_url, name, match):
    control, approval = _open(db_url, "P7", required=1)
    slipped = _slip_in(control, name)
    for decision in ("approve", "reject"):
        with pytest.raises(ApprovalError, match=match):
            _ballot(control, approval, slipped, decision=decision)
    assert control.approvals.get(approval).status == PENDING and not control.approvals.get(approval).votes


def test_only_a_configured_enabled_person_holding_approve_may_vote(db_url):
    control, approval = _open(db_url, "P7", required=1)
    reader = principal_of(control, "rita", [READ])
    with pytest.raises(ApprovalError, match=r"^rita does not hold the 'approve' scope: it cannot vote$"):
        _ballot(control, approval, reader)
    unconfigured = control.principals.of_os_user("nobody")
    assert (unconfigured.name, unconfigured.scopes, unconfigured.configured) == ("os:nobody", (READ,), False)
    forged = Principal("mallory", "person", (READ, APPROVE), "token forged")  # never configured
    for who in (unconfigured, forged):
        with pytest.raises(ApprovalError, match=r"is not a configured principal .*: it cannot vote$"):
            _ballot(control, approval, who)
    alice = _person(control, "alice")
    control.principals.disable("alice")  # the token was good when it was read; the store says no now
    with pytest.raises(ApprovalError, match=r"^alice is not a configured principal"):
        _ballot(control, approval, alice)
    control.principals.grant("rita", [READ, APPROVE])  # scopes are read from the store at the vote
    assert _approve(control, approval, reader).approvers == ["rita"]


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
    control, approval = _open(db_url, "P21", required=2, action="margin_call", target="desk", payload={"amount": 7})
    ballot = _ballot(control, approval, _person(control, "alice", os_user="ops01"))
    decided = ballot.approval
    digest = arguments_digest("margin_call", "desk", {"proposal": {"amount": 7}, "rationale": ""})
    assert decided.to_json() == {
        "approval_id": approval,
        "agent": "margin_calls",
        "partition": "2026-11-20",
        "proposal_id": "P21",
        "proposals_version": "v1",
        "summary": "call for P21",
        "action": "margin_call",
        "target": "desk",
        "proposal": {"amount": 7},
        "rationale": "",
        "arguments_digest": digest,
        "policy": "large_margin_call",
        "status": PENDING,
        "required": 2,
        "approvers": ["alice"],
        "proposer": "agent:margin_calls",
        "requested_at": decided.requested_at.isoformat(),
        "expires_at": "2026-11-21T02:00:00+00:00",
        "decided_at": None,
        "votes": [
            {
                "by": "alice",
                "authenticated_by": "os-user ops01",
                "os_user": "ops01",
                "proposals_version": "v1",
                "arguments_digest": digest,
                "decision": "approve",
                "reason": "checked",
                "at": NOW.isoformat(),
            }
        ],
    }
    assert ballot.to_json() == {**decided.to_json(), "counted": True, "by": "alice"}
    settled = _reject(control, approval, "bob", "no", now=NOW + TICK)
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
    rejected = _reject(control, approval, "bob", "disputed")
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
        _approve(control, approval, "alice", reason="sorry", now=late)
    expired = control.approvals.get(approval)
    assert expired.decided_at == late
    assert [(v.approver, v.decision, v.reason, v.voted_at) for v in expired.votes] == [
        (SYSTEM, "reject", "expired undecided at 2026-11-20 19:00Z: rejected by default", late)
    ]
    assert _stored(control, sa.select(approval_votes.c.approver_key)) == [("system",)]
    with pytest.raises(ApprovalError, match=rf"^approval {approval} is already expired \(decided 2026-11-20 20:00Z\)$"):
        _approve(control, approval, "alice", reason="again", now=late)


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
    alice = _person(control, "alice")
    _approve(control, d1, alice, reason="ok", now=NOW)
    _approve(control, d2, alice, reason="ok", now=NOW + minute)
    _reject(control, d3, alice, "no", now=NOW + minute)
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
    voters = [principal_of(control, f"approver{i}") for i in range(6)]
    barrier = threading.Barrier(len(voters))
    outcomes = []

    def vote(by: Principal) -> None:
        book = ControlPlaneResource(url=db_url).approvals
        barrier.wait()
        try:
            outcomes.append(book.decide(approval, by=by, decision="approve", reason="ok", now=NOW).approval.status)
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


# -- an approval is bound to what was approved ---------------------------------------------------


def test_a_vote_for_other_arguments_than_the_approval_holds_is_refused(db_url):
    control, approval = _open(db_url, "B1", required=1, action="margin_call", target="desk", payload={"amount": 5})
    digest = control.approvals.get(approval).arguments_digest
    assert digest == arguments_digest("margin_call", "desk", {"proposal": {"amount": 5}, "rationale": ""})
    other = arguments_digest("margin_call", "desk", {"proposal": {"amount": 50}, "rationale": ""})
    for reviewed in (other, other[:8]):
        message = (
            f"^approval {approval}: you reviewed arguments {reviewed[:12]}, the approval is for {digest[:12]}; "
            "nothing was recorded$"
        )
        with pytest.raises(ApprovalError, match=message):
            _approve(control, approval, "alice", expected_digest=reviewed)
    assert control.approvals.get(approval).votes == () and control.outbox.find() == []
    decided = _approve(control, approval, "alice", expected_digest=f" {digest[:8].upper()} ")  # 8 will do
    assert decided.status == APPROVED and decided.votes[0].arguments_digest == digest
    assert len(control.outbox.find()) == 1


def _superseded_reason(version: str) -> str:
    return f"superseded by proposals version {version}: the approved arguments are no longer proposed"


def test_a_vote_after_a_newer_version_was_supervised_is_stale_and_queues_nothing(db_url):
    control, approval = _open(db_url, "S1", required=2, action="margin_call")
    _approve(control, approval, "alice")
    _, newer = _open(db_url, "S1", required=2, action="margin_call", version="v2")  # the agent proposed again
    with pytest.raises(
        StaleApprovalError, match=rf"^approval {approval} is stale: its proposals version v1 was superseded \(at "
    ):
        _approve(control, approval, "bob")
    stale = control.approvals.get(approval)
    assert stale.status == SUPERSEDED and stale.approvers == ["alice"]
    assert [(v.approver, v.decision, v.reason) for v in stale.votes] == [
        ("alice", "approve", "checked"),
        (SYSTEM, "reject", _superseded_reason("v2")),
    ]
    assert control.outbox.find() == [] and control.approvals.get(newer).status == PENDING


def test_a_vote_on_a_version_superseded_by_a_supervision_that_settled_nothing_is_stale(db_url):
    """A supervision written without settling the older approvals (an older writer): the vote still finds it."""
    control, approval = _open(db_url, "S2", required=1, action="margin_call")
    later = SupervisionRecord("s-v2", "margin_calls", "2026-11-20", "v2", False, "", {})
    with write_transaction(control.engine) as conn:
        conn.execute(supervisions.insert().values(**_supervision_row(later)))
    message = (
        f"^approval {approval} is stale: it is for proposals version v1, which margin_calls superseded with v2; "
        r"nothing was approved \(`foureyes approvals list` shows the current ones\)$"
    )
    with pytest.raises(StaleApprovalError, match=message):
        _approve(control, approval, "alice", now=NOW + TICK)
    stale = control.approvals.get(approval)
    assert (stale.status, stale.decided_at) == (SUPERSEDED, NOW + TICK)
    assert [(v.approver, v.decision, v.reason) for v in stale.votes] == [(SYSTEM, "reject", _superseded_reason("v2"))]
    assert control.outbox.find() == []


def test_a_vote_after_the_deadline_is_refused_as_expired_and_queues_nothing(db_url):
    control, approval = _open(db_url, "E1", required=2, hours=1, action="margin_call")
    _approve(control, approval, "alice")
    message = rf"^approval {approval} expired at 2026-11-20 19:00Z: rejected by default$"
    with pytest.raises(ApprovalError, match=message):
        _approve(control, approval, "bob", now=NOW + dt.timedelta(hours=1))
    expired = control.approvals.get(approval)
    assert expired.status == EXPIRED and [v.approver for v in expired.votes] == ["alice", SYSTEM]
    assert control.outbox.find() == []


@pytest.mark.parametrize(
    "tampered",
    [
        {"payload": {"proposal": {"amount": 5_000_000_000}, "rationale": "MTM moved"}},
        {"payload": {"proposal": {"amount": 5_000_000}, "rationale": "MTM moved a lot"}},
        {"target": "another_desk"},
        {"action": "wire_transfer"},
    ],
    ids=["amount", "rationale", "target", "action"],
)
def test_an_approval_whose_stored_action_was_rewritten_is_refused_and_queues_nothing(db_url, tampered):
    control, approval = _open(
        db_url, "T1", 1, action="margin_call", target="desk", payload={"amount": 5_000_000}, rationale="MTM moved"
    )
    with write_transaction(control.engine) as conn:
        conn.execute(approvals.update().where(approvals.c.approval_id == approval).values(**tampered))
    message = (
        f"^approval {approval}: the stored action no longer matches the digest it was requested with; "
        "nothing was approved$"
    )
    with pytest.raises(ApprovalError, match=message):
        _approve(control, approval, "alice")
    assert control.approvals.get(approval).status == PENDING and control.approvals.get(approval).votes == ()
    assert control.outbox.find() == []


def test_a_rewrite_that_also_forged_the_digest_is_refused_by_the_digest_the_reviewer_saw(db_url):
    control, approval = _open(db_url, "T2", 1, action="margin_call", target="desk", payload={"amount": 5})
    reviewed = control.approvals.get(approval).arguments_digest  # what `approvals list` showed
    forged = {"proposal": {"amount": 5_000_000_000}, "rationale": ""}
    with write_transaction(control.engine) as conn:
        conn.execute(
            approvals.update()
            .where(approvals.c.approval_id == approval)
            .values(payload=forged, arguments_digest=arguments_digest("margin_call", "desk", forged))
        )
    with pytest.raises(ApprovalError, match=f"you reviewed arguments {reviewed[:12]}"):
        _approve(control, approval, "alice", expected_digest=reviewed)
    assert control.approvals.get(approval).votes == () and control.outbox.find() == []


# -- racing votes ------------------------------------------------------------------------------------


def _vote_as(url: str, token: str, approval: str, barrier, results) -> None:
    """One approver's vote, in a thread or a process of its own, started with the others at the barrier."""
    control = ControlPlaneResource(url=url)
    who = control.principals.authenticate(token)
    barrier.wait()
    try:
        ballot = control.approvals.decide(approval, by=who, decision="approve", reason="ok", now=NOW)
        results.put((who.name, ballot.counted, ballot.approval.status))
    except ApprovalError as error:
        results.put((who.name, None, str(error)))


@pytest.mark.parametrize("concurrency", ["threads", "processes"])
def test_two_approvers_and_a_duplicate_vote_racing_queue_the_action_once(db_url, concurrency):
    control, approval = _open(db_url, "R1", required=2, action="margin_call")
    book = control.principals
    tokens = {}
    for name in ("alice", "bob"):
        book.add(name, [READ, APPROVE], created_by="tests")
        tokens[name] = book.issue_token(name).token
    votes = [tokens["alice"], tokens["bob"], tokens["alice"]]  # alice's vote sent twice
    if concurrency == "threads":
        barrier, results = threading.Barrier(len(votes)), queue.Queue()
        workers = [threading.Thread(target=_vote_as, args=(db_url, t, approval, barrier, results)) for t in votes]
    else:
        spawn = multiprocessing.get_context("spawn")
        barrier, results = spawn.Barrier(len(votes)), spawn.Queue()
        workers = [spawn.Process(target=_vote_as, args=(db_url, t, approval, barrier, results)) for t in votes]
    for w in workers:
        w.start()
    outcomes = [results.get(timeout=120) for _ in votes]
    for w in workers:
        w.join(timeout=60)
    counted = sorted(name for name, was_counted, _ in outcomes if was_counted)
    assert counted == ["alice", "bob"], outcomes  # alice's second vote is answered, never counted
    assert [o for o in outcomes if not o[1]] == [("alice", False, o[2]) for o in outcomes if not o[1]], outcomes
    assert len([o for o in outcomes if not o[1]]) == 1
    settled = control.approvals.get(approval)
    assert settled.status == APPROVED and sorted(settled.approvers) == ["alice", "bob"] and len(settled.votes) == 2
    assert len(control.outbox.find()) == 1
    assert settled.revision == 2  # two votes counted: the revision moved twice


def test_a_supervision_recorded_while_a_vote_holds_the_approval_waits_and_leaves_it_decided(db_url, monkeypatch):
    """A newer version supervised at the moment a vote commits: the supersession skips it, neither fails."""
    control, approval = _open(db_url, "R2", required=1, action="margin_call")
    alice = principal_of(control, "alice")
    voting, release = threading.Event(), threading.Event()
    queue_action = ApprovalBook._queue_action

    def slow_queue(self, conn, found):  # the vote holds the approval, its writes not yet committed
        queue_action(self, conn, found)
        voting.set()
        assert release.wait(30)

    monkeypatch.setattr(ApprovalBook, "_queue_action", slow_queue)
    failures = []

    def vote() -> None:
        try:
            _approve(control, approval, alice)
        except Exception as error:  # the test reports whatever broke
            failures.append(error)

    def supervise_v2() -> None:
        try:
            _open(db_url, "R2b", required=1, action="margin_call", version="v2")
        except Exception as error:
            failures.append(error)

    voter = threading.Thread(target=vote)
    voter.start()
    assert voting.wait(30)
    supervisor = threading.Thread(target=supervise_v2)
    supervisor.start()
    time.sleep(0.5)  # the supervision reaches the approval the vote holds
    release.set()
    voter.join(30)
    supervisor.join(30)
    assert failures == []
    assert control.approvals.get(approval).status == APPROVED and len(control.outbox.find()) == 1
    assert [a.proposals_version for a in control.approvals.find(status=PENDING)] == ["v2"]
