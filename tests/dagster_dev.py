"""`dagster dev` (webserver and daemon) as the tests drive it: started on a Dagster home, asked through GraphQL."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

from tests.conftest import ROOT
from tests.helpers import environment_without
from tests.servers import free_port

BIN = Path(sys.executable).parent
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}

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


def wait_for(condition: Callable[[], object], what: str, timeout: float = 300.0, every: float = 1.0) -> object:
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

        return wait_for(done, f"{count} finished {job or ''} run(s) tagged {tags} (see {self.log})")

    def materialization(self, asset: str, partition: str) -> dict[str, object]:
        found = self.query(MATERIALIZATIONS, key={"path": [asset]}, partition=partition)
        (event,) = found["assetOrError"]["assetMaterializations"]
        return {e["label"]: e.get("mdStr", e.get("text", e.get("intValue"))) for e in event["metadataEntries"]} | {
            "_run": event["runId"]
        }

    def foureyes(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        """The foureyes CLI on this server's stores; ``env`` adds variables (``FOUREYES_TOKEN``: who is calling)."""
        return subprocess.run(
            [str(BIN / "foureyes"), *args], env=self.env | env, cwd=ROOT, capture_output=True, text=True, check=False
        )


@contextmanager
def dagster_dev(home: Path, instance_yaml: Path, **settings: str) -> Iterator[Webserver]:
    """`dagster dev -w workspace.yaml` on a fresh Dagster home configured by ``instance_yaml``."""
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True)
    shutil.copy(instance_yaml, dagster_home / "dagster.yaml")
    env = environment_without(("FOUREYES_", "DAGSTER_"))
    env |= {"FOUREYES_HOME": str(home / "foureyes"), "DAGSTER_HOME": str(dagster_home), **settings}
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
        wait_for(loaded, "the webserver to load the code location", timeout=240)
        yield server
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
