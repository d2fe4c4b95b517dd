"""A deterministic synthetic market: instruments, portfolios, positions and price history.

Same partition, same data, on any machine: every number comes from one seeded generator,
computed once per process. Prices follow a factor model (market, sector, idiosyncratic
returns, with a slow volatility regime), so VaR and drift behave like real books: quiet
weeks, stressed weeks, and portfolios that sometimes breach their limits.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd

from foureyes.examples.finance_desk.calendar import PARTITION_FORMAT

SEED = 20261123
EPOCH, HORIZON = "2024-01-01", "2031-12-31"
LOOKBACK_DAYS = 60
SECTORS = (
    "Technology",
    "Financials",
    "Energy",
    "Healthcare",
    "Industrials",
    "Consumer",
    "Utilities",
    "Materials",
)
N_EQUITIES, N_BONDS = 40, 10


@cache
def instruments() -> pd.DataFrame:
    """The instrument master: 40 equities and 10 bonds, with issuer, sector and risk profile."""
    rng = np.random.default_rng(SEED)
    rows = []
    for i in range(N_EQUITIES):
        sector = SECTORS[i % len(SECTORS)]
        rows.append(
            {
                "instrument_id": f"EQ{i + 1:03d}",
                "name": f"{sector[:4].upper()} Corp {i + 1}",
                "issuer": f"ISS{i + 1:03d}",
                "sector": sector,
                "asset_class": "equity",
                "currency": "USD",
                "beta": round(float(rng.uniform(0.6, 1.5)), 3),
                "idio_vol": round(float(rng.uniform(0.008, 0.022)), 4),
                "start_price": round(float(rng.uniform(20, 400)), 2),
            }
        )
    for j in range(N_BONDS):
        issuer = f"ISS{(j * 4) % N_EQUITIES + 1:03d}"
        rows.append(
            {
                "instrument_id": f"BD{j + 1:03d}",
                "name": f"Bond {j + 1} of {issuer}",
                "issuer": issuer,
                "sector": SECTORS[(j * 4) % len(SECTORS)],
                "asset_class": "bond",
                "currency": "USD",
                "beta": round(float(rng.uniform(0.02, 0.1)), 3),
                "idio_vol": round(float(rng.uniform(0.001, 0.004)), 4),
                "start_price": round(float(rng.uniform(92, 104)), 2),
            }
        )
    return pd.DataFrame(rows)


@cache
def portfolios() -> pd.DataFrame:
    """Four client portfolios with their 1-day 99% VaR limits (USD)."""
    return pd.DataFrame(
        {
            "portfolio_id": ["GLOBAL_EQ", "TECH_GROWTH", "INCOME", "MACRO"],
            "name": ["Global Equity", "Technology Growth", "Income", "Macro Opportunities"],
            "client_id": ["C001", "C002", "C003", "C004"],
            "base_currency": ["USD"] * 4,
            "var_limit": [7_500_000.0, 2_100_000.0, 1_800_000.0, 5_600_000.0],
        }
    )


@cache
def _business_days() -> pd.DatetimeIndex:
    return pd.bdate_range(EPOCH, HORIZON)


@cache
def _price_paths() -> np.ndarray:
    """Close prices, shape (business days, instruments)."""
    inst = instruments()
    days = len(_business_days())
    rng = np.random.default_rng(SEED + 1)
    regime = 1.0 + 0.6 * np.sin(np.arange(days) / 45.0) ** 2
    market = rng.normal(0.0003, 0.010, days) * regime
    sector_moves = rng.normal(0.0, 0.007, (days, len(SECTORS))) * regime[:, None]
    sector_of = np.array([SECTORS.index(s) for s in inst["sector"]])
    equity = (inst["asset_class"] == "equity").to_numpy()
    idio = rng.normal(0.0, 1.0, (days, len(inst))) * inst["idio_vol"].to_numpy()
    returns = market[:, None] * inst["beta"].to_numpy() + np.where(equity, sector_moves[:, sector_of], 0.0) + idio
    returns[0] = 0.0
    return inst["start_price"].to_numpy() * np.exp(np.cumsum(returns, axis=0))


def _day_index(partition: str) -> int:
    days = _business_days()
    position = days.searchsorted(pd.Timestamp(partition))
    if position >= len(days) or days[position] != pd.Timestamp(partition):
        raise ValueError(f"{partition} is not a business day between {EPOCH} and {HORIZON}")
    if position < LOOKBACK_DAYS:
        raise ValueError(f"{partition} is too early: the price history starts {EPOCH}")
    return int(position)


def price_history(partition: str, lookback: int = LOOKBACK_DAYS) -> pd.DataFrame:
    """The day's end-of-day price file: every instrument's closes over the last ``lookback`` days."""
    end = _day_index(partition)
    days = _business_days()[end - lookback : end + 1]
    closes = _price_paths()[end - lookback : end + 1]
    inst = instruments()
    frame = pd.DataFrame(
        {
            "instrument_id": np.repeat(inst["instrument_id"].to_numpy(), len(days)),
            "price_date": np.tile(days.to_numpy(), len(inst)),
            "close": closes.T.reshape(-1).round(4),
            "currency": np.repeat(inst["currency"].to_numpy(), len(days)),
        }
    )
    return frame.astype({"price_date": "datetime64[ns]"})


@cache
def _holdings() -> pd.DataFrame:
    """Which instruments each portfolio holds and its base notional in each (USD)."""
    inst = instruments()
    rng = np.random.default_rng(SEED + 2)
    equities = inst[inst["asset_class"] == "equity"]
    tech = equities[equities["sector"] == "Technology"]
    income = inst[(inst["asset_class"] == "bond") | (inst["sector"] == "Utilities")]
    plans = {
        "GLOBAL_EQ": (equities.sample(25, random_state=1)["instrument_id"], 120e6),
        "TECH_GROWTH": (
            pd.concat([tech, equities.sample(4, random_state=2)])["instrument_id"],
            38e6,
        ),
        "INCOME": (income["instrument_id"], 60e6),
        "MACRO": (inst.sample(18, random_state=3)["instrument_id"], 95e6),
    }
    rows = []
    for portfolio, (ids, notional) in plans.items():
        weights = rng.dirichlet(np.full(len(ids), 2.0))
        rows += [
            {"portfolio_id": portfolio, "instrument_id": i, "notional": notional * w}
            for i, w in zip(ids, weights, strict=True)
        ]
    return pd.DataFrame(rows).drop_duplicates(["portfolio_id", "instrument_id"])


def positions(partition: str) -> pd.DataFrame:
    """Each portfolio's quantities at the close of ``partition`` (slow, deterministic drift)."""
    end = _day_index(partition)
    hold = _holdings()
    inst = instruments().set_index("instrument_id")
    start_prices = inst.loc[hold["instrument_id"], "start_price"].to_numpy()
    phase = np.arange(len(hold)) * 0.7
    drift = 1.0 + 0.08 * np.sin(end / 9.0 + phase)
    return pd.DataFrame(
        {
            "portfolio_id": hold["portfolio_id"].to_numpy(),
            "instrument_id": hold["instrument_id"].to_numpy(),
            "quantity": np.round(hold["notional"].to_numpy() / start_prices * drift).astype("int64"),
            "as_of": pd.Timestamp(partition),
        }
    ).astype({"as_of": "datetime64[ns]"})


def format_day(day: pd.Timestamp) -> str:
    return day.strftime(PARTITION_FORMAT)


# -- counterparties, CSA terms, exposures and collateral (margin calls) ---------------------


@cache
def counterparties() -> pd.DataFrame:
    """Derivative counterparties and their CSA terms (threshold, minimum transfer, rounding)."""
    return pd.DataFrame(
        {
            "counterparty_id": [f"CP{i:02d}" for i in range(1, 9)],
            "name": [
                "Alder Bank",
                "Birch Securities",
                "Cedar Capital",
                "Dogwood Markets",
                "Elm Partners",
                "Fir Trust",
                "Ginkgo Holdings",
                "Hazel Investments",
            ],
            "rating": ["AA", "A", "A", "BBB", "AA", "BBB", "A", "BB"],
            "threshold": [5e6, 2e6, 2e6, 0.0, 10e6, 0.0, 1e6, 0.0],
            "minimum_transfer_amount": [500e3, 250e3, 250e3, 100e3, 1e6, 100e3, 250e3, 50e3],
            "rounding": [100e3, 10e3, 10e3, 10e3, 100e3, 10e3, 10e3, 10e3],
            "sensitivity": [1.4, -0.8, 0.6, 2.2, 1.0, -1.6, 0.4, 3.0],
            "notional": [400e6, 250e6, 180e6, 120e6, 600e6, 90e6, 150e6, 60e6],
        }
    )


@cache
def _market_index() -> np.ndarray:
    """An equal-weighted equity index (1.0 at the epoch) that drives derivative exposures."""
    equities = (instruments()["asset_class"] == "equity").to_numpy()
    paths = _price_paths()[:, equities]
    return (paths / paths[0]).mean(axis=1)


def _exposure_on(day: int) -> np.ndarray:
    cps = counterparties()
    rng = np.random.default_rng(SEED + 3 + day)
    move = _market_index()[day] - _market_index()[day - LOOKBACK_DAYS]
    return (cps["notional"] * (0.02 + cps["sensitivity"] * move) + rng.normal(0, 1.5e6, len(cps))).to_numpy()


def exposures(partition: str) -> pd.DataFrame:
    """Each counterparty's mark-to-market exposure at the close (positive: they owe us)."""
    day = _day_index(partition)
    return pd.DataFrame(
        {
            "counterparty_id": counterparties()["counterparty_id"].to_numpy(),
            "exposure": _exposure_on(day).round(2),
            "as_of": pd.Timestamp(partition),
        }
    ).astype({"as_of": "datetime64[ns]"})


def collateral(partition: str) -> pd.DataFrame:
    """Collateral held per counterparty at the close: what was called the day before, settled."""
    day = _day_index(partition)
    cps = counterparties()
    called = np.maximum(0.0, _exposure_on(day - 1) - cps["threshold"].to_numpy())
    held = np.floor(called / cps["rounding"].to_numpy()) * cps["rounding"].to_numpy()
    return pd.DataFrame(
        {
            "counterparty_id": cps["counterparty_id"].to_numpy(),
            "collateral_held": held,
            "as_of": pd.Timestamp(partition),
        }
    ).astype({"as_of": "datetime64[ns]"})


# -- model portfolios, restrictions and client policies (rebalancing) ----------------------


@cache
def target_weights() -> pd.DataFrame:
    """Each portfolio's model weights: where its holdings started (the mandate's model)."""
    hold = _holdings()
    totals = hold.groupby("portfolio_id")["notional"].transform("sum")
    return hold.assign(target_weight=(hold["notional"] / totals).round(6))[
        ["portfolio_id", "instrument_id", "target_weight"]
    ].reset_index(drop=True)


@cache
def restricted_list() -> pd.DataFrame:
    """Instruments no portfolio may buy (sanctions, inside information, pending litigation)."""
    return pd.DataFrame(
        {
            "instrument_id": ["EQ009", "EQ027", "BD003"],
            "reason": [
                "inside information (M&A advisory)",
                "sanctions screening",
                "issuer under investigation",
            ],
        }
    )


@cache
def investment_policies() -> pd.DataFrame:
    """Each client's investment policy statement, as numbers the supervisor can check."""
    return pd.DataFrame(
        {
            "client_id": ["C001", "C002", "C003", "C004"],
            "max_issuer_weight": [0.08, 0.15, 0.12, 0.10],
            "max_sector_weight": [0.30, 0.75, 0.45, 0.35],
            "max_trade_notional": [8e6, 4e6, 5e6, 6e6],
        }
    )


@cache
def policy_exclusions() -> pd.DataFrame:
    """Sectors a client's policy excludes outright."""
    return pd.DataFrame({"client_id": ["C003", "C003", "C001"], "sector": ["Energy", "Materials", "Materials"]})
