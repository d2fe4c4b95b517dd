"""The whole skeleton, end to end, on SQLite and PostgreSQL: real Dagster runs over partitions."""

from dataclasses import replace

import dagster as dg

from agent_assets.definitions import DAILY_JOB, build_definitions
from agent_assets.trace import trace
from resources.action_targets import SqlBooksTarget
from resources.control_plane import ControlPlaneResource
from resources.decision_log import APPROVED, PENDING, REJECTED
from resources.receipts import EXECUTED
from resources.warehouse import SqlWarehouseResource
from tests.conftest import assert_valid_openlineage

DAYS = ["2026-11-17", "2026-11-18", "2026-11-19"]


def _run(settings, partition, instance, **kwargs):
    job = build_definitions(settings).resolve_job_def(DAILY_JOB)
    return job.execute_in_process(partition_key=partition, instance=instance, raise_on_error=False, **kwargs)


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
    settings = replace(settings, faults="market_prices:2026-11-18=outliers")
    instance = dg.DagsterInstance.ephemeral()
    control = ControlPlaneResource(url=settings.control_url)

    results = {day: _run(settings, day, instance) for day in DAYS}
    assert all(r.success for r in results.values())

    booked_counts = {}
    for agent, table in BOOKS.items():
        booked = SqlBooksTarget(url=settings.warehouse_url, table=table).booked()
        booked_counts[agent] = len(booked)
        decisions = [d for day in DAYS for d in _latest_decisions(control, agent, day)]
        approved = {d.proposal_id for d in decisions if d.verdict == APPROVED and d.action != "hold"}
        not_approved = {d.proposal_id for d in decisions if d.verdict != APPROVED}
        assert {row["proposal_id"] for row in booked} == approved, agent
        assert not not_approved & {row["proposal_id"] for row in booked}, agent
        receipts = [r for day in DAYS for r in control.receipts.for_partition(agent, day)]
        assert {r.idempotency_key for r in receipts} == {row["idempotency_key"] for row in booked}
        assert all(r.status == EXECUTED and r.executed_at for r in receipts), [
            (r.status, r.detail) for r in receipts
        ]
    rejected = [
        d for day in DAYS for d in _latest_decisions(control, "var_risk", day) if d.verdict == REJECTED
    ]
    assert rejected, "the outlier day should have rejected var_risk proposals"
    pending = [
        d for day in DAYS for a in BOOKS for d in _latest_decisions(control, a, day) if d.verdict == PENDING
    ]
    assert pending, "large actions should wait for approval"

    # the rules check reported the rejections as a WARN on the outlier day only
    outlier_check = _rules_check(results["2026-11-18"], "var_risk_proposals")
    assert outlier_check.passed is False and outlier_check.severity == dg.AssetCheckSeverity.WARN
    assert outlier_check.partition == "2026-11-18"
    assert outlier_check.metadata["rule/plausible_var"].value >= 1
    assert _rules_check(results["2026-11-17"], "var_risk_proposals").passed

    # re-materialising every partition executes nothing twice
    for day in DAYS:
        assert _run(settings, day, instance).success
    for agent, table in BOOKS.items():
        assert len(SqlBooksTarget(url=settings.warehouse_url, table=table).booked()) == booked_counts[agent]
    actions = (
        SqlWarehouseResource(url=settings.warehouse_url)
        .read_partition("var_risk_actions", "2026-11-19")
        .frame
    )
    assert set(actions["status"]) == {"skipped"}
    assert actions["detail"].str.startswith("already executed").all()


def test_a_schema_failure_blocks_the_executor_in_the_same_run(settings):
    settings = replace(settings, faults="market_prices:2026-11-18=nan_prices")
    instance = dg.DagsterInstance.ephemeral()
    result = _run(settings, "2026-11-18", instance)
    assert not result.success
    steps = {
        e.step_key: e.event_type_value for e in result.all_events if e.event_type_value.startswith("STEP_")
    }
    assert steps["var_risk_supervisor"] == "STEP_FAILURE"
    assert "var_risk_actions" not in {
        e.step_key for e in result.all_events if e.event_type_value == "STEP_START"
    }
    decisions = ControlPlaneResource(url=settings.control_url).decision_log.for_partition(
        "var_risk", "2026-11-18"
    )
    assert decisions and all(d.verdict == REJECTED for d in decisions)
    assert all(d.reasons[0].rule == "proposals_schema" for d in decisions)
    supervision = ControlPlaneResource(url=settings.control_url).decision_log.latest_supervisions("var_risk")[
        0
    ]
    assert supervision.blocked and "failed its schema" in supervision.block_reason
    assert SqlBooksTarget(url=settings.warehouse_url, table="risk_actions").booked() == []


def test_the_executor_acts_on_nothing_without_verdicts_for_that_version(settings):
    defs = build_definitions(settings)
    result = dg.materialize(
        [*defs.assets, *defs.asset_checks],
        selection=dg.AssetSelection.all().without_checks(),  # the supervisor does not run: no verdicts
        partition_key="2026-11-20",
        resources=defs.resources,
        raise_on_error=False,
    )
    assert result.success
    assert SqlBooksTarget(url=settings.warehouse_url, table="risk_actions").booked() == []
    actions = SqlWarehouseResource(url=settings.warehouse_url).read_partition(
        "var_risk_actions", "2026-11-20"
    )
    assert actions.frame.empty


def test_lineage_is_valid_openlineage_and_traces_to_the_served_versions(settings):
    instance = dg.DagsterInstance.ephemeral()
    assert _run(settings, "2026-11-20", instance).success
    control = ControlPlaneResource(url=settings.control_url)
    events = [e.payload for e in control.lineage_store.events()]
    assert_valid_openlineage(events)
    jobs = {(e["job"]["name"], e["eventType"]) for e in events}
    for asset in ["market_prices", "positions", "var_risk_proposals", "var_risk_actions"]:
        assert (f"agent_assets.{asset}", "START") in jobs and (
            f"agent_assets.{asset}",
            "COMPLETE",
        ) in jobs

    warehouse = SqlWarehouseResource(url=settings.warehouse_url)
    result = trace(control.lineage_store, warehouse, "var_risk_proposals", "2026-11-20")
    served = {i.dataset: (i.partition, i.version) for i in result.inputs}
    assert served == {
        "positions": ("2026-11-20", warehouse.partition_record("positions", "2026-11-20").version),
        "market_prices": (
            "2026-11-20",
            warehouse.partition_record("market_prices", "2026-11-20").version,
        ),
        "portfolios": ("__all__", warehouse.partition_record("portfolios", None).version),
    }
    assert result.version == warehouse.partition_record("var_risk_proposals", "2026-11-20").version


def test_a_failing_step_sends_fail_with_the_error(settings):
    settings = replace(settings, faults="market_prices:2026-11-20=schema_drift")
    result = _run(settings, "2026-11-20", dg.DagsterInstance.ephemeral())
    assert not result.success
    events = [e.payload for e in ControlPlaneResource(url=settings.control_url).lineage_store.events()]
    assert_valid_openlineage(events)
    fails = {e["job"]["name"]: e for e in events if e["eventType"] == "FAIL"}
    assert {"agent_assets.var_risk_proposals", "agent_assets.holdings"} <= set(fails)
    fail = fails["agent_assets.var_risk_proposals"]
    message = fail["run"]["facets"]["errorMessage"]["message"]
    assert "input 'market_prices' lacks column(s) ['close']" in message
    assert any(i["name"].endswith("market_prices") for i in fail["inputs"])


def test_a_missing_feed_fails_its_step_clearly_and_nothing_downstream_runs(settings):
    settings = replace(settings, faults="positions:2026-11-20=missing")
    result = _run(settings, "2026-11-20", dg.DagsterInstance.ephemeral())
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert failure.step_key == "positions"
    assert "the market feed did not deliver positions for 2026-11-20" in str(
        failure.event_specific_data.error
    )
    started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert not started & {"var_risk_proposals", "var_risk_actions"}
