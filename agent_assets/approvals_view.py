"""How approvals read on a terminal and in JSON (for the ``foureyes approvals`` commands)."""

from __future__ import annotations

import datetime as dt

from agent_assets.text_table import text_table
from resources.approvals import APPROVED, PENDING, Approval


def format_approvals(found: list[Approval]) -> str:
    if not found:
        return "no approvals match"
    now = dt.datetime.now(dt.UTC)
    rows = [("id", "agent", "partition", "status", "votes", "expires", "proposal")]
    for a in found:
        votes = f"{len(a.approvers)}/{a.required}"
        expires = _until(a.expires_at - now) if a.status == PENDING else a.status
        rows.append((a.approval_id[:12], a.agent, a.partition, a.status, votes, expires, a.summary))
    return "\n".join(text_table(rows))


def format_decision(approval: Approval) -> str:
    last = approval.votes[-1]
    verb = "approved" if last.decision == "approve" else "rejected"
    head = (
        f"{verb} {approval.approval_id[:12]} ({approval.agent} {approval.partition}: {approval.summary}) "
        f"by {last.approver}"
    )
    if approval.status == PENDING:
        waiting = f"{len(approval.approvers)} of {approval.required} approvals"
        return f"{head}; {waiting}, waiting for another approver"
    if approval.status == APPROVED:
        return f"{head}; approved ({', '.join(approval.approvers)}): the executor runs on the next sensor tick"
    return f"{head}; {approval.status}: it will not be executed"


def _until(delta: dt.timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 0:
        return "overdue"
    return f"in {minutes // 60}h{minutes % 60:02d}m"
