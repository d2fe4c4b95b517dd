"""The statistical anomaly reviewer: vetoes proposals that rest on prices that cannot be right.

For each instrument it compares the latest daily log return with the instrument's own
history in the price file, using a robust z-score (median and MAD, so one bad day cannot
hide itself by inflating the spread). A missing, zero or negative latest price, or a return
beyond ``z_limit``, marks the instrument anomalous. A proposal is vetoed if it rests on an
anomalous instrument: by default any instrument its portfolio holds (a VaR or a rebalance
computed from that book), or only its own instrument (``scope="instrument"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

import foureyes

MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class PriceAnomalyReviewer(foureyes.Reviewer):
    kind: ClassVar[str] = "price_anomaly"
    id: str = "price_anomaly"
    description: str = "Vetoes proposals resting on prices whose last move is a statistical outlier."
    prices: str = "market_prices"
    positions: str = "positions"
    z_limit: float = 8.0
    scope: str = "portfolio"

    def anomalies(self, prices: pd.DataFrame) -> pd.Series:
        """The instruments whose latest move is beyond ``z_limit`` (inf: unusable price)."""
        z = latest_move_zscores(prices)
        return z[z > self.z_limit]

    def review(self, proposals: pd.DataFrame, references: Mapping[str, pd.DataFrame]) -> foureyes.Review:
        flagged = self.anomalies(references[self.prices])
        if self.scope == "instrument":
            hits = proposals["instrument_id"].map(flagged)
            reasons = [
                f"{i}: latest price move is {z:.0f} sigma from its history; likely a bad price" if pd.notna(z) else ""
                for i, z in zip(proposals["instrument_id"], hits, strict=True)
            ]
            return foureyes.Review(hits.notna(), pd.Series(reasons, index=proposals.index))
        held = references[self.positions]
        suspect = held[held["instrument_id"].isin(flagged.index)]
        by_portfolio = suspect.groupby("portfolio_id")["instrument_id"].apply(lambda s: sorted(set(s)))
        reasons = []
        for portfolio in proposals["portfolio_id"]:
            names = by_portfolio.get(portfolio, [])
            shown = ", ".join(f"{n} ({_sigma(flagged[n])})" for n in names[:3])
            more = f" and {len(names) - 3} more" if len(names) > 3 else ""
            reasons.append(
                f"{portfolio} holds {shown}{more}: price moves no market explains; likely bad prices" if names else ""
            )
        vetoed = proposals["portfolio_id"].isin(by_portfolio.index)
        return foureyes.Review(vetoed, pd.Series(reasons, index=proposals.index))


def latest_move_zscores(prices: pd.DataFrame) -> pd.Series:
    """Robust z-score of each instrument's latest daily log return against its own history.

    Missing, zero or negative latest prices score infinity: nothing can be computed from them.
    """
    closes = prices.pivot_table(index="price_date", columns="instrument_id", values="close", aggfunc="last")
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = np.log(closes.where(closes > 0)).diff().iloc[1:]
    history, latest = returns.iloc[:-1], returns.iloc[-1]
    median = history.median()
    mad = (history - median).abs().median() * MAD_TO_SIGMA
    z = ((latest - median) / mad.replace(0, np.nan)).abs()
    unusable = closes.iloc[-1].isna() | (closes.iloc[-1] <= 0)
    return z.where(~unusable, np.inf).fillna(np.inf)


def _sigma(z: float) -> str:
    return "unusable price" if np.isinf(z) else f"{z:.0f} sigma"
