"""A reviewer: a second agent that supervises the first ("never let an agent be its own judge").

The contract is one method: ``review(proposals, references)`` returns, for every proposal,
whether it vetoes it and why. A reviewer can be statistical, rule-based or a model; it sees
the proposals and the same reference data as the rules. A reviewer that fails vetoes every
proposal it was meant to review — the safe default — with the failure as the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import pandas as pd


@dataclass(frozen=True)
class Review:
    """A reviewer's verdicts, aligned to the proposals: vetoed or not, and why."""

    vetoed: pd.Series
    reasons: pd.Series


class Reviewer:
    """Base of reviewers: set ``id`` and ``kind``, implement ``review``."""

    kind: ClassVar[str] = "abstract"
    id: str = "reviewer"
    description: str = ""

    def review(self, proposals: pd.DataFrame, references: Mapping[str, pd.DataFrame]) -> Review:
        raise NotImplementedError

    def safely_review(self, proposals: pd.DataFrame, references: Mapping[str, pd.DataFrame]) -> Review:
        try:
            review = self.review(proposals, references)
            vetoed = pd.Series(review.vetoed, index=proposals.index).fillna(True).astype(bool)
            reasons = pd.Series(review.reasons, index=proposals.index).fillna("").astype(str)
            return Review(vetoed, reasons)
        except Exception as exc:
            why = f"reviewer {self.id} failed ({type(exc).__name__}: {exc}); vetoed to be safe"
            return Review(pd.Series(True, index=proposals.index), pd.Series(why, index=proposals.index))
