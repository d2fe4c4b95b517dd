"""The ``rebalancing`` agent: portfolio drift and a momentum signal, turned into trades.

For each portfolio it compares current weights (positions at the latest close) with the
mandate's model weights, tilted by a small momentum signal, and proposes the trades that
bring any holding drifting more than the band back to target. It knows nothing about
restrictions or client policies — on purpose: its supervisor holds it to the restricted
list, issuer and sector concentration limits and each client's investment policy, from the
reference tables; large trades wait for a portfolio manager (two above 15m).
"""

import datetime as dt

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

import foureyes
from foureyes import (
    HOLD,
    ApprovalPolicy,
    AssetInput,
    ConcentrationLimit,
    Expression,
    Join,
    ProposalContext,
    RestrictedList,
    require_columns,
)
from foureyes.examples.finance_desk.price_anomaly import PriceAnomalyReviewer

BUY, SELL, ESCALATE = "buy", "sell", "escalate"
TRADE_ACTIONS = [BUY, SELL, ESCALATE]  # what it may propose: the supervisor rejects any other action
TRADE_COLUMNS = [
    "portfolio_id",
    "instrument_id",
    "current_weight",
    "target_weight",
    "quantity",
    "price",
    "trade_value",
    "action",
    "rationale",
    "confidence",
]
DRIFT_BAND = 0.015
MOMENTUM_TILT = 0.005
_CLIENT = Join(table="portfolios", on={"portfolio_id": "portfolio_id"}, columns={"client_id": "ref_client_id"})
_POLICY = Join(
    table="investment_policies",
    on={"ref_client_id": "client_id"},
    columns={
        "max_issuer_weight": "ips_max_issuer_weight",
        "max_sector_weight": "ips_max_sector_weight",
        "max_trade_notional": "ips_max_trade_notional",
    },
)
_SECTOR = Join(table="instruments", on={"instrument_id": "instrument_id"}, columns={"sector": "ref_sector"})


class TradeProposals(pa.DataFrameModel):
    proposal_id: Series[str] = pa.Field(unique=True)
    portfolio_id: Series[str]
    instrument_id: Series[str]
    current_weight: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    target_weight: Series[float] = pa.Field(ge=0, le=1, nullable=True)
    quantity: Series[int]
    price: Series[float] = pa.Field(gt=0, nullable=True)
    trade_value: Series[float]
    action: Series[str] = pa.Field(isin=[HOLD, BUY, SELL, ESCALATE])
    rationale: Series[str] = pa.Field(str_length={"min_value": 10})
    confidence: Series[float] = pa.Field(ge=0, le=1)

    @pa.dataframe_check(name="side_matches_sign")
    def _side(cls, frame: pd.DataFrame) -> Series[bool]:
        return ((frame["action"] == BUY) == (frame["trade_value"] > 0)) & (
            (frame["action"] == SELL) == (frame["trade_value"] < 0)
        )

    @pa.dataframe_check(name="trades_have_prices")
    def _priced(cls, frame: pd.DataFrame) -> Series[bool]:
        return ~frame["action"].isin([BUY, SELL]) | frame["price"].notna()

    @pa.dataframe_check(name="unique_trade_per_holding")
    def _unique(cls, frame: pd.DataFrame) -> Series[bool]:
        return ~frame.duplicated(["portfolio_id", "instrument_id"], keep=False)

    class Config:
        strict = True


REBALANCING_RULES = (
    RestrictedList(
        id="restricted_list",
        description="Never buy an instrument on the restricted list.",
        columns=("instrument_id",),
        reference="restricted_list",
        when={"action": BUY},
        message="{portfolio_id}: buy of {instrument_id} refused: it is on the restricted list",
    ),
    RestrictedList(
        id="policy_excluded_sector",
        description="Never buy into a sector the client's investment policy excludes.",
        columns=("ref_client_id", "ref_sector"),
        reference="policy_exclusions",
        reference_columns=("client_id", "sector"),
        when={"action": BUY},
        joins=(_CLIENT, _SECTOR),
        message="{portfolio_id}: buy of {instrument_id} refused: client {ref_client_id} excludes {ref_sector}",
    ),
    ConcentrationLimit(
        id="issuer_concentration",
        description="After the trades, no issuer above the client's policy limit.",
        group_by="issuer",
        limit_column="ips_max_issuer_weight",
        joins=(_CLIENT, _POLICY),
        message="{portfolio_id}: issuer {group} would be {weight:.1%} of the portfolio (policy limit {limit:.0%})",
    ),
    ConcentrationLimit(
        id="sector_concentration",
        description="After the trades, no sector above the client's policy limit.",
        group_by="sector",
        limit_column="ips_max_sector_weight",
        joins=(_CLIENT, _POLICY),
        message="{portfolio_id}: sector {group} would be {weight:.1%} of the portfolio (policy limit {limit:.0%})",
    ),
    Expression(
        id="max_trade_notional",
        description="No single trade above the client's policy maximum.",
        expression="abs(trade_value) <= ips_max_trade_notional",
        joins=(_CLIENT, _POLICY),
        message="{portfolio_id}: {action} {instrument_id} for {trade_value:,.0f} is above the client's "
        "maximum trade {ips_max_trade_notional:,.0f}",
    ),
)

LARGE_TRADES = ApprovalPolicy(
    id="large_trade",
    description="Trades above 5m need a portfolio manager; above 15m, two.",
    column="trade_value",
    above=5e6,
    four_eyes_above=15e6,
    expires_after=dt.timedelta(hours=6),
    summary="{portfolio_id}: {action} {quantity:,} {instrument_id} ({trade_value:,.0f})",
)


def propose_trades(ctx: ProposalContext) -> pd.DataFrame:
    """Trades that bring drifted holdings back to their (momentum-tilted) model weights.

    CONSTRAINED on stale prices: no new trades at all (a trade sized on yesterday's prices is
    a guess); the report says so through the tier and the served inputs.
    """
    if ctx.age("market_prices") > 0:
        ctx.log.warning("rebalancing: prices are stale, no new trades today")
        return _no_trades()
    positions, prices, targets = (
        ctx.inputs["positions"],
        ctx.inputs["market_prices"],
        ctx.inputs["target_weights"],
    )
    require_columns(prices, "market_prices", ["instrument_id", "price_date", "close"])
    closes = prices.pivot_table(index="price_date", columns="instrument_id", values="close", aggfunc="last")
    latest = closes.iloc[-1]
    momentum = np.sign(closes.iloc[-1] / closes.iloc[-min(21, len(closes))] - 1.0)
    book = targets.merge(
        positions[["portfolio_id", "instrument_id", "quantity"]],
        on=["portfolio_id", "instrument_id"],
        how="outer",
    )
    book["quantity"] = book["quantity"].fillna(0).astype("int64")
    book["target_weight"] = book["target_weight"].fillna(0.0)
    book["price"] = book["instrument_id"].map(latest)
    value = book["quantity"] * book["price"]
    total = value.groupby(book["portfolio_id"]).transform("sum")
    book["current_weight"] = (value / total).fillna(0.0)
    tilted = book["target_weight"] + MOMENTUM_TILT * book["instrument_id"].map(momentum).fillna(0.0)
    tilted = tilted.where(book["target_weight"] > 0, 0.0).clip(lower=0.0)
    drift = book["current_weight"] - tilted
    trade = book[drift.abs() > DRIFT_BAND].copy()
    trade["target_weight"] = tilted[trade.index].round(6)
    trade["quantity"] = np.round(-(drift[trade.index] * total[trade.index]) / trade["price"]).astype("int64")
    trade["trade_value"] = trade["quantity"] * trade["price"]
    trade["action"] = np.where(trade["quantity"] > 0, BUY, np.where(trade["quantity"] < 0, SELL, HOLD))
    trade["confidence"] = 0.8
    trade["rationale"] = [
        f"weight {r.current_weight:.1%} vs model {r.target_weight:.1%}: {r.action} {abs(r.quantity):,} "
        f"to return within the {DRIFT_BAND:.1%} band"
        for r in trade.itertuples()
    ]
    return trade[TRADE_COLUMNS].reset_index(drop=True)


def _no_trades() -> pd.DataFrame:
    floats = ("current_weight", "target_weight", "price", "trade_value", "confidence")
    return pd.DataFrame(
        {c: pd.Series(dtype=float if c in floats else "int64" if c == "quantity" else object) for c in TRADE_COLUMNS}
    )


def escalate_portfolios(ctx: ProposalContext) -> pd.DataFrame:
    """PASS_THROUGH: no trades; every portfolio goes to its manager for review."""
    portfolios = sorted(ctx.inputs["target_weights"]["portfolio_id"].unique())
    return pd.DataFrame(
        {
            "portfolio_id": portfolios,
            "instrument_id": "*",
            "current_weight": np.nan,
            "target_weight": np.nan,
            "quantity": np.zeros(len(portfolios), dtype="int64"),
            "price": np.nan,
            "trade_value": 0.0,
            "action": ESCALATE,
            "rationale": "PASS_THROUGH: rebalancing agent unavailable or inputs unusable; manager to review",
            "confidence": 1.0,
        }
    )


REBALANCING = foureyes.define_agent(
    "rebalancing",
    inputs=[
        AssetInput("positions"),
        AssetInput("market_prices"),
        AssetInput("target_weights"),
    ],
    propose=propose_trades,
    proposals_schema=TradeProposals,
    actions=TRADE_ACTIONS,
    natural_key=["portfolio_id", "instrument_id"],
    rules=REBALANCING_RULES,
    reviewers=[PriceAnomalyReviewer(id="price_anomaly", scope="instrument")],
    approval=LARGE_TRADES,
    baseline=escalate_portfolios,
    references=[
        AssetInput("holdings"),
        AssetInput("instruments"),
        AssetInput("portfolios"),
        AssetInput("restricted_list"),
        AssetInput("investment_policies"),
        AssetInput("policy_exclusions"),
    ],
    target="order_system",
    description="Drift and momentum to trades, within the restricted list and each client's policy.",
    owners=["team:portfolio-management"],
)
