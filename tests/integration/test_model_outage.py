"""The agents and the model chain: which model answered is on record, and no model means no missing report."""

import json

import dagster as dg

from foureyes.examples.finance_desk.daily_run import run_business_day
from foureyes.examples.finance_desk.definitions import build_definitions
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.fallback.model_chain import ModelBackend, ModelChainResource
from foureyes.resources.settings import FoureyesSettings
from foureyes.resources.warehouse.store import SqlWarehouseResource
from tests.servers import GARBAGE, ModelServer

DAYS = ["2026-11-18", "2026-11-19", "2026-11-20"]


def _cautious_model(prompt: str) -> dict:
    """A model that escalates every portfolio (and says so)."""
    rows = json.loads(prompt)
    return {
        "decisions": [
            {
                "portfolio_id": r["portfolio_id"],
                "action": "escalate",
                "reduction_pct": 0.0,
                "rationale": f"model: {r['portfolio_id']} deserves a human look today",
                "confidence": 0.8,
            }
            for r in rows
        ]
    }


def test_the_backend_that_answered_is_in_every_decision(tmp_path):
    garbled, good = ModelServer(_cautious_model).start(), ModelServer(_cautious_model).start()
    garbled.mode = GARBAGE
    try:
        settings = FoureyesSettings.from_env(
            {"FOUREYES_HOME": str(tmp_path), "FOUREYES_MODELS": f"garbled={garbled.url};good={good.url}"}
        )
        assert run_business_day(build_definitions(settings), "2026-11-20", dg.DagsterInstance.ephemeral()).success
    finally:
        garbled.stop()
        good.stop()
    control = ControlPlaneResource(url=settings.control_url)
    run = control.agent_runs.latest("var_risk", "2026-11-20")
    assert run.tier == "FULL" and run.model == "good"
    assert [(a["backend"], a["outcome"]) for a in run.model_attempts] == [
        ("garbled", "unparseable"),
        ("good", "ok"),
    ]
    decisions = control.decision_log.for_partition("var_risk", "2026-11-20")
    assert {d.model for d in decisions} == {"good"} and {d.action for d in decisions} == {"escalate"}
    assert all(d.rationale.startswith("model: ") for d in decisions)


def test_with_every_model_backend_disabled_every_partition_still_gets_its_report(tmp_path):
    settings = FoureyesSettings.from_env({"FOUREYES_HOME": str(tmp_path)})
    nobody = ModelChainResource(
        control_url=settings.control_url,
        backends=[ModelBackend(name="local_policy", kind="local_policy", enabled=False)],
    )
    defs = build_definitions(settings, overrides={"foureyes_models": nobody})
    instance = dg.DagsterInstance.ephemeral()
    for day in DAYS:
        assert run_business_day(defs, day, instance).success
    control = ControlPlaneResource(url=settings.control_url)
    warehouse = SqlWarehouseResource(url=settings.warehouse_url)
    for day in DAYS:
        run = control.agent_runs.latest("var_risk", day)
        assert run.tier == "PASS_THROUGH"
        assert "every model backend failed (local_policy: disabled)" in run.tier_reason
        report = warehouse.read_partition("var_risk_proposals", day).frame
        assert len(report) == 4 and report["var_99"].gt(0).all()
        assert set(report["tier"]) == {"PASS_THROUGH"} and set(report["action"]) <= {"hold", "escalate"}
        assert report["rationale"].str.startswith("PASS_THROUGH (batch historical VaR)").all()
