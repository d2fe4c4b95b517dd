"""How approvals read on a terminal and in JSON (for the ``foureyes approvals`` commands)."""

from __future__ import annotations

import datetime as dt

from resources.approvals import APPROVED, PENDING, Approval


def approval_json(approval: Approval) -> dict:
    return {
        "approval_id": approval.approval_id,
        "agent": approval.agent,
        "partition": approval.partition,
        "proposal_id": approval.proposal_id,
        "summary": approval.summary,
        "policy": approval.policy,
        "status": approval.status,
        "required": approval.required,
        "approvers": approval.approvers,
        "proposer": approval.proposer,
        "requested_at": approval.requested_at.isoformat(),
        "expires_at": approval.expires_at.isoformat(),
        "decided_at": approval.decided_at.isoformat() if approval.decided_at else None,
        "votes": [
            {"by": v.approver, "decision": v.decision, "reason": v.reason, "at": v.voted_at.isoformat()}
            for v in approval.votes
        ],
    }


def format_approvals(found: list[Approval]) -> str:
    if not found:
        return "no approvals match"
    now = dt.datetime.now(dt.UTC)
    rows = [("id", "agent", "partition", "status", "votes", "expires", "proposal")]
    for a in found:
        votes = f"{len(a.approvers)}/{a.required}"
        expires = _until(a.expires_at - now) if a.status == PENDING else a.status
        rows.append((a.approval_id[:12], a.agent, a.partition, a.status, votes, expires, a.summary))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(str(cell).ljust(w) for cell, w in zip(row[:-1], widths, strict=True)) + "  " + str(row[-1])
        for row in rows
    )


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
