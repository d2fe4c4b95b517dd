"""Portfolio Value-at-Risk: the parametric model the agent uses and the historical batch engine.

Both work on the same inputs — positions (quantities) and the day's price file (a window of
closes per instrument) — and return one row per portfolio: exposure, 1-day 99% VaR and the
number of return observations used. The historical-simulation engine is the deterministic
baseline that runs when the agent cannot (the PASS_THROUGH tier).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from foureyes import require_columns

Z_99 = 2.3263478740408408
EWMA_LAMBDA = 0.94
CONFIDENCE = 0.99


def returns_matrix(prices: pd.DataFrame) -> pd.DataFrame:
    """Daily log returns, one column per instrument, oldest first."""
    require_columns(prices, "market_prices", ["instrument_id", "price_date", "close"])
    closes = prices.pivot_table(
        index="price_date", columns="instrument_id", values="close", aggfunc="last", dropna=False
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(closes).diff().iloc[1:]


def exposures(positions: pd.DataFrame, prices: pd.DataFrame) -> pd.DataFrame:
    """Market value of every position at the latest close (NaN where no price)."""
    require_columns(positions, "positions", ["portfolio_id", "instrument_id", "quantity"])
    latest = prices[prices["price_date"] == prices["price_date"].max()].set_index("instrument_id")["close"]
    out = positions[["portfolio_id", "instrument_id", "quantity"]].copy()
    out["value"] = out["quantity"] * out["instrument_id"].map(latest)
    return out


def parametric_var(positions: pd.DataFrame, prices: pd.DataFrame, widen: float = 1.0) -> pd.DataFrame:
    """Delta-normal VaR with an EWMA covariance (RiskMetrics, lambda 0.94)."""
    rets = returns_matrix(prices)
    n = len(rets)
    weights = EWMA_LAMBDA ** np.arange(n - 1, -1, -1)
    weights = weights / weights.sum()
    centred = rets.to_numpy()
    cov = pd.DataFrame((centred * weights[:, None]).T @ centred, index=rets.columns, columns=rets.columns)
    rows = []
    for portfolio, book in exposures(positions, prices).groupby("portfolio_id", sort=True):
        ids = book["instrument_id"].to_numpy()
        value = book["value"].to_numpy()
        sub = cov.reindex(index=ids, columns=ids).to_numpy()
        var = Z_99 * float(np.sqrt(value @ sub @ value)) * widen
        rows.append(_row(portfolio, value, var, n, book, prices))
    return pd.DataFrame(rows)


def historical_var(positions: pd.DataFrame, prices: pd.DataFrame) -> pd.DataFrame:
    """Historical simulation: the 99th percentile loss of today's book over the window's days."""
    rets = returns_matrix(prices)
    rows = []
    for portfolio, book in exposures(positions, prices).groupby("portfolio_id", sort=True):
        scenario = rets.reindex(columns=book["instrument_id"]).to_numpy()
        pnl = np.expm1(scenario) @ book["value"].to_numpy()
        var = float(-np.quantile(pnl, 1 - CONFIDENCE)) if len(pnl) else float("nan")
        rows.append(_row(portfolio, book["value"].to_numpy(), max(var, 0.0), len(pnl), book, prices))
    return pd.DataFrame(rows)


def _row(
    portfolio: str,
    value: np.ndarray,
    var: float,
    observations: int,
    book: pd.DataFrame,
    prices: pd.DataFrame,
) -> dict:
    priced = book["instrument_id"].isin(prices.loc[prices["close"].notna(), "instrument_id"]).mean()
    return {
        "portfolio_id": portfolio,
        "exposure": float(np.nansum(np.abs(value))),
        "var_99": var,
        "observations": int(observations),
        "coverage": float(priced),
    }
