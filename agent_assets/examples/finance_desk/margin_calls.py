"""The ``margin_calls`` agent: counterparty exposure against collateral and CSA terms.

For each counterparty it computes the credit support amount the CSA allows — exposure above
the threshold, less the collateral already held — and proposes a ``call`` (we ask for more)
or a ``return`` (we give some back) when the difference reaches the minimum transfer amount,
rounded up to the CSA rounding. Its supervisor checks every call against the regulatory
thresholds from the reference tables, not from the agent's own figures, and large calls wait
for a collateral manager (two above 20m).
"""

import datetime as dt

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

import foureyes
from foureyes import HOLD, ApprovalPolicy, AssetInput, Expression, Join, ProposalContext, Threshold, require_columns

CALL, RETURN, ESCALATE = "call", "return", "escalate"
MARGIN_ACTIONS = [CALL, RETURN, ESCALATE]  # what it may propose: the supervisor rejects any other action
_CSA = Join(
    table="counterparties",
    on={"counterparty_id": "counterparty_id"},
    columns={"threshold": "csa_threshold", "minimum_transfer_amount": "csa_mta", "rounding": "csa_rounding"},
)
_BOOKS = (
    Join(table="exposures", on={"counterparty_id": "counterparty_id"}, columns={"exposure": "ref_exposure"}),
    Join(
        table="collateral",
        on={"counterparty_id": "counterparty_id"},
        columns={"collateral_held": "ref_collateral"},
    ),
)


class MarginProposals(pa.DataFrameModel):
    proposal_id: Series[str] = pa.Field(unique=True)
    counterparty_id: Series[str] = pa.Field(unique=True)
    exposure: Series[float] = pa.Field(nullable=True)
    collateral_held: Series[float] = pa.Field(ge=0, nullable=True)
    credit_support_amount: Series[float] = pa.Field(nullable=True)
    amount: Series[float] = pa.Field(ge=0)
    action: Series[str] = pa.Field(isin=[HOLD, CALL, RETURN, ESCALATE])
    rationale: Series[str] = pa.Field(str_length={"min_value": 10})
    confidence: Series[float] = pa.Field(ge=0, le=1)

    @pa.dataframe_check(name="hold_moves_nothing")
    def _hold_has_no_amount(cls, frame: pd.DataFrame) -> Series[bool]:
        return ~frame["action"].isin([HOLD, ESCALATE]) | (frame["amount"] == 0)

    @pa.dataframe_check(name="calls_have_figures")
    def _calls_have_figures(cls, frame: pd.DataFrame) -> Series[bool]:
        figures = frame[["exposure", "collateral_held", "credit_support_amount"]].notna().all(axis=1)
        return ~frame["action"].isin([CALL, RETURN]) | figures

    class Config:
        strict = True


MARGIN_RULES = (
    Expression(
        id="minimum_transfer_amount",
        description="A call or return moves at least the CSA's minimum transfer amount.",
        expression="amount >= csa_mta",
        when={"action": [CALL, RETURN]},
        joins=(_CSA,),
        message="{counterparty_id}: {action} of {amount:,.0f} is below the minimum transfer amount {csa_mta:,.0f}",
    ),
    Expression(
        id="call_within_credit_support",
        description="A call never asks for more than exposure above the threshold less collateral held "
        "(plus one rounding unit), computed from the books, not the agent's figures.",
        expression="amount <= ref_exposure - csa_threshold - ref_collateral + csa_rounding",
        when={"action": CALL},
        joins=(_CSA, *_BOOKS),
        message="{counterparty_id}: call of {amount:,.0f} exceeds what the CSA allows "
        "(exposure {ref_exposure:,.0f}, threshold {csa_threshold:,.0f}, held {ref_collateral:,.0f})",
    ),
    Expression(
        id="return_within_excess",
        description="A return never gives back more than the collateral held in excess of the requirement.",
        expression="amount <= ref_collateral + csa_rounding"
        " - (ref_exposure - csa_threshold) * (ref_exposure > csa_threshold)",
        when={"action": RETURN},
        joins=(_CSA, *_BOOKS),
        message="{counterparty_id}: return of {amount:,.0f} exceeds the excess collateral "
        "(held {ref_collateral:,.0f}, exposure {ref_exposure:,.0f})",
    ),
    Threshold(
        id="single_call_cap",
        description="No single call above 100m: that is a workout, not a margin call.",
        column="amount",
        op="<=",
        value=100e6,
        message="{counterparty_id}: {action} of {amount:,.0f} is above the 100m single-call cap",
    ),
)

LARGE_CALLS = ApprovalPolicy(
    id="large_margin_call",
    description="Calls and returns above 5m need a collateral manager; above 20m, two.",
    column="amount",
    above=5e6,
    four_eyes_above=20e6,
    expires_after=dt.timedelta(hours=8),
    summary="{counterparty_id}: {action} {amount:,.0f}",
)


def propose_margin_calls(ctx: ProposalContext) -> pd.DataFrame:
    """Credit support amount per counterparty, and the call or return it implies."""
    exposures, held, csa = ctx.inputs["exposures"], ctx.inputs["collateral"], ctx.inputs["counterparties"]
    require_columns(exposures, "exposures", ["counterparty_id", "exposure"])
    require_columns(held, "collateral", ["counterparty_id", "collateral_held"])
    book = (
        exposures[["counterparty_id", "exposure"]]
        .merge(held[["counterparty_id", "collateral_held"]], on="counterparty_id", how="left")
        .merge(csa, on="counterparty_id", how="left")
    )
    book["collateral_held"] = book["collateral_held"].fillna(0.0)
    required = (book["exposure"] - book["threshold"]).clip(lower=0.0)
    book["credit_support_amount"] = required - book["collateral_held"]
    rounded = np.ceil(book["credit_support_amount"].abs() / book["rounding"]) * book["rounding"]
    moves = rounded >= book["minimum_transfer_amount"]
    book["action"] = np.where(moves, np.where(book["credit_support_amount"] > 0, CALL, RETURN), HOLD)
    book["amount"] = np.where(moves, rounded, 0.0)
    book["confidence"] = 0.97
    book["rationale"] = [_rationale(r) for r in book.itertuples()]
    return book[
        [
            "counterparty_id",
            "exposure",
            "collateral_held",
            "credit_support_amount",
            "amount",
            "action",
            "rationale",
            "confidence",
        ]
    ]


def escalate_everything(ctx: ProposalContext) -> pd.DataFrame:
    """PASS_THROUGH: no call is made on data that cannot be trusted; each counterparty goes to a human."""
    cps = ctx.inputs["counterparties"][["counterparty_id"]].copy()
    exposures = ctx.inputs.get("exposures")
    held = ctx.inputs.get("collateral")
    cps["exposure"] = (
        cps["counterparty_id"].map(exposures.set_index("counterparty_id")["exposure"])
        if (exposures is not None and "exposure" in exposures)
        else np.nan
    )
    cps["collateral_held"] = (
        cps["counterparty_id"].map(held.set_index("counterparty_id")["collateral_held"])
        if (held is not None and "collateral_held" in held)
        else np.nan
    )
    cps["credit_support_amount"] = np.nan
    cps["amount"] = 0.0
    cps["action"] = ESCALATE
    cps["confidence"] = 1.0
    cps["rationale"] = "PASS_THROUGH: margin agent unavailable or inputs unusable; collateral team to review"
    return cps.astype({"exposure": float, "collateral_held": float})


def _rationale(row) -> str:
    head = f"exposure {row.exposure:,.0f} vs threshold {row.threshold:,.0f}, collateral held {row.collateral_held:,.0f}"
    if row.action == CALL:
        return f"{head}: call {row.amount:,.0f} (rounded up to {row.rounding:,.0f})"
    if row.action == RETURN:
        return f"{head}: return {row.amount:,.0f} of excess collateral"
    return f"{head}: difference below the minimum transfer amount {row.minimum_transfer_amount:,.0f}"


MARGIN_CALLS = foureyes.define_agent(
    "margin_calls",
    inputs=[
        AssetInput("exposures", max_staleness=1),
        AssetInput("collateral", max_staleness=1),
        AssetInput("counterparties"),
    ],
    propose=propose_margin_calls,
    proposals_schema=MarginProposals,
    actions=MARGIN_ACTIONS,
    natural_key=["counterparty_id"],
    rules=MARGIN_RULES,
    approval=LARGE_CALLS,
    baseline=escalate_everything,
    target="collateral_system",
    description="Margin calls and returns under each counterparty's CSA.",
    owners=["team:collateral"],
)
