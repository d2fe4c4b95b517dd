"""Which proposals need a human: the approval policy (one approver, or two above a limit).

Applied after the rules and reviewers, to proposals they approved: an action whose size
(``column``, in absolute value) is above ``above`` waits for one approval, above
``four_eyes_above`` for two distinct approvers. Undecided after ``expires_after``, it
expires to rejected. ``hold`` proposals (reports) never need approval.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from foureyes.checks.rules import RowFilter
from foureyes.resources.errors import AgentDefinitionError


@dataclass(frozen=True)
class ApprovalPolicy:
    """Examples:
    >>> import pandas as pd
    >>> import foureyes
    >>> policy = foureyes.ApprovalPolicy(
    ...     id="large_call",
    ...     description="Calls above 5m need a collateral manager",
    ...     column="call_amount",
    ...     above=5e6,
    ...     four_eyes_above=20e6,
    ...     summary="{counterparty_id}: call {call_amount:,.0f}",
    ... )
    >>> calls = pd.DataFrame({"counterparty_id": ["C1", "C2", "C3"], "call_amount": [1e6, -8e6, 25e6]})
    >>> policy.required_approvals(calls).tolist()  # none, one approver, two (four eyes)
    [0, 1, 2]
    >>> policy.describe(calls.iloc[2])
    'C3: call 25,000,000'
    """

    id: str
    description: str
    column: str
    above: float
    four_eyes_above: float | None = None
    expires_after: dt.timedelta = dt.timedelta(hours=24)
    when: Mapping[str, object] = field(default_factory=dict)
    summary: str = "{action} {proposal_id}"

    def __post_init__(self) -> None:
        if self.four_eyes_above is not None and self.four_eyes_above < self.above:
            raise AgentDefinitionError(
                f"approval policy {self.id!r}: four_eyes_above ({self.four_eyes_above}) is below above ({self.above})"
            )
        if self.expires_after <= dt.timedelta(0):
            raise AgentDefinitionError(f"approval policy {self.id!r}: expires_after must be positive")

    def required_approvals(self, proposals: pd.DataFrame) -> pd.Series:
        """0, 1 or 2 approvals per proposal; a size that cannot be read needs two."""
        size = pd.to_numeric(proposals[self.column], errors="coerce").abs()
        required = np.where(size > self.above, 1, 0)
        if self.four_eyes_above is not None:
            required = np.where(size > self.four_eyes_above, 2, required)
        required = np.where(size.isna(), 2, required)
        return pd.Series(np.where(RowFilter(proposals).mask(self.when), required, 0), index=proposals.index)

    def describe(self, row: Mapping[str, object]) -> str:
        try:
            return self.summary.format(**row)
        except (KeyError, ValueError, TypeError, IndexError):
            return f"{row.get('action', '?')} {row.get('proposal_id', '?')}"
