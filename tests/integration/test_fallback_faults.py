"""Every injected market-data fault: which partition is served, how stale, in which tier, and saying so."""

import shutil
from pathlib import Path

import dagster as dg
import pytest

from foureyes.examples.finance_desk.daily_run import run_business_day
from foureyes.examples.finance_desk.definitions import build_definitions
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.engine import dispose_all
from foureyes.resources.settings import FoureyesSettings
from foureyes.resources.warehouse.store import SqlWarehouseResource
from tests.conftest import assert_valid_openlineage


@pytest.fixture(scope="module")
def clean_day(tmp_path_factory) -> Path:
    """A home where 2026-11-17 ran clean: the last known good day for every test here."""
    home = tmp_path_factory.mktemp("clean")
    defs = build_definitions(FoureyesSettings.from_env({"FOUREYES_HOME": str(home)}))
    assert run_business_day(defs, "2026-11-17", _instance(home)).success
    dispose_all()
    return home


def _instance(home: Path) -> dg.DagsterInstance:
    """The Dagster instance kept in the home: its record is what "good" is read from, so it is copied too."""
    (home / "dagster").mkdir(exist_ok=True)
    return dg.DagsterInstance.local_temp(tempdir=str(home / "dagster"))


def _faulty_day(clean: Path, tmp_path: Path, faults: str, days=("2026-11-18",)) -> FoureyesSettings:
    home = tmp_path / "home"
    shutil.copytree(clean, home)
    settings = FoureyesSettings.from_env({"FOUREYES_HOME": str(home)})
    instance = _instance(home)
    for day in days:
        run_business_day(build_definitions(settings, faults=faults), day, instance)
    return settings


@pytest.mark.parametrize(
    ("fault", "source", "feed", "failed"),
    [
        ("nan_prices", "vendor_prices", "market_prices", "failed no_missing_prices"),
        ("zero_prices", "vendor_prices", "market_prices", "failed no_missing_prices"),
        ("outliers", "vendor_prices", "market_prices", "failed no_outliers"),
        ("stale", "vendor_prices", "market_prices", "failed freshness"),
        ("schema_drift", "vendor_prices", "market_prices", "failed schema"),
        ("missing", "vendor_prices", "market_prices", "missing"),
        ("missing", "positions", "positions", "missing"),
    ],
)
def test_a_bad_feed_partition_is_replaced_by_the_last_good_one_and_the_output_says_so(
    clean_day, tmp_path, fault, source, feed, failed
):
    settings = _faulty_day(clean_day, tmp_path, f"{source}:2026-11-18={fault}")
    control = ControlPlaneResource(url=settings.control_url)
    run = control.agent_runs.latest("var_risk", "2026-11-18")
    stale = {i["input"]: i for i in run.inputs if i["stale"]}
    assert list(stale) == [feed]
    assert (stale[feed]["requested"], stale[feed]["served"], stale[feed]["age"], stale[feed]["age_unit"]) == (
        "2026-11-18",
        "2026-11-17",
        1,
        "business day",
    )
    reason = stale[feed]["reason"]
    if failed == "missing":
        assert reason == "requested partition missing"
    else:  # every blocking check that failed, by name
        assert reason.startswith("requested partition failed ") and failed.split()[-1] in reason.split(" ", 3)[3]
    assert run.tier == "CONSTRAINED"

    proposals = (
        SqlWarehouseResource(url=settings.warehouse_url).read_partition("var_risk_proposals", "2026-11-18").frame
    )
    assert set(proposals["tier"]) == {"CONSTRAINED"}
    assert proposals["served_inputs"].str.startswith(f"{feed}: served 2026-11-17 for 2026-11-18").all()
    decisions = control.decision_log.for_partition("var_risk", "2026-11-18")
    assert decisions and {d.tier for d in decisions} == {"CONSTRAINED"}

    events = [e.payload for e in control.lineage_store.events()]
    assert_valid_openlineage(events)
    complete = next(
        e
        for e in reversed(events)
        if e["job"]["name"] == "foureyes.var_risk_proposals" and e["eventType"] == "COMPLETE"
    )
    fed = next(i for i in complete["inputs"] if i["name"].endswith(feed))
    assert fed["inputFacets"]["foureyes_fallback"]["servedPartition"] == "2026-11-17"
    assert fed["inputFacets"]["subset"]["inputCondition"]["partitions"][0]["identifier"] == "2026-11-17"
    assert complete["run"]["facets"]["foureyes_agent"]["tier"] == "CONSTRAINED"


def test_constrained_var_widens_with_staleness_and_rebalancing_stops_trading(clean_day, tmp_path):
    settings = _faulty_day(clean_day, tmp_path, "vendor_prices:2026-11-18=outliers")
    warehouse = SqlWarehouseResource(url=settings.warehouse_url)
    var = warehouse.read_partition("var_risk_proposals", "2026-11-18").frame.set_index("portfolio_id")
    clean = warehouse.read_partition("var_risk_proposals", "2026-11-17").frame.set_index("portfolio_id")
    # same prices (the 17th's) and nearly the same book: VaR widened by about sqrt(2)
    assert ((var["var_99"] / clean["var_99"]).between(1.3, 1.55)).all()
    trades = warehouse.read_partition("rebalancing_proposals", "2026-11-18").frame
    assert trades.empty
    run = ControlPlaneResource(url=settings.control_url).agent_runs.latest("rebalancing", "2026-11-18")
    assert run.tier == "CONSTRAINED" and "market_prices: served 2026-11-17" in run.tier_reason


def test_past_the_maximum_staleness_the_baseline_reports(clean_day, tmp_path):
    settings = _faulty_day(
        clean_day,
        tmp_path,
        "exposures:2026-11-18=missing;exposures:2026-11-19=missing",
        days=("2026-11-18", "2026-11-19"),
    )
    control = ControlPlaneResource(url=settings.control_url)
    assert control.agent_runs.latest("margin_calls", "2026-11-18").tier == "CONSTRAINED"
    run = control.agent_runs.latest("margin_calls", "2026-11-19")
    assert run.tier == "PASS_THROUGH"
    assert (
        "exposures: served 2026-11-17 for 2026-11-19 (2 business days old, beyond the 1-business day limit"
        in run.tier_reason
    )
    report = (
        SqlWarehouseResource(url=settings.warehouse_url).read_partition("margin_calls_proposals", "2026-11-19").frame
    )
    assert len(report) == 8 and set(report["action"]) == {"escalate"} and set(report["tier"]) == {"PASS_THROUGH"}
    assert {d.verdict for d in control.decision_log.for_partition("margin_calls", "2026-11-19")} == {"approved"}
