"""How a supervision reads in the Dagster UI: verdict counts and the decisions that matter first.

Rejected and pending proposals come before approved ones, so the table an operator sees at
3 AM starts with what was stopped and why. A supervision may hold a million decisions; the
summary only ever touches the counts and the few rows it shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from foureyes.resources.control_plane.decisions import APPROVED, PENDING, REJECTED, Decision, DecisionColumns
from foureyes.resources.markdown import markdown_table

SHOWN = 20


def verdict_summary(counts: Mapping[str, int], first: Sequence[Decision]) -> str:
    """A markdown line of counts per verdict and a table of the ``first`` decisions to read.

    ``counts`` may carry other figures too (a supervision's record also counts its proposals).
    """
    total = sum(counts.get(v, 0) for v in (APPROVED, REJECTED, PENDING))
    if not total:
        return "_no proposals_"
    head = ", ".join(f"**{counts.get(v, 0)} {v}**" for v in (APPROVED, REJECTED, PENDING))
    table = pd.DataFrame(
        [
            {
                "proposal": d.proposal_id[:12],
                "action": d.action,
                "verdict": d.verdict,
                "confidence": "-" if d.confidence is None else f"{d.confidence:.2f}",
                "why": "; ".join(f"{r.rule}: {r.message}" for r in d.reasons)[:160] or d.rationale[:160],
            }
            for d in first
        ]
    )
    more = total - len(first)
    return f"{head} of {total} proposal(s)\n\n{markdown_table(table)}" + (
        f"\n\n_{more} more decision(s) not shown_" if more > 0 else ""
    )


def summarise_decisions(decisions: Sequence[Decision] | DecisionColumns, shown: int = SHOWN) -> str:
    """The summary of decisions held in memory (the supervisor's, as it records them)."""
    held = decisions if isinstance(decisions, DecisionColumns) else DecisionColumns.of(decisions)
    return verdict_summary(held.counts(), held.first_to_read(shown))
