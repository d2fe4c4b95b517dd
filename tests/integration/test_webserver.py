"""Through the real webserver: `dagster dev` on workspace.yaml, driven by Dagster's GraphQL client.

One ``dagster dev`` (webserver and daemon, with ``deploy/dagster.yaml``) serves the module:
a materialisation launched through GraphQL is followed by the agents, launched by the
market-data sensor; check results and metadata are read back through GraphQL; a backfill
over a partition range is launched as the UI does, and one from the Dagster CLI; and a
headless Chromium opens the asset graph and saves a screenshot in ``test-artifacts/``.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.conftest import ROOT
from tests.dagster_dev import (
    ASSET_KEYS,
    BACKFILL,
    BIN,
    CHECK_EXECUTIONS,
    FINISHED,
    LAUNCH_BACKFILL,
    Webserver,
    dagster_dev,
    wait_for,
)

ARTIFACTS = ROOT / "test-artifacts"
DAY = "2026-11-19"


@pytest.fixture(scope="module")
def webserver(tmp_path_factory) -> Webserver:
    with dagster_dev(tmp_path_factory.mktemp("webserver"), ROOT / "deploy" / "dagster.yaml") as server:
        yield server


def test_the_graph_reads_as_the_patterns(webserver):
    nodes = {"/".join(n["assetKey"]["path"]): n for n in webserver.query(ASSET_KEYS)["assetNodes"]}
    for agent in ("var_risk", "margin_calls", "rebalancing"):
        assert nodes[f"{agent}_proposals"]["groupName"] == agent and nodes[f"{agent}_actions"]["groupName"] == agent
    assert nodes["market_prices"]["groupName"] == "market_data" and nodes["market_prices"]["isPartitioned"]


def test_a_launched_materialisation_runs_the_agents_and_reads_back_through_graphql(webserver):
    run_id = webserver.client.submit_job_execution("market_data_daily", tags={"dagster/partition": DAY})
    wait_for(lambda: webserver.client.get_run_status(run_id).value in FINISHED, "the market-data run")
    assert webserver.client.get_run_status(run_id).value == "SUCCESS", webserver.log.read_text()[-4000:]

    (agents_run,) = webserver.finished_runs("foureyes_daily", **{"dagster/partition": DAY})  # the sensor's
    tags = {t["key"]: t["value"] for t in agents_run["tags"]}
    assert agents_run["status"] == "SUCCESS" and tags["foureyes/market_data_run"] == run_id
    assert tags["foureyes/trigger"] == "market_data" and tags["foureyes/tier"] == "FULL"

    (rules,) = webserver.query(
        CHECK_EXECUTIONS, key={"path": ["var_risk_proposals"]}, check="business_rules", partition=DAY
    )["assetCheckExecutions"]
    assert rules["status"] == "SUCCEEDED" and rules["evaluation"]["partition"] == DAY
    verdicts = {e["label"]: e.get("mdStr") for e in rules["evaluation"]["metadataEntries"]}["verdicts"]
    assert "approved**" in verdicts and "| proposal | action | verdict |" in verdicts

    proposals = webserver.materialization("var_risk_proposals", DAY)
    assert proposals["foureyes/tier"] == "FULL" and proposals["stale_inputs"] == 0
    assert (
        "tier **FULL**" in proposals["summary"]
        and f"(/assets/var_risk_actions?view=partitions&partition={DAY})" in (proposals["summary"])
    )
    actions = webserver.materialization("var_risk_actions", DAY)
    assert actions["_run"] == agents_run["runId"]
    summary = actions["summary"]
    assert "### Supervisor verdicts" in summary and "### Actions" in summary
    assert f"(/assets/var_risk_proposals?view=partitions&partition={DAY})" in summary
    assert f"foureyes decisions --agent var_risk --partition {DAY}" in summary

    decisions = webserver.foureyes("decisions", "--agent", "var_risk", "-p", DAY, "--format", "json")
    assert decisions.returncode == 0, decisions.stderr
    assert json.loads(decisions.stdout)["counts"]["proposals"] == len(
        [line for line in verdicts.splitlines() if line.startswith("| ") and "proposal" not in line]
    )


def test_a_backfill_over_a_partition_range_as_the_ui_launches_it(webserver):
    nodes = webserver.query(ASSET_KEYS)["assetNodes"]
    partitioned = [{"path": n["assetKey"]["path"]} for n in nodes if n["isPartitioned"]]
    launched = webserver.query(
        LAUNCH_BACKFILL,
        params={"assetSelection": partitioned, "partitionNames": ["2026-11-16", "2026-11-17"]},
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill = launched["backfillId"]

    def settled():
        status = webserver.query(BACKFILL, id=backfill)["partitionBackfillOrError"]["status"]
        return status if status in {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED"} else None

    assert wait_for(settled, f"backfill {backfill}", timeout=600, every=2) in {"COMPLETED", "COMPLETED_SUCCESS"}
    for day in ("2026-11-16", "2026-11-17"):
        done = webserver.foureyes("decisions", "--agent", "margin_calls", "-p", day, "--format", "json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["decisions"][0]["tier"] == "FULL"


def test_a_backfill_from_the_dagster_cli_runs_through_the_queue(webserver):
    days = ["2026-11-17", "2026-11-18"]
    done = subprocess.run(
        [str(BIN / "dagster"), "job", "backfill", "-w", "workspace.yaml", "-j", "foureyes_daily",
         "--from", days[0], "--to", days[-1], "--noprompt"],
        env=webserver.env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    launched = re.search(r"Launched backfill job `(\w+)`", done.stdout + done.stderr)
    assert launched, done.stdout + done.stderr
    backfill = launched.group(1)
    runs = webserver.finished_runs("foureyes_daily", count=2, **{"dagster/backfill": backfill})
    assert all(r["status"] == "SUCCESS" for r in runs)
    tiers = {
        {t["key"]: t["value"] for t in r["tags"]}["dagster/partition"]: {t["key"]: t["value"] for t in r["tags"]}[
            "foureyes/tier"
        ]
        for r in runs
    }
    assert tiers == {"2026-11-17": "FULL", "2026-11-18": "CONSTRAINED"}  # no market data for the 18th: last good
    status = webserver.foureyes("status", "--format", "json")
    assert status.returncode == 0, status.stdout + status.stderr
    assert all(a["phase"] == "idle" and not a["stuck"] for a in json.loads(status.stdout)["agents"])


def test_the_asset_graph_opens_in_a_browser(webserver):
    chromium = subprocess.run(
        [str(ROOT / ".ci" / "chromium")], capture_output=True, text=True, check=True, timeout=900
    ).stdout.strip()
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "asset-graph.png"
    shot.unlink(missing_ok=True)
    webserver.query("mutation { setNuxSeen }")  # the one-time "join the community" dialog, dismissed
    url = f"http://127.0.0.1:{webserver.port}/locations/__repository__@finance_desk/asset-groups/var_risk"
    browser = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--window-size=1600,1000",
        "--virtual-time-budget=30000",
    ]
    dom = subprocess.run([*browser, "--dump-dom", url], capture_output=True, text=True, timeout=180, check=True)
    for asset in ("var_risk_proposals", "var_risk_actions", "market_prices", "positions"):
        assert asset in dom.stdout, f"{asset} not rendered in the asset graph"
    assert "Join the Dagster community" not in dom.stdout
    subprocess.run([*browser, f"--screenshot={shot}", url], capture_output=True, timeout=180, check=True)
    assert shot.stat().st_size > 30_000  # a rendered graph, not a blank page
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
