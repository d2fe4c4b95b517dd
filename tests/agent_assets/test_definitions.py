"""The whole code location loads, and its assets, checks and jobs match the recorded snapshot.

A change to the graph (a new asset, a check that stops blocking, a lost partitions
definition) shows up here as a diff. Refresh deliberately with FOUREYES_UPDATE_SNAPSHOT=1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from foureyes.examples.finance_desk.definitions import DAILY_JOB, MARKET_DATA_JOB, build_definitions
from foureyes.resources.settings import FoureyesSettings
from tests.conftest import ROOT
from tests.helpers import environment_without

SNAPSHOT = Path(__file__).with_name("definitions_snapshot.json")


def _snapshot(tmp_path) -> dict:
    defs = build_definitions(FoureyesSettings.from_env({"FOUREYES_HOME": str(tmp_path)}))
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "partitioned": node.partitions_def is not None,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "kinds": sorted(node.kinds),
            "owners": list(node.owners),
        }
    checks = {}
    for check_key in sorted(graph.asset_check_keys, key=lambda k: (k.asset_key.to_user_string(), k.name)):
        spec = graph.get_check_spec(check_key)
        checks[f"{check_key.asset_key.to_user_string()}:{check_key.name}"] = {
            "blocking": spec.blocking,
            "partitioned": spec.partitions_def is not None,
        }
    return {
        "assets": assets,
        "checks": checks,
        "jobs": sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")),
        "resources": sorted(defs.resources),
        "schedules": {
            s.name: {"cron": s.cron_schedule, "job": s.job_name, "timezone": s.execution_timezone}
            for s in sorted(defs.schedules, key=lambda s: s.name)
        },
        "sensors": sorted(s.name for s in defs.sensors),
    }


def test_definitions_match_the_snapshot(tmp_path):
    current = _snapshot(tmp_path)
    if os.environ.get("FOUREYES_UPDATE_SNAPSHOT"):
        SNAPSHOT.write_text(json.dumps(current, indent=2) + "\n")
    assert SNAPSHOT.exists(), f"{SNAPSHOT} is missing: run with FOUREYES_UPDATE_SNAPSHOT=1 to record it"
    assert current == json.loads(SNAPSHOT.read_text())


def test_ingestion_and_agents_are_separate_jobs(tmp_path):
    defs = build_definitions(FoureyesSettings.from_env({"FOUREYES_HOME": str(tmp_path)}))

    def keys(job: str) -> set[str]:
        return {k.to_user_string() for k in defs.resolve_job_def(job).asset_layer.executable_asset_keys}

    agents, ingestion = keys(DAILY_JOB), keys(MARKET_DATA_JOB)
    assert {"var_risk_proposals", "var_risk_actions", "rebalancing_actions"} <= agents
    assert {"market_prices", "positions", "holdings"} <= ingestion
    assert not agents & ingestion  # a failed feed never makes Dagster skip an agent


def test_a_missing_snapshot_fails_rather_than_records_itself(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "SNAPSHOT", tmp_path / "missing.json")
    monkeypatch.delenv("FOUREYES_UPDATE_SNAPSHOT", raising=False)
    with pytest.raises(AssertionError, match=r"missing\.json is missing: run with FOUREYES_UPDATE_SNAPSHOT=1"):
        test_definitions_match_the_snapshot(tmp_path)
    assert not (tmp_path / "missing.json").exists()


def test_everything_a_check_or_an_agent_reads_is_upstream_of_what_it_judges(tmp_path):
    """So that selecting an asset with its upstream (`*x`) runs what its checks and supervisor read."""
    defs = build_definitions(FoureyesSettings.from_env({"FOUREYES_HOME": str(tmp_path)}))
    graph = defs.resolve_asset_graph()
    missing = {}
    for check_key in graph.asset_check_keys:
        spec = graph.get_check_spec(check_key)
        upstream = dg.AssetSelection.assets(check_key.asset_key).upstream().resolve(graph)
        read = {d.asset_key for d in spec.additional_deps}
        if read - upstream:
            missing[str(check_key)] = sorted(k.to_user_string() for k in read - upstream)
    assert not missing, missing


@pytest.mark.parametrize("agent", ["var_risk", "margin_calls", "rebalancing"])
def test_each_agent_materialises_with_its_upstream_on_an_empty_instance(tmp_path, agent):
    defs = build_definitions(FoureyesSettings.from_env({"FOUREYES_HOME": str(tmp_path)}))
    closure = dg.AssetSelection.assets(f"{agent}_actions").upstream()
    result = defs.get_implicit_global_asset_job_def().execute_in_process(
        asset_selection=list(closure.resolve(defs.resolve_asset_graph())),
        partition_key="2026-11-20",
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )
    failed = [e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert result.success and not failed, failed


def test_the_module_loads_as_dagster_loads_modules_and_materialises_an_agent_with_its_upstream(tmp_path):
    """The desk module with no `-a`, on a brand-new Dagster home, as the issue typed it."""
    env = environment_without(("FOUREYES_", "DAGSTER_HOME"))
    env |= {"FOUREYES_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "dagster")}
    (tmp_path / "dagster").mkdir()
    dagster = str(Path(sys.executable).parent / "dagster")
    validate = subprocess.run(
        [dagster, "definitions", "validate", "-m", "foureyes.examples.finance_desk.definitions"],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert validate.returncode == 0, validate.stderr[-3000:]
    materialize = subprocess.run(
        [dagster, "asset", "materialize", "-m", "foureyes.examples.finance_desk.definitions",
         "--select", "*var_risk_actions", "--partition", "2026-11-20",
         "--config-json", json.dumps({"execution": {"config": {"in_process": {}}}})],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert materialize.returncode == 0, materialize.stderr[-3000:]
    assert "RUN_SUCCESS" in materialize.stderr + materialize.stdout
