"""The verdicts table in the UI: what was stopped first, the same from memory and from the log."""

from __future__ import annotations

from foureyes.checks.verdict_summary import summarise_decisions, verdict_summary
from foureyes.resources.control_plane.decisions import APPROVED, PENDING, REJECTED
from foureyes.resources.control_plane.resource import ControlPlaneResource
from tests.resources.test_control_plane import _decision, _supervision

# recorded in this order: approvals first, the rejections and the pending one after them
VERDICTS = [APPROVED] * 30 + [REJECTED, PENDING, REJECTED]
DECISIONS = [_decision("s1", f"P{i:02d}", verdict) for i, verdict in enumerate(VERDICTS)]


def test_rejected_then_pending_come_first_and_the_rest_is_counted():
    summary = summarise_decisions(DECISIONS, shown=5)
    assert summary.startswith("**30 approved**, **2 rejected**, **1 pending** of 33 proposal(s)")
    rows = [line.split(" | ")[0].strip("| ") for line in summary.splitlines() if line.startswith("| P")]
    assert rows == ["P30", "P32", "P31", "P00", "P01"]  # rejected, pending, then approved, each as recorded
    assert "too big" in summary
    assert summary.endswith("_28 more decision(s) not shown_")


def test_the_log_gives_the_same_summary_without_reading_the_whole_batch(db_url):
    log = ControlPlaneResource(url=db_url).decision_log
    log.record(DECISIONS, supervision=_supervision("s1"))
    first = log.first_to_read("s1", 5)
    assert [d.proposal_id for d in first] == ["P30", "P32", "P31", "P00", "P01"]
    counts = {APPROVED: 30, REJECTED: 2, PENDING: 1, "proposals": 33}  # as a supervision record holds them
    assert verdict_summary(counts, first) == summarise_decisions(DECISIONS, shown=5)
    assert verdict_summary({}, []) == "_no proposals_"
