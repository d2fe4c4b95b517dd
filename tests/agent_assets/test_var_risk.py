"""The var_risk agent's proposals and its supervisor, on clean and broken market data."""

from __future__ import annotations

import logging

import pandas as pd

from foureyes.checks.supervisor import Supervisor
from foureyes.examples.finance_desk import synthetic_market as market
from foureyes.examples.finance_desk.faults import corrupt
from foureyes.examples.finance_desk.var_engine import historical_var, parametric_var
from foureyes.examples.finance_desk.var_risk import ESCALATE, REDUCE, VAR_RULES, VarProposals, propose_var_actions
from foureyes.propose.context import ProposalContext
from foureyes.propose.proposals import proposal_ids
from foureyes.resources.control_plane.decisions import APPROVED, REJECTED


def _proposals(partition: str, prices: pd.DataFrame | None = None) -> pd.DataFrame:
    inputs = {
        "positions": market.positions(partition),
        "market_prices": market.price_history(partition) if prices is None else prices,
        "portfolios": market.portfolios(),
    }
    frame = propose_var_actions(ProposalContext("var_risk", partition, inputs, logging.getLogger("t")))
    frame.insert(0, "proposal_id", proposal_ids("var_risk", partition, frame, ["portfolio_id"]))
    return frame


def test_clean_week_has_holds_escalations_and_a_breach_all_approved():
    supervisor = Supervisor(schema=VarProposals, rules=VAR_RULES)
    actions = set()
    for partition in ["2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19", "2026-11-20"]:
        proposals = _proposals(partition)
        verdict = supervisor.review(proposals)
        assert (verdict.verdicts == APPROVED).all(), verdict.reasons()
        actions |= set(proposals["action"])
    assert actions == {"hold", ESCALATE, REDUCE}


def test_breach_cut_brings_var_back_under_the_limit():
    proposals = _proposals("2026-11-20").set_index("portfolio_id")
    macro = proposals.loc["MACRO"]
    assert macro["action"] == REDUCE and macro["breach"]
    assert macro["var_99"] * (1 - macro["reduction_pct"]) < macro["var_limit"]
    assert "cut exposure by" in macro["rationale"]


def test_outlier_prices_are_rejected_with_the_offending_values_named():
    partition = "2026-11-18"
    prices = corrupt(market.price_history(partition), "outliers", partition, lambda: None)
    proposals = _proposals(partition, prices)
    result = Supervisor(schema=VarProposals, rules=VAR_RULES).review(proposals)
    rejected = proposals[result.verdicts == REJECTED]
    assert len(rejected) >= 1
    messages = [r.message for p in rejected.index for r in result.reasons()[p]]
    assert any("implausible, check the prices" in m for m in messages)


def test_nan_prices_fail_the_schema_and_block_the_batch():
    partition = "2026-11-18"
    prices = corrupt(market.price_history(partition), "nan_prices", partition, lambda: None)
    result = Supervisor(schema=VarProposals, rules=VAR_RULES).review(_proposals(partition, prices))
    assert result.blocked and (result.verdicts == REJECTED).all()


def test_proposal_ids_are_stable_per_agent_partition_and_key():
    frame = pd.DataFrame({"portfolio_id": ["A", "B"]})
    ids = proposal_ids("var_risk", "2026-11-20", frame, ["portfolio_id"])
    assert ids.tolist() == proposal_ids("var_risk", "2026-11-20", frame[::-1], ["portfolio_id"])[::-1].tolist()
    assert ids.nunique() == 2
    assert ids[0] != proposal_ids("var_risk", "2026-11-19", frame, ["portfolio_id"])[0]


def test_parametric_and_historical_var_agree_roughly():
    positions, prices = market.positions("2026-11-20"), market.price_history("2026-11-20")
    parametric = parametric_var(positions, prices).set_index("portfolio_id")["var_99"]
    historical = historical_var(positions, prices).set_index("portfolio_id")["var_99"]
    ratio = parametric / historical
    assert ratio.between(0.6, 1.8).all(), ratio
