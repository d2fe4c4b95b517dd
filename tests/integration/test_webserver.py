"""Through the real webserver: `dagster dev` on workspace.yaml, driven by Dagster's GraphQL client.

One ``dagster dev`` (webserver and daemon, with ``deploy/dagster.yaml``) serves the module:
a materialisation launched through GraphQL is followed by the agents, launched by the
market-data sensor; check results and metadata are read back through GraphQL; a backfill
over a partition range is launched as the UI does, and one from the Dagster CLI; and a
headless Chromium opens the asset graph and saves a screenshot in ``test-artifacts/``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from tests.conftest import ROOT
from tests.servers import free_port

BIN = Path(sys.executable).parent
ARTIFACTS = ROOT / "test-artifacts"
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}
DAY = "2026-11-19"

RUNS = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) { ... on Runs { results { runId status tags { key value } } } }
}"""
CHECK_EXECUTIONS = """
query Checks($key: AssetKeyInput!, $check: String!, $partition: String) {
  assetCheckExecutions(assetKey: $key, checkName: $check, partition: $partition, limit: 1) {
    status
    evaluation { success partition metadataEntries { label ... on MarkdownMetadataEntry { mdStr } } }
  }
}"""
MATERIALIZATIONS = """
query Materializations($key: AssetKeyInput!, $partition: String!) {
  assetOrError(assetKey: $key) {
    ... on Asset {
      assetMaterializations(partitions: [$partition], limit: 1) {
        runId
        partition
        metadataEntries {
          label
          ... on MarkdownMetadataEntry { mdStr }
          ... on TextMetadataEntry { text }
          ... on IntMetadataEntry { intValue }
        }
      }
    }
  }
}"""
LAUNCH_BACKFILL = """
mutation Backfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}"""
BACKFILL = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } }
}"""
ASSET_KEYS = """
{ assetNodes { assetKey { path } groupName isPartitioned } }
"""


def _wait_for(condition: Callable[[], object], what: str, timeout: float = 300.0, every: float = 1.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class Webserver:
    """A running `dagster dev` and the ways the tests talk to it."""

    def __init__(self, port: int, env: dict[str, str], log: Path):
        self.port, self.env, self.log = port, env, log
        self.client = DagsterGraphQLClient("127.0.0.1", port_number=port)

    def query(self, document: str, **variables) -> dict:
        return self.client._execute(document, variables)

    def runs(self, job: str | None = None, **tags: str) -> list[dict]:
        run_filter: dict = {"tags": [{"key": k, "value": v} for k, v in tags.items()]}
        if job:
            run_filter["pipelineName"] = job
        return self.query(RUNS, filter=run_filter)["runsOrError"]["results"]

    def finished_runs(self, job: str | None = None, count: int = 1, **tags: str) -> list[dict]:
        def done():
            found = self.runs(job, **tags)
            return found if len(found) >= count and all(r["status"] in FINISHED for r in found) else None

        return _wait_for(done, f"{count} finished {job or ''} run(s) tagged {tags} (see {self.log})")

    def materialization(self, asset: str, partition: str) -> dict[str, object]:
        found = self.query(MATERIALIZATIONS, key={"path": [asset]}, partition=partition)
        (event,) = found["assetOrError"]["assetMaterializations"]
        return {e["label"]: e.get("mdStr", e.get("text", e.get("intValue"))) for e in event["metadataEntries"]} | {
            "_run": event["runId"]
        }

    def foureyes(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "foureyes"), *args], env=self.env, cwd=ROOT, capture_output=True, text=True, check=False
        )


@pytest.fixture(scope="module")
def webserver(tmp_path_factory) -> Webserver:
    home = tmp_path_factory.mktemp("webserver")
    dagster_home = home / "dagster"
    dagster_home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FOUREYES_", "DAGSTER_"))}
    env |= {"FOUREYES_HOME": str(home / "foureyes"), "DAGSTER_HOME": str(dagster_home)}
    port = free_port()
    log = home / "dagster-dev.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Webserver(port, env, log)

    def loaded():
        assert process.poll() is None, log.read_text()[-4000:]
        try:
            return server.query(ASSET_KEYS)["assetNodes"]
        except (DagsterGraphQLClientError, OSError, KeyError):
            return None

    try:
        _wait_for(loaded, "the webserver to load the code location", timeout=240)
        yield server
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_the_graph_reads_as_the_patterns(webserver):
    nodes = {"/".join(n["assetKey"]["path"]): n for n in webserver.query(ASSET_KEYS)["assetNodes"]}
    for agent in ("var_risk", "margin_calls", "rebalancing"):
        assert nodes[f"{agent}_proposals"]["groupName"] == agent and nodes[f"{agent}_actions"]["groupName"] == agent
    assert nodes["market_prices"]["groupName"] == "market_data" and nodes["market_prices"]["isPartitioned"]


def test_a_launched_materialisation_runs_the_agents_and_reads_back_through_graphql(webserver):
    run_id = webserver.client.submit_job_execution("market_data_daily", tags={"dagster/partition": DAY})
    _wait_for(lambda: webserver.client.get_run_status(run_id).value in FINISHED, "the market-data run")
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

    decisions = webserver.foureyes("decisions", "-a", "var_risk", "-p", DAY, "--format", "json")
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

    assert _wait_for(settled, f"backfill {backfill}", timeout=600, every=2) in {"COMPLETED", "COMPLETED_SUCCESS"}
    for day in ("2026-11-16", "2026-11-17"):
        done = webserver.foureyes("decisions", "-a", "margin_calls", "-p", day, "--format", "json")
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
    url = f"http://127.0.0.1:{webserver.port}/locations/__repository__@agent_assets/asset-groups/var_risk"
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
