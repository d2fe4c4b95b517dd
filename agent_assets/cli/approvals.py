"""How approvals read on a terminal and in JSON (for the ``foureyes approvals`` commands)."""

from __future__ import annotations

import datetime as dt

from foureyes.cli.text_table import text_table
from foureyes.resources.control_plane.approvals import APPROVED, PENDING, Approval, Ballot
from foureyes.resources.control_plane.outbox import QUEUED, OutboxEntry


def format_approvals(found: list[Approval]) -> str:
    if not found:
        return "no approvals match"
    now = dt.datetime.now(dt.UTC)
    rows = [("id", "agent", "partition", "status", "votes", "expires", "digest", "proposal")]
    for a in found:
        votes = f"{len(a.approvers)}/{a.required}"
        expires = _until(a.expires_at - now) if a.status == PENDING else a.status
        rows.append(
            (a.approval_id[:12], a.agent, a.partition, a.status, votes, expires, a.arguments_digest[:12], a.summary)
        )
    return "\n".join(text_table(rows))


def format_decision(ballot: Ballot, queued: OutboxEntry | None = None) -> str:
    """One line on what the vote did; a granted approval says what it put in the outbox, and only that."""
    approval, vote = ballot.approval, ballot.vote
    verb = "approved" if vote.decision == "approve" else "rejected"
    head = (
        f"{verb} {approval.approval_id[:12]} ({approval.agent} {approval.partition}: {approval.summary}) "
        f"by {vote.approver} ({vote.authenticated_by})"
    )
    if not ballot.counted:
        head = f"already recorded: {head} at {vote.voted_at:%Y-%m-%d %H:%M}Z, counted once"
    if approval.status == PENDING:
        waiting = f"{len(approval.approvers)} of {approval.required} approvals"
        return f"{head}; {waiting}, waiting for another approver"
    if approval.status == APPROVED:
        granted = f"{head}; approved ({', '.join(approval.approvers)})"
        if queued is not None and queued.status == QUEUED:
            return f"{granted}: queued as {queued.idempotency_key[:12]}, the executor runs on the next sensor tick"
        state = f"already {queued.status}" if queued is not None else "missing from the outbox"
        return f"{granted}, but nothing new was queued: action {approval.idempotency_key[:12]} is {state}"
    return f"{head}; {approval.status}: it will not be executed"


def _until(delta: dt.timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 0:
        return "overdue"
    return f"in {minutes // 60}h{minutes % 60:02d}m"
