"""A rejected agent never leaves a gap: the baseline's proposal stands in for each entity the supervisor rejected.

Real runs: the finance desk's ``var_risk`` with a model on loopback that lies within its
answer schema, and the toy desk with baselines that fill in, crash or have nothing to say.
"""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd
import pytest

from foureyes.checks.replaced_proposals import FILLED_BY_BASELINE, REPLACES
from foureyes.cli.decisions import decision_report, format_report
from foureyes.examples.finance_desk.daily_run import run_business_day
from foureyes.examples.finance_desk.definitions import build_definitions
from foureyes.resources.control_plane.decisions import APPROVED, PENDING, REJECTED
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.settings import FoureyesSettings, sqlite_url
from foureyes.resources.targets.base import booked_actions
from foureyes.resources.warehouse.store import SqlWarehouseResource
from tests.integration.toy_desk import desk, momentum_trader, run_desk
from tests.servers import ModelServer

QUIET_DAY = "2025-07-02"  # no portfolio in breach; the batch engine escalates MACRO and TECH_GROWTH


def _confident_liar(prompt: str) -> dict:
    """Within the answer schema, and wrong: cut every portfolio by 49%, at confidence 0.99."""
    rows = json.loads(prompt)
    return {
        "decisions": [
            {
                "portfolio_id": r["portfolio_id"],
                "action": "reduce_exposure",
                "reduction_pct": 0.49,
                "rationale": "cut exposure now, the model is certain",
                "alternatives": "none",
                "confidence": 0.99,
            }
            for r in rows
        ]
    }


@pytest.fixture(scope="module")
def lied_to(tmp_path_factory):
    """One business day of the finance desk whose only model is the liar."""
    home = tmp_path_factory.mktemp("desk")
    liar = ModelServer(_confident_liar).start()
    try:
        settings = FoureyesSettings.from_env({"FOUREYES_HOME": str(home), "FOUREYES_MODELS": f"liar={liar.url}"})
        day = run_business_day(build_definitions(settings), QUIET_DAY, dg.DagsterInstance.ephemeral(), quiet=True)
    finally:
        liar.stop()
    assert day.success, day.failed_steps()
    return settings, day


def test_every_lie_rejected_still_gets_the_days_escalations_booked(lied_to):
    settings, _ = lied_to
    stored = SqlWarehouseResource(url=settings.warehouse_url).read_partition("var_risk_proposals", QUIET_DAY).frame
    by_portfolio = stored.set_index("portfolio_id")
    assert set(stored["tier"]) == {"PASS_THROUGH"} and by_portfolio["replaces"].str.len().gt(0).all()
    assert by_portfolio["action"].to_dict() == {
        "GLOBAL_EQ": "hold",
        "INCOME": "hold",
        "MACRO": "escalate",
        "TECH_GROWTH": "escalate",
    }
    booked = [
        json.loads(r["payload"]) | {"action": r["action"]}
        for r in booked_actions(settings.warehouse_url, "risk_actions")
    ]
    assert sorted((b["portfolio_id"], b["action"]) for b in booked) == [
        ("MACRO", "escalate"),
        ("TECH_GROWTH", "escalate"),
    ]
    assert all(b["rationale"].startswith("PASS_THROUGH (batch historical VaR)") for b in booked)
    assert all(b["rationale"].endswith("escalate to the risk committee") for b in booked)


def test_the_rejected_lies_stay_on_record_beside_what_replaced_them(lied_to):
    settings, day = lied_to
    control = ControlPlaneResource(url=settings.control_url)
    report = decision_report(control, "var_risk", QUIET_DAY)
    decisions = [r.decision for r in report.records]
    lies = [d for d in decisions if d.action == "reduce_exposure"]
    assert len(lies) == 4 and {d.verdict for d in lies} == {REJECTED}
    assert all(d.confidence == 0.99 and d.model == "liar" and d.tier == "FULL" for d in lies)
    assert all({r.rule for r in d.reasons} == {"reduce_only_on_breach", FILLED_BY_BASELINE} for d in lies)
    stand_ins = [d for d in decisions if d.action != "reduce_exposure"]
    assert {d.verdict for d in stand_ins} == {APPROVED} and {d.tier for d in stand_ins} == {"PASS_THROUGH"}
    assert {d.model for d in stand_ins} == {None}
    lie_ids, stand_in_ids = {d.proposal_id for d in lies}, {d.proposal_id for d in stand_ins}
    assert len(lie_ids | stand_in_ids) == 8, "a replaced proposal has an id of its own"
    assert all(r.outbox is None and r.receipt is None for r in report.records if r.decision in lies)
    assert report.supervision.counts == {
        "proposals": 8,
        "approved": 4,
        "rejected": 4,
        "pending": 0,
        FILLED_BY_BASELINE: 4,
    }
    text = format_report(report)
    assert text.count("reduce_exposure  -> REJECTED  (confidence 0.99)") == 4
    assert "info filled_by_baseline: in place of the agent's reduce_exposure (proposal" in text
    assert "cut proposed although VaR" in text
    (materialization,) = day.agents.asset_materializations_for_node("var_risk_proposals")
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    assert metadata["filled_by_baseline"] == 4 and metadata["rejected_not_filled"] == 0
    assert "portfolio_id=MACRO | reduce_exposure | reduce_only_on_breach" in metadata["baseline_fill"]


# -- the toy desk: P1/X9 is a restricted buy (rejected), P1/X1 waits for approval, P2/X2 is approved --------


def trim(ctx) -> pd.DataFrame:
    """A batch engine that only ever trims: a small sell of everything it is given."""
    return (
        ctx.inputs["signals"]
        .assign(trade_value=-100.0, action="sell", rationale="baseline: trim", confidence=0.9)
        .drop(columns=["score"])
    )


def crash(ctx) -> pd.DataFrame:
    raise RuntimeError("batch engine down")


def only_p2(ctx) -> pd.DataFrame:
    return trim(ctx).query("portfolio_id == 'P2'")


def _toy_run(tmp_path, agent):
    url = sqlite_url(tmp_path / "desk.db")
    instance = dg.DagsterInstance.ephemeral()
    result = run_desk(url, agent, instance=instance)
    assert result.success
    control = ControlPlaneResource(url=url)
    (supervision,) = control.decision_log.latest_supervisions("toy", "d1", limit=1)
    decisions = control.decision_log.of_supervision(supervision.supervision_id)
    stored = SqlWarehouseResource(url=url).read_partition("toy_proposals", "d1").frame
    (materialization,) = result.asset_materializations_for_node("toy_proposals")
    metadata = {k: v.value for k, v in materialization.metadata.items()}
    warnings = [e.user_message for e in instance.all_logs(result.run_id) if e.level == 30]  # logging.WARNING
    booked = {(json.loads(r["payload"])["instrument_id"], r["action"]) for r in booked_actions(url, "toy_books")}
    return stored, decisions, metadata, warnings, booked


def _verdicts(decisions) -> list[tuple[str, str, str]]:
    return [(d.proposal["instrument_id"], d.action, d.verdict) for d in decisions]


def test_only_the_rejected_entity_is_filled_in_and_its_stand_in_executes(tmp_path):
    stored, decisions, metadata, warnings, booked = _toy_run(tmp_path, desk(baseline=trim))
    assert stored[["instrument_id", "action", "tier"]].values.tolist() == [
        ["X1", "buy", "FULL"],
        ["X9", "sell", "PASS_THROUGH"],
        ["X2", "sell", "FULL"],
    ]
    assert stored[REPLACES].astype(bool).tolist() == [False, True, False]
    assert _verdicts(decisions) == [
        ("X1", "buy", PENDING),
        ("X9", "buy", REJECTED),  # the agent's, kept on record
        ("X9", "sell", APPROVED),  # the baseline's, in its place
        ("X2", "sell", APPROVED),
    ]
    rejected, stand_in = decisions[1], decisions[2]
    assert [r.rule for r in rejected.reasons] == ["restricted", FILLED_BY_BASELINE]
    assert rejected.proposal_id != stand_in.proposal_id == stored.loc[1, "proposal_id"]
    assert f"replaced by the baseline's proposal {stand_in.proposal_id} (sell)" in rejected.reasons[-1].message
    assert booked == {("X2", "sell"), ("X9", "sell")}
    assert metadata["filled_by_baseline"] == 1 and metadata["rejected_not_filled"] == 0
    assert any("its baseline's proposals stand in for 1 (tier PASS_THROUGH)" in w for w in warnings)


def test_an_agent_without_a_baseline_is_stored_as_it_proposed_and_cannot_forge_a_replacement(tmp_path):
    forged = json.dumps([{"proposal": {"proposal_id": "forged", "action": "buy"}, "reasons": []}])
    stored, decisions, metadata, warnings, booked = _toy_run(
        tmp_path, desk(propose=lambda ctx: momentum_trader(ctx).assign(replaces=forged))
    )
    assert REPLACES not in stored.columns and set(stored["tier"]) == {"FULL"}
    assert _verdicts(decisions) == [("X1", "buy", PENDING), ("X9", "buy", REJECTED), ("X2", "sell", APPROVED)]
    assert "filled_by_baseline" not in metadata and booked == {("X2", "sell")}
    assert not [w for w in warnings if "baseline" in w]


@pytest.mark.parametrize(
    ("baseline", "why"),
    [
        (crash, "its baseline filled in for none: its baseline failed (RuntimeError: batch engine down)"),
        (
            only_p2,
            "its baseline's proposals stand in for 0 (tier PASS_THROUGH), 1 without a baseline row stays rejected",
        ),
    ],
    ids=["baseline_crashes", "baseline_has_no_row"],
)
def test_a_baseline_that_cannot_fill_in_leaves_the_rejection_as_it_was(tmp_path, baseline, why):
    stored, decisions, metadata, warnings, booked = _toy_run(tmp_path, desk(baseline=baseline))
    assert REPLACES not in stored.columns and set(stored["tier"]) == {"FULL"}
    assert _verdicts(decisions) == [("X1", "buy", PENDING), ("X9", "buy", REJECTED), ("X2", "sell", APPROVED)]
    assert [r.rule for r in decisions[1].reasons] == ["restricted"]
    assert metadata["filled_by_baseline"] == 0 and metadata["rejected_not_filled"] == 1
    assert why in metadata["baseline_fill"] and any(why in w for w in warnings)
    assert booked == {("X2", "sell")}
