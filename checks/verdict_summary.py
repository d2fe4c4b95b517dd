"""How a supervision reads in the Dagster UI: verdict counts and the decisions that matter first.

Rejected and pending proposals come before approved ones, so the table an operator sees at
3 AM starts with what was stopped and why.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import pandas as pd

from resources.decision_log import APPROVED, PENDING, REJECTED, Decision
from resources.markdown import markdown_table

_ORDER = {REJECTED: 0, PENDING: 1, APPROVED: 2}


def verdict_summary(decisions: Sequence[Decision], max_rows: int = 20) -> str:
    """A markdown line of counts and a table of the decisions, rejected and pending first."""
    if not decisions:
        return "_no proposals_"
    counts = Counter(d.verdict for d in decisions)
    head = ", ".join(f"**{counts.get(v, 0)} {v}**" for v in (APPROVED, REJECTED, PENDING))
    ordered = sorted(decisions, key=lambda d: (_ORDER[d.verdict], d.proposal_id))
    table = pd.DataFrame(
        [
            {
                "proposal": d.proposal_id[:12],
                "action": d.action,
                "verdict": d.verdict,
                "confidence": "-" if d.confidence is None else f"{d.confidence:.2f}",
                "why": "; ".join(f"{r.rule}: {r.message}" for r in d.reasons)[:160] or d.rationale[:160],
            }
            for d in ordered
        ]
    )
    return f"{head} of {len(decisions)} proposal(s)\n\n{markdown_table(table, max_rows=max_rows)}"
