"""Four eyes on real SQLite and PostgreSQL: who may approve, how many, and until when."""

from __future__ import annotations

import datetime as dt

import pytest

from resources.approvals import APPROVED, EXPIRED, PENDING, REJECTED, SYSTEM, ApprovalError, ApprovalRequest
from resources.control_plane import ControlPlaneResource
from resources.decision_log import SupervisionRecord

NOW = dt.datetime(2026, 11, 20, 18, 0, tzinfo=dt.UTC)


def _open(url: str, proposal: str, required: int, hours: float = 8) -> tuple[ControlPlaneResource, str]:
    control = ControlPlaneResource(url=url)
    request = ApprovalRequest(
        agent="margin_calls",
        partition="2026-11-20",
        proposal_id=proposal,
        proposals_version="v1",
        policy="large_margin_call",
        required=required,
        proposer="agent:margin_calls",
        summary=f"call for {proposal}",
        expires_at=NOW + dt.timedelta(hours=hours),
    )
    supervision = SupervisionRecord("s-" + proposal, "margin_calls", "2026-11-20", "v1", False, "", {"pending": 1})
    control.decision_log.record([], supervision=supervision, approvals=[request, request])  # twice: kept once
    return control, request.approval_id


def test_one_approval_settles_a_single_approver_request(db_url):
    control, approval = _open(db_url, "P1", required=1)
    decided = control.approvals.decide(approval, by="alice", decision="approve", reason="checked", now=NOW)
    assert decided.status == APPROVED and decided.approvers == ["alice"]
    assert [(v.approver, v.reason) for v in decided.votes] == [("alice", "checked")]
    with pytest.raises(ApprovalError, match=r"is already approved \(decided 2026-11-20 18:00Z\)"):
        control.approvals.decide(approval, by="bob", decision="reject", reason="late", now=NOW)


def test_four_eyes_needs_two_distinct_approvers_none_of_them_the_proposer(db_url):
    control, approval = _open(db_url, "P2", required=2)
    with pytest.raises(ApprovalError, match="agent:margin_calls proposed P2 and cannot approve or reject it"):
        control.approvals.decide(approval, by="agent:margin_calls", decision="approve", reason="me", now=NOW)
    first = control.approvals.decide(approval, by="alice", decision="approve", reason="ok", now=NOW)
    assert first.status == PENDING and first.approvers == ["alice"]
    with pytest.raises(ApprovalError, match=r"alice already voted on approval .*; a second approver must differ"):
        control.approvals.decide(approval, by="alice", decision="approve", reason="again", now=NOW)
    second = control.approvals.decide(approval, by="bob", decision="approve", reason="ok too", now=NOW)
    assert second.status == APPROVED and second.approvers == ["alice", "bob"]


def test_one_rejection_is_final(db_url):
    control, approval = _open(db_url, "P3", required=2)
    control.approvals.decide(approval, by="alice", decision="approve", reason="ok", now=NOW)
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


def test_the_sweep_expires_only_overdue_ones(db_url):
    control, soon = _open(db_url, "P5", required=1, hours=1)
    _, later = _open(db_url, "P6", required=1, hours=10)
    swept = control.approvals.expire_overdue(NOW + dt.timedelta(hours=2))
    assert [a.approval_id for a in swept] == [soon]
    assert control.approvals.get(later).status == PENDING
    assert [a.approval_id for a in control.approvals.decided_after(0)] == [soon]


@pytest.mark.parametrize(
    ("approval", "kwargs", "match"),
    [
        ("abc", {}, "too short: give at least 6 characters"),
        ("ffffffffff", {}, "no approval 'ffffffffff'; `foureyes approvals list` shows the pending ones"),
        (None, {"by": " "}, "an approver must be named"),
        (None, {"by": "system"}, "an approver must be named"),
        (None, {"reason": ""}, "a reason is required"),
        (None, {"decision": "maybe"}, "decision 'maybe' is not one of 'approve', 'reject'"),
    ],
)
def test_bad_decisions_are_refused_with_the_reason(db_url, approval, kwargs, match):
    control, opened = _open(db_url, "P7", required=1)
    args = {"by": "alice", "decision": "approve", "reason": "ok", "now": NOW, **kwargs}
    with pytest.raises(ApprovalError, match=match):
        control.approvals.decide(approval or opened[:8], **args)
