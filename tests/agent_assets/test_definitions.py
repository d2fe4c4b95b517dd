"""The whole code location loads, and its assets, checks and jobs match the recorded snapshot.

A change to the graph (a new asset, a check that stops blocking, a lost partitions
definition) shows up here as a diff. Refresh deliberately with FOUREYES_UPDATE_SNAPSHOT=1.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from agent_assets.definitions import DAILY_JOB, MARKET_DATA_JOB, build_definitions
from resources.settings import FoureyesSettings

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
    if os.environ.get("FOUREYES_UPDATE_SNAPSHOT") or not SNAPSHOT.exists():
        SNAPSHOT.write_text(json.dumps(current, indent=2) + "\n")
    assert current == json.loads(SNAPSHOT.read_text())


def test_ingestion_and_agents_are_separate_jobs(tmp_path):
    defs = build_definitions(FoureyesSettings.from_env({"FOUREYES_HOME": str(tmp_path)}))

    def keys(job: str) -> set[str]:
        return {k.to_user_string() for k in defs.resolve_job_def(job).asset_layer.executable_asset_keys}

    agents, ingestion = keys(DAILY_JOB), keys(MARKET_DATA_JOB)
    assert {"var_risk_proposals", "var_risk_actions", "rebalancing_actions"} <= agents
    assert {"market_prices", "positions", "holdings"} <= ingestion
    assert not agents & ingestion  # a failed feed never makes Dagster skip an agent
