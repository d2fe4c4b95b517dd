"""What a step reads: any asset of the code location, at the run's partition or as a whole."""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg
import pandas as pd

from foureyes.resources.errors import InputDataError


@dataclass(frozen=True)
class AssetInput:
    """An asset read by an agent, a supervisor or a reviewer, by the name it is given there.

    Any asset of the code location will do, stored by any IO manager. A partitioned input
    is read at the step's partition; when that partition is missing or a blocking check
    failed on its current materialisation (``judged``, the default), the last known good
    partition is served instead, flagged stale, up to ``max_staleness`` partitions old
    (past that, the input is unusable). An unpartitioned input is read whole.

    Examples:
        >>> AssetInput("market_prices", max_staleness=2).name
        'market_prices'
        >>> AssetInput("reference/portfolios").name
        'portfolios'
    """

    asset: str
    max_staleness: int = 3
    judged: bool = True

    @property
    def key(self) -> dg.AssetKey:
        return dg.AssetKey.from_user_string(self.asset)

    @property
    def name(self) -> str:
        return self.key.path[-1]


def require_columns(frame: pd.DataFrame, input_name: str, columns: list[str]) -> None:
    """Refuse an input that lacks the columns a computation needs, naming what it has."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputDataError(f"input '{input_name}' lacks column(s) {missing}; it has {list(map(str, frame.columns))}")
