"""The trace end to end: a bad partition two hops up, a rewritten input, a decision, the blast radius."""

import json
import subprocess

import dagster as dg
import pytest

from foureyes.cli.trace import format_dot, format_mermaid, format_text
from foureyes.examples.finance_desk.daily_run import run_business_day
from foureyes.examples.finance_desk.definitions import build_definitions
from foureyes.observe.lineage_trace import downstream, trace
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.engine import dispose_all
from foureyes.resources.fallback.check_record import DagsterRecords
from foureyes.resources.lineage.facets import SCHEMA_DIR
from foureyes.resources.settings import FoureyesSettings
from foureyes.resources.warehouse.store import SqlWarehouseResource
from tests.conftest import assert_valid_openlineage
from tests.helpers import cli, home_instance


@pytest.fixture(scope="module")
def bad_vendor_day(tmp_path_factory) -> FoureyesSettings:
    """Two days; on the second the vendor delivered NaN prices (two hops upstream of holdings)."""
    home = tmp_path_factory.mktemp("trace")
    settings = FoureyesSettings.from_env({"FOUREYES_HOME": str(home)})
    instance = home_instance(home)
    assert run_business_day(build_definitions(settings), "2026-11-17", instance).success
    run_business_day(build_definitions(settings, faults="vendor_prices:2026-11-18=nan_prices"), "2026-11-18", instance)
    dispose_all()
    return settings


def _tools(settings):
    control = ControlPlaneResource(url=settings.control_url)
    return control, SqlWarehouseResource(url=settings.warehouse_url)


def _records(settings) -> DagsterRecords:
    return DagsterRecords(home_instance(settings.home), build_definitions(settings).resolve_asset_graph())


def test_the_trace_names_the_bad_partition_two_hops_up_as_the_root_cause(bad_vendor_day):
    control, warehouse = _tools(bad_vendor_day)
    result = trace(control, "holdings", "2026-11-18", records=_records(bad_vendor_day), warehouse=warehouse)
    labels = [hop.label for hop, _ in result.root.walk()]
    assert labels[0] == "holdings[2026-11-18]"
    assert {"positions[2026-11-18]", "market_prices[2026-11-18]", "vendor_prices[2026-11-18]"} <= set(labels)
    prices = next(hop for hop in result.root.inputs if hop.dataset == "market_prices")
    assert "vendor_prices[2026-11-18]" in [hop.label for hop in prices.inputs]  # two hops up, through the prices
    vendor = next(hop for hop, _ in result.root.walk() if hop.dataset == "vendor_prices")
    assert vendor.failed_assertions() == ["no_missing_prices"]
    assert vendor.version == warehouse.partition_record("vendor_prices", "2026-11-18").version
    assert vendor.run_id and vendor.status == "COMPLETE"
    assert result.root_cause.startswith("root cause: vendor_prices[2026-11-18]")
    assert (
        "failed no_missing_prices; it reached holdings[2026-11-18] through market_prices[2026-11-18]"
        in result.root_cause
    )
    text = format_text(result)
    assert "checks: 4/5 passed; FAILED no_missing_prices" in text and text.endswith(result.root_cause)
    assert "color=red" in format_dot(result) and "stroke:#d00" in format_mermaid(result)


def test_the_agent_output_of_that_day_was_degraded_not_corrupted(bad_vendor_day):
    control, warehouse = _tools(bad_vendor_day)
    result = trace(control, "var_risk_proposals", "2026-11-18", records=_records(bad_vendor_day), warehouse=warehouse)
    prices = next(hop for hop in result.root.inputs if hop.dataset == "market_prices")
    assert (prices.requested, prices.partition) == ("2026-11-18", "2026-11-17")
    assert "failed no_missing_prices" in prices.staleness and prices.suspects
    assert result.root_cause.startswith(
        "degraded, not corrupted: market_prices requested 2026-11-18, served 2026-11-17"
    )


def test_the_blast_radius_of_the_bad_partition(bad_vendor_day):
    control, warehouse = _tools(bad_vendor_day)
    records = _records(bad_vendor_day)
    impacts = downstream(control, "vendor_prices", "2026-11-18", records=records, warehouse=warehouse)
    assert {(i.dataset, i.partition, i.depth) for i in impacts} == {
        ("market_prices", "2026-11-18", 1),
        ("holdings", "2026-11-18", 2),
    }  # the agents fell back to the 17th: they are not in it
    clean = {
        (i.dataset, i.partition)
        for i in downstream(control, "market_prices", "2026-11-17", records=records, warehouse=warehouse)
    }
    assert {
        ("var_risk_proposals", "2026-11-17"),
        ("var_risk_proposals", "2026-11-18"),
        ("var_risk_actions", "2026-11-18"),
    } <= clean


def test_a_rewritten_input_shows_the_version_read_and_flags_the_output(tmp_path):
    settings = FoureyesSettings.from_env({"FOUREYES_HOME": str(tmp_path)})  # the dataset names hold the path
    assert run_business_day(build_definitions(settings), "2026-11-17", home_instance(tmp_path)).success
    control, warehouse = _tools(settings)
    read = warehouse.partition_record("positions", "2026-11-17").version
    # positions of the 17th are re-delivered (a correction) after var_risk used them
    job = build_definitions(settings, faults="positions:2026-11-17=stale").resolve_job_def("market_data_daily")
    assert job.execute_in_process(
        partition_key="2026-11-17", asset_selection=[dg.AssetKey("positions")], instance=home_instance(tmp_path)
    ).success
    now = warehouse.partition_record("positions", "2026-11-17").version
    assert now != read
    result = trace(control, "var_risk_proposals", "2026-11-17", records=_records(settings), warehouse=warehouse)
    positions = next(hop for hop in result.root.inputs if hop.dataset == "positions")
    assert (positions.version, positions.current_version) == (read, now)
    assert any(s.startswith("superseded") for s in positions.suspects)
    assert result.root_cause == (
        f"built on a superseded version: positions[2026-11-17] was read at {read[:12]}, now {now[:12]}"
    )


def _cli(settings: FoureyesSettings, *args: str) -> subprocess.CompletedProcess:
    return cli(*args, home=settings.home, timeout=120)


def test_the_cli_traces_a_decision_and_renders_every_format(bad_vendor_day):
    control, _ = _tools(bad_vendor_day)
    decision = control.decision_log.for_partition("var_risk", "2026-11-18")[0]
    text = _cli(bad_vendor_day, "trace", "--proposal", decision.proposal_id[:10])
    assert text.returncode == 0, text.stderr
    header = f"proposal {decision.proposal_id} of var_risk 2026-11-18: {decision.action}\n"
    assert text.stdout.startswith(header), text.stdout[:400]
    assert (
        f"  verdict {decision.verdict.upper()} at " in text.stdout
        and f"  decision: {decision.rationale}" in text.stdout
    )
    assert "market_prices[2026-11-17] (requested 2026-11-18)" in text.stdout
    as_json = json.loads(_cli(bad_vendor_day, "trace", "holdings", "-p", "2026-11-18", "--format", "json").stdout)
    assert as_json["root_cause"].startswith("root cause: vendor_prices[2026-11-18]")
    assert {i["dataset"] for i in as_json["trace"]["inputs"]} == {"market_prices", "positions"}
    shallow = _cli(bad_vendor_day, "trace", "holdings", "-p", "2026-11-18", "--depth", "1").stdout
    assert "market_prices[2026-11-18]" in shallow and "vendor_prices" not in shallow
    assert _cli(bad_vendor_day, "trace", "holdings", "-p", "2026-11-18", "--format", "dot").stdout.startswith("digraph")
    assert _cli(bad_vendor_day, "trace", "holdings", "-p", "2026-11-18", "--format", "mermaid").stdout.startswith(
        "graph RL"
    )
    blast = _cli(bad_vendor_day, "trace", "vendor_prices", "-p", "2026-11-18", "--downstream")
    assert blast.stdout.startswith("2 output partition(s) built on vendor_prices[2026-11-18]")
    missing = _cli(bad_vendor_day, "trace", "--proposal", "zzzzzzzz")
    assert missing.returncode == 1 and "no decision on proposal 'zzzzzzzz'" in missing.stderr


def test_every_event_of_the_faulty_days_is_valid_openlineage_with_our_facets(bad_vendor_day):
    control, _ = _tools(bad_vendor_day)
    events = [e.payload for e in control.lineage_store.events()]
    assert_valid_openlineage(events)
    constrained = next(
        e
        for e in events
        if e["job"]["name"] == "foureyes.var_risk_proposals"
        and e["eventType"] == "COMPLETE"
        and e["run"]["facets"]["foureyes_agent"]["tier"] == "CONSTRAINED"
    )
    prices = next(i for i in constrained["inputs"] if i["name"].endswith("market_prices"))
    assert prices["inputFacets"]["foureyes_fallback"]["servedPartition"] == "2026-11-17"
    assert {p.name for p in SCHEMA_DIR.glob("*.json")} == {"AgentRunFacet.json", "FallbackInputDatasetFacet.json"}
