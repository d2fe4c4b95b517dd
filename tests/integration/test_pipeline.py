"""The whole skeleton, end to end, on SQLite and PostgreSQL: real Dagster runs over partitions."""

import dagster as dg

from foureyes.examples.finance_desk.daily_run import run_business_day
from foureyes.examples.finance_desk.definitions import build_definitions
from foureyes.observe.lineage_trace import trace
from foureyes.resources.control_plane.decisions import APPROVED, PENDING, REJECTED
from foureyes.resources.control_plane.receipts import EXECUTED
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.targets.base import booked_actions
from foureyes.resources.warehouse.store import SqlWarehouseResource
from tests.conftest import assert_valid_openlineage

DAYS = ["2026-11-17", "2026-11-18", "2026-11-19"]


def _run(settings, partition, instance, faults=""):
    """Ingest the day, then run the agents (two runs); the agents' result, with .market_data set."""
    return run_business_day(build_definitions(settings, faults=faults), partition, instance)


def _rules_check(result, asset: str) -> dg.AssetCheckEvaluation:
    return next(
        e
        for e in result.get_asset_check_evaluations()
        if e.check_name == "business_rules" and e.asset_key.to_user_string() == asset
    )


BOOKS = {"var_risk": "risk_actions", "margin_calls": "margin_calls_issued", "rebalancing": "orders"}


def _latest_decisions(control, agent, day):
    supervision = control.decision_log.latest_supervisions(agent, day)[0]
    return control.decision_log.of_supervision(supervision.supervision_id)


def test_supervised_week_books_only_approved_actions_once(settings):
    instance = dg.DagsterInstance.ephemeral()
    control = ControlPlaneResource(url=settings.control_url)

    faults = "vendor_prices:2026-11-18=outliers"
    results = {day: _run(settings, day, instance, faults) for day in DAYS}
    assert all(r.success for r in results.values())

    booked_counts = {}
    for agent, table in BOOKS.items():
        booked = booked_actions(settings.warehouse_url, table)
        booked_counts[agent] = len(booked)
        decisions = [d for day in DAYS for d in _latest_decisions(control, agent, day)]
        approved = {d.proposal_id for d in decisions if d.verdict == APPROVED and d.action != "hold"}
        not_approved = {d.proposal_id for d in decisions if d.verdict != APPROVED}
        assert {row["proposal_id"] for row in booked} == approved, agent
        assert not not_approved & {row["proposal_id"] for row in booked}, agent
        receipts = [r for day in DAYS for r in control.receipts.for_partition(agent, day)]
        assert {r.idempotency_key for r in receipts} == {row["idempotency_key"] for row in booked}
        assert all(r.status == EXECUTED and r.executed_at for r in receipts), [(r.status, r.detail) for r in receipts]
        # the first delivery booked each action, and its receipt says so (not "duplicate")
        assert all(r.detail["target_status"] == "executed" and r.detail["booked"] for r in receipts), agent
    rejected = [d for day in DAYS for a in BOOKS for d in _latest_decisions(control, a, day) if d.verdict == REJECTED]
    assert rejected, "the rebalancing agent proposes restricted buys every day: the supervisor rejects them"
    pending = [d for day in DAYS for a in BOOKS for d in _latest_decisions(control, a, day) if d.verdict == PENDING]
    assert pending, "large actions should wait for approval"

    # rejections are WARN (dropped); the outlier prices failed their quality check (WARN too),
    # and the agents reading prices ran CONSTRAINED on the last good file instead
    rules = _rules_check(results["2026-11-17"].agents, "rebalancing_proposals")
    assert rules.passed is False and rules.severity == dg.AssetCheckSeverity.WARN and rules.partition == "2026-11-17"
    checks = {
        e.check_name: e
        for e in results["2026-11-18"].market_data.get_asset_check_evaluations()
        if e.asset_key.to_user_string() == "market_prices"
    }
    assert checks["no_outliers"].passed is False and checks["no_outliers"].severity == dg.AssetCheckSeverity.WARN
    assert checks["schema"].passed and checks["freshness"].passed
    run = control.agent_runs.latest("var_risk", "2026-11-18")
    assert run.tier == "CONSTRAINED"
    assert [(i["input"], i["served"], i["age"]) for i in run.inputs if i["stale"]] == [
        ("market_prices", "2026-11-17", 1)
    ]
    assert all(d.tier == "CONSTRAINED" for d in _latest_decisions(control, "var_risk", "2026-11-18"))
    tags = instance.get_run_by_id(results["2026-11-18"].agents.run_id).tags
    assert tags["foureyes/tier"] == "CONSTRAINED" and tags["foureyes/tier/margin_calls"] == "FULL"

    # re-materialising every partition executes nothing twice
    for day in DAYS:
        assert _run(settings, day, instance, faults).success
    for agent, table in BOOKS.items():
        assert len(booked_actions(settings.warehouse_url, table)) == booked_counts[agent]
    actions = SqlWarehouseResource(url=settings.warehouse_url).read_partition("var_risk_actions", "2026-11-19").frame
    assert set(actions["status"]) == {"already_executed"}
    assert actions["detail"].str.startswith("delivered").all()


def test_lineage_is_valid_openlineage_and_traces_to_the_served_versions(settings):
    instance = dg.DagsterInstance.ephemeral()
    assert _run(settings, "2026-11-20", instance).success
    control = ControlPlaneResource(url=settings.control_url)
    events = [e.payload for e in control.lineage_store.events()]
    assert_valid_openlineage(events)
    jobs = {(e["job"]["name"], e["eventType"]) for e in events}
    for asset in ["var_risk_proposals", "var_risk_actions"]:  # the agent's steps; the feeds are plain assets
        assert {(f"foureyes.{asset}", "START"), (f"foureyes.{asset}", "COMPLETE")} <= jobs

    warehouse = SqlWarehouseResource(url=settings.warehouse_url)
    result = trace(control, "var_risk_proposals", "2026-11-20", warehouse=warehouse)
    served = {i.dataset: (i.partition, i.version) for i in result.root.inputs}
    assert served == {
        "positions": ("2026-11-20", warehouse.partition_record("positions", "2026-11-20").version),
        "market_prices": (
            "2026-11-20",
            warehouse.partition_record("market_prices", "2026-11-20").version,
        ),
        "portfolios": ("__all__", warehouse.partition_record("portfolios", None).version),
    }
    assert result.root.version == warehouse.partition_record("var_risk_proposals", "2026-11-20").version


def test_a_failing_step_sends_fail_with_the_error(settings):
    day = _run(settings, "2026-11-20", dg.DagsterInstance.ephemeral(), faults="vendor_prices:2026-11-20=schema_drift")
    assert not day.success
    failure = next(e for e in day.market_data.all_events if e.event_type_value == "STEP_FAILURE")
    assert failure.step_key == "holdings"  # a plain asset: its failure is in Dagster's record
    assert "input 'market_prices' lacks column(s) ['close']" in str(failure.event_specific_data.error)
    events = [e.payload for e in ControlPlaneResource(url=settings.control_url).lineage_store.events()]
    assert_valid_openlineage(events)
    fails = {e["job"]["name"]: e for e in events if e["eventType"] == "FAIL"}
    # with no good price file on record at all, not even the baseline can report: a clear FAIL
    var_risk = fails["foureyes.var_risk_proposals"]["run"]["facets"]["errorMessage"]["message"]
    assert "var_risk has no usable market_prices" in var_risk and "schema; no good partition before it" in var_risk


def test_a_missing_feed_fails_ingestion_clearly_and_the_agents_still_run(settings):
    instance = dg.DagsterInstance.ephemeral()
    assert _run(settings, "2026-11-19", instance).success
    day = _run(settings, "2026-11-20", instance, faults="positions:2026-11-20=missing")
    failure = next(e for e in day.market_data.all_events if e.event_type_value == "STEP_FAILURE")
    assert failure.step_key == "positions"
    assert "the market feed did not deliver positions for 2026-11-20" in str(failure.event_specific_data.error)
    assert day.agents.success
    run = ControlPlaneResource(url=settings.control_url).agent_runs.latest("var_risk", "2026-11-20")
    assert run.tier == "CONSTRAINED" and "positions: served 2026-11-19 for 2026-11-20" in run.tier_reason
