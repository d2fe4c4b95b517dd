"""What a step reads: an asset, at the run's partition or (unpartitioned) as a whole table."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
import pandas as pd

from resources.errors import InputDataError


@dataclass(frozen=True)
class AssetInput:
    """An asset read by an agent, a supervisor or a reviewer, by the name it is given there.

    ``quality_checked`` inputs are only served if their partition passed its input quality
    checks; otherwise the last known good partition is served, flagged stale, up to
    ``max_staleness`` business days old (past that, the input is unusable).

    Examples:
        >>> AssetInput("market_prices").name
        'market_prices'
        >>> AssetInput("reference/portfolios", partitioned=False).name
        'portfolios'
    """

    asset: str
    partitioned: bool = True
    quality_checked: bool = False
    max_staleness: int = 3

    @property
    def key(self) -> dg.AssetKey:
        return dg.AssetKey.from_user_string(self.asset)

    @property
    def name(self) -> str:
        return self.key.path[-1]

    def partition(self, run_partition: str | None) -> str | None:
        return run_partition if self.partitioned else None


def require_columns(frame: pd.DataFrame, input_name: str, columns: list[str]) -> None:
    """Refuse an input that lacks the columns a computation needs, naming what it has."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputDataError(f"input '{input_name}' lacks column(s) {missing}; it has {list(map(str, frame.columns))}")
