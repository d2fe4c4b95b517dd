"""The ``var_risk`` agent: portfolio VaR against limits, with escalations and exposure cuts.

It computes each portfolio's 1-day 99% VaR (delta-normal, EWMA covariance), compares it
with the portfolio's limit and proposes: ``hold`` (within limits), ``escalate`` (above 85%
of the limit) or ``reduce_exposure`` (in breach: the cut that brings VaR back under the
limit, plus a buffer). Its supervisor holds it to a schema and four business rules; the
approved actions are booked in the ``risk_actions`` table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

import foureyes
from foureyes import HOLD, ApprovalPolicy, AssetInput, ModelQuestion, Predicate, ProposalContext, Threshold
from foureyes.examples.finance_desk.price_anomaly import PriceAnomalyReviewer
from foureyes.examples.finance_desk.var_engine import historical_var, parametric_var

ESCALATE, REDUCE = "escalate", "reduce_exposure"
VAR_ACTIONS = [ESCALATE, REDUCE]  # what it may propose: the supervisor rejects any other action
ESCALATION_LEVEL = 0.85
REDUCTION_BUFFER = 0.05
MAX_SINGLE_REDUCTION = 0.5
MIN_ACTION_CONFIDENCE = 0.6
IMPLAUSIBLE_UTILISATION = 5.0


class VarProposals(pa.DataFrameModel):
    """One row per portfolio: its VaR, limit, breach flag and the proposed action."""

    proposal_id: Series[str] = pa.Field(unique=True)
    portfolio_id: Series[str] = pa.Field(unique=True)
    exposure: Series[float] = pa.Field(ge=0)
    var_99: Series[float] = pa.Field(ge=0)
    var_limit: Series[float] = pa.Field(gt=0)
    utilisation: Series[float] = pa.Field(ge=0)
    breach: Series[bool]
    action: Series[str] = pa.Field(isin=[HOLD, ESCALATE, REDUCE])
    reduction_pct: Series[float] = pa.Field(ge=0, le=1)
    cut_notional: Series[float] = pa.Field(ge=0)
    rationale: Series[str] = pa.Field(str_length={"min_value": 10})
    alternatives: Series[str]
    confidence: Series[float] = pa.Field(ge=0, le=1)

    @pa.check("var_99", "utilisation", name="finite")
    def _finite(cls, values: Series[float]) -> Series[bool]:
        return pd.Series(np.isfinite(values), index=values.index)

    @pa.dataframe_check(name="breach_matches_var")
    def _breach_consistent(cls, frame: pd.DataFrame) -> Series[bool]:
        return frame["breach"] == (frame["var_99"] > frame["var_limit"])

    class Config:
        strict = True


VAR_RULES = (
    Threshold(
        id="max_single_reduction",
        description=f"One action may cut a portfolio's exposure by at most {MAX_SINGLE_REDUCTION:.0%}.",
        column="reduction_pct",
        op="<=",
        value=MAX_SINGLE_REDUCTION,
        when={"action": REDUCE},
        message="{portfolio_id}: proposed cut {reduction_pct:.0%} exceeds the 50% a single action may take",
    ),
    Predicate(
        id="reduce_only_on_breach",
        description="Exposure is only cut when VaR is above its limit.",
        test=lambda p, _refs: (p["action"] == REDUCE) & ~p["breach"],
        message="{portfolio_id}: cut proposed although VaR {var_99:,.0f} is within limit {var_limit:,.0f}",
    ),
    Threshold(
        id="min_action_confidence",
        description=f"Escalations and cuts need confidence of at least {MIN_ACTION_CONFIDENCE}.",
        column="confidence",
        op=">=",
        value=MIN_ACTION_CONFIDENCE,
        when={"action": [ESCALATE, REDUCE]},
        message="{portfolio_id}: confidence {confidence:.2f} is below the 0.60 an action needs",
    ),
    Threshold(
        id="plausible_var",
        description=f"A VaR above {IMPLAUSIBLE_UTILISATION:.0f}x its limit is a data error, not acted on.",
        column="utilisation",
        op="<=",
        value=IMPLAUSIBLE_UTILISATION,
        message="{portfolio_id}: VaR {var_99:,.0f} is {utilisation:.1f}x its limit: implausible, check the prices",
    ),
)


COLUMNS = [
    "portfolio_id",
    "exposure",
    "var_99",
    "var_limit",
    "utilisation",
    "breach",
    "action",
    "reduction_pct",
    "cut_notional",
    "rationale",
    "alternatives",
    "confidence",
]
DECISION_SCHEMA = {
    "type": "object",
    "required": ["decisions"],
    "properties": {
        "decisions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["portfolio_id", "action", "reduction_pct", "rationale", "confidence"],
                "properties": {
                    "portfolio_id": {"type": "string"},
                    "action": {"enum": [HOLD, ESCALATE, REDUCE]},
                    "reduction_pct": {"type": "number", "minimum": 0, "maximum": 1},
                    "rationale": {"type": "string", "minLength": 10},
                    "alternatives": {"type": "string"},
                    "confidence": {"type": "number", "minimum": 0, "maximum": 1},
                },
            },
        }
    },
}
SYSTEM_PROMPT = (
    "You are a market-risk analyst. For each portfolio, given its 1-day 99% VaR and limit, decide: "
    "hold, escalate (above 85% of the limit) or reduce_exposure (in breach), with the reduction as a "
    "fraction of exposure, a one-sentence rationale, the alternatives you considered and why not, and "
    "your confidence. Answer in JSON: "
    '{"decisions": [{"portfolio_id", "action", "reduction_pct", "rationale", "alternatives", "confidence"}]}.'
)


def propose_var_actions(ctx: ProposalContext) -> pd.DataFrame:
    """VaR per portfolio against its limit; the model chain decides what to do about it.

    CONSTRAINED (prices served from an earlier day): the VaR interval is widened by
    sqrt(1 + days of staleness) and the confidence lowered by the same factor.
    """
    widen = float(np.sqrt(1 + ctx.age("market_prices")))
    risk = _risk_table(parametric_var(ctx.inputs["positions"], ctx.inputs["market_prices"], widen=widen), ctx)
    answer = ctx.ask(
        ModelQuestion(
            system=SYSTEM_PROMPT,
            prompt=risk[["portfolio_id", "exposure", "var_99", "var_limit", "utilisation"]]
            .round(2)
            .to_json(orient="records"),
            answer_schema=DECISION_SCHEMA,
            local_policy=lambda: {"decisions": _policy_decisions(risk)},
            accept=lambda a: _covers_every_portfolio(a, risk),
        )
    )
    decided = pd.DataFrame(answer["decisions"]).set_index("portfolio_id")
    risk["action"] = risk["portfolio_id"].map(decided["action"])
    risk["reduction_pct"] = risk["portfolio_id"].map(decided["reduction_pct"]).astype(float)
    risk["rationale"] = risk["portfolio_id"].map(decided["rationale"])
    given = decided["alternatives"] if "alternatives" in decided else pd.Series(dtype=object)
    risk["alternatives"] = risk["portfolio_id"].map(given).fillna("").astype(str)
    risk["confidence"] = (risk["portfolio_id"].map(decided["confidence"]).astype(float) / widen).round(3)
    risk["cut_notional"] = risk["exposure"] * risk["reduction_pct"]
    return risk[COLUMNS]


def historical_baseline(ctx: ProposalContext) -> pd.DataFrame:
    """PASS_THROUGH: the historical-simulation batch VaR engine; escalate, never cut, on its own."""
    risk = _risk_table(historical_var(ctx.inputs["positions"], ctx.inputs["market_prices"]), ctx)
    risk["action"] = np.where(risk["utilisation"] > ESCALATION_LEVEL, ESCALATE, HOLD)
    risk["reduction_pct"] = 0.0
    risk["cut_notional"] = 0.0
    risk["confidence"] = 0.9
    risk["alternatives"] = "none weighed: the model-led policy was not available"
    risk["rationale"] = [f"PASS_THROUGH (batch historical VaR): {_rationale(r)}" for r in risk.itertuples()]
    return risk[COLUMNS]


def _risk_table(risk: pd.DataFrame, ctx: ProposalContext) -> pd.DataFrame:
    limits = ctx.inputs["portfolios"].set_index("portfolio_id")["var_limit"]
    risk["var_limit"] = risk["portfolio_id"].map(limits).astype(float)
    risk["utilisation"] = risk["var_99"] / risk["var_limit"]
    risk["breach"] = risk["var_99"] > risk["var_limit"]
    return risk


def _policy_decisions(risk: pd.DataFrame) -> list[dict]:
    """The local deterministic policy: the last link of the model chain."""
    action = np.select([risk["breach"], risk["utilisation"] > ESCALATION_LEVEL], [REDUCE, ESCALATE], default=HOLD)
    cut = ((1.0 - 1.0 / risk["utilisation"].where(risk["breach"], 1.0)) + REDUCTION_BUFFER).clip(0.0, 1.0)
    confidence = (0.95 * risk["coverage"] * np.minimum(1.0, risk["observations"] / 60)).clip(0.0, 1.0)
    decided = risk.assign(action=action, reduction_pct=np.where(risk["breach"], cut, 0.0), confidence=confidence)
    return [
        {
            "portfolio_id": r.portfolio_id,
            "action": r.action,
            "reduction_pct": float(r.reduction_pct),
            "rationale": _rationale(r),
            "alternatives": _alternatives(r),
            "confidence": round(float(r.confidence), 3) if np.isfinite(r.confidence) else 0.0,
        }
        for r in decided.itertuples()
    ]


def _covers_every_portfolio(answer: dict, risk: pd.DataFrame) -> None:
    named = [d["portfolio_id"] for d in answer["decisions"]]
    if sorted(named) != sorted(risk["portfolio_id"]):
        raise ValueError(f"decisions cover {sorted(named)}, expected each of {sorted(risk['portfolio_id'])} once")


def _rationale(row) -> str:
    head = f"1-day 99% VaR {row.var_99:,.0f} is {row.utilisation:.0%} of the {row.var_limit:,.0f} limit"
    if row.action == REDUCE:
        return f"{head}; cut exposure by {row.reduction_pct:.0%} to return under the limit with a buffer"
    if row.action == ESCALATE:
        return f"{head}; above the {ESCALATION_LEVEL:.0%} early-warning level, escalate to the risk committee"
    return f"{head}; within limits, no action"


def _alternatives(row) -> str:
    if row.action == REDUCE:
        exact = max(0.0, row.reduction_pct - REDUCTION_BUFFER)
        return (
            f"escalate only: rejected, VaR would stay at {row.utilisation:.0%} of the limit; "
            f"cut {exact:.0%} (to the limit, no buffer): rejected, the next move would breach again"
        )
    if row.action == ESCALATE:
        return "reduce_exposure: not allowed without a breach; hold: rejected, above the early-warning level"
    return f"escalate: not needed, {row.utilisation:.0%} is under the {ESCALATION_LEVEL:.0%} early-warning level"


LARGE_CUTS = ApprovalPolicy(
    id="large_exposure_cut",
    description="Exposure cuts above 10m need the desk head; above 25m, the CRO as well.",
    column="cut_notional",
    above=10e6,
    four_eyes_above=25e6,
    when={"action": REDUCE},
    summary="{portfolio_id}: cut {reduction_pct:.0%} ({cut_notional:,.0f} of exposure)",
)

VAR_RISK = foureyes.define_agent(
    "var_risk",
    inputs=[
        AssetInput("positions"),
        AssetInput("market_prices"),
        AssetInput("portfolios"),
    ],
    propose=propose_var_actions,
    proposals_schema=VarProposals,
    actions=VAR_ACTIONS,
    natural_key=["portfolio_id"],
    rules=VAR_RULES,
    reviewers=[PriceAnomalyReviewer()],
    approval=LARGE_CUTS,
    baseline=historical_baseline,
    target="books",
    description="Portfolio VaR against limits: proposes escalations and exposure cuts.",
    owners=["team:risk"],
)
