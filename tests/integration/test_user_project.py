"""foureyes in a Dagster project that is not foureyes', driven as its team would drive it.

The project (``projects/riskproj``) is laid out as ``dg`` lays one out: daily ``quotes`` and a
``limits`` table stored by dagster-duckdb-pandas, judged by plain blocking ``@asset_check``s;
one agent declared in a ``defs.yaml`` (``exposure_review``, booking to the default SQL books,
with four-eyes approval) and one in Python at module scope (``limit_watch``, opening tickets
on an HTTP tool server). Everything goes through the dagster, ``dg`` and foureyes CLIs.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from foureyes.resources.targets.base import booked_actions
from tests.conftest import ROOT
from tests.helpers import cli_principal, environment_without
from tests.servers import ToolServer

PROJECT = Path(__file__).parent / "projects" / "riskproj"
BIN = Path(sys.executable).parent
GOOD_DAY, BAD_DAY = "2026-11-18", "2026-11-19"
MODULE = ("-m", "riskproj.definitions")


@dataclass
class Project:
    root: Path
    env: dict[str, str]
    tickets: ToolServer
    status_before_any_run: str

    def run(self, tool: str, *args: str, token: str | None = None) -> subprocess.CompletedProcess:
        command = [str(BIN / tool), *args]
        env = self.env if token is None else {**self.env, "FOUREYES_TOKEN": token}
        return subprocess.run(command, env=env, cwd=self.root, capture_output=True, text=True, timeout=300, check=False)

    def materialize(self, select: str, partition: str | None = None) -> subprocess.CompletedProcess:
        return self.run("dagster", "asset", "materialize", *MODULE, "--select", select, *_partition(partition))

    def foureyes(self, *args: str, token: str | None = None) -> subprocess.CompletedProcess:
        done = self.run("foureyes", *args, *MODULE, token=token)
        assert "Traceback" not in done.stderr, done.stderr
        return done

    @property
    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(self.env["DAGSTER_HOME"])


def _partition(partition: str | None) -> tuple[str, ...]:
    return ("--partition", partition) if partition else ()


def _copy_project(tmp: Path, tickets_url: str) -> tuple[Path, dict[str, str]]:
    root = tmp / "riskproj"
    shutil.copytree(PROJECT, root)
    dagster_home = tmp / "dagster"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = environment_without(("FOUREYES_", "DAGSTER_", "RISKPROJ_"))
    env |= {
        "PYTHONPATH": str(root / "src"),
        "PYTHONWARNINGS": "ignore",
        "FOUREYES_HOME": str(tmp / "home"),
        "DAGSTER_HOME": str(dagster_home),
        "RISKPROJ_DUCKDB": str(tmp / "riskproj.duckdb"),
        "RISKPROJ_BAD_DAYS": BAD_DAY,
        "RISKPROJ_TICKETS_URL": tickets_url,
    }
    return root, env


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Project:
    """Two days of quotes (the second fails ``prices_positive``), then both agents on the second."""
    tmp = tmp_path_factory.mktemp("user_project")
    tickets = ToolServer().start()
    root, env = _copy_project(tmp, tickets.url)
    project = Project(root, env, tickets, status_before_any_run="")
    project.status_before_any_run = project.foureyes("status").stdout
    assert project.materialize("limits").returncode == 0
    assert project.materialize("quotes", GOOD_DAY).returncode == 0
    bad = project.materialize("quotes", BAD_DAY)
    assert bad.returncode != 0 and "prices_positive" in bad.stdout + bad.stderr  # blocking: the run fails
    agents = project.materialize("limit_watch_proposals*,exposure_review_proposals*", BAD_DAY)
    assert agents.returncode == 0, agents.stderr[-3000:]
    yield project
    tickets.stop()


def test_status_lists_every_agent_of_the_project_even_before_it_ran(project):
    before = project.status_before_any_run
    assert re.search(r"^exposure_review\s", before, re.M) and re.search(r"^limit_watch\s", before, re.M), before
    status = project.foureyes("status", "--format", "json")
    assert status.returncode == 0, status.stderr
    agents = {a["agent"]: a for a in json.loads(status.stdout)["agents"]}
    assert set(agents) == {"exposure_review", "limit_watch"}
    assert all(a["partition"] == BAD_DAY for a in agents.values())


def test_a_day_failing_its_check_runs_constrained_on_the_previous_good_duckdb_partition(project):
    decisions = project.foureyes("decisions", "--agent", "limit_watch", "-p", BAD_DAY)
    assert decisions.returncode == 0, decisions.stderr
    # AAA closed at 118 on the 18th and 119 on the 19th; BBB at -1 on the 19th: the 18th was read
    assert "price 118.00 on 2026-11-19 (CONSTRAINED)" in decisions.stdout
    assert "-1.00" not in decisions.stdout and "119.00" not in decisions.stdout
    assert re.search(r"quotes\s+2026-11-19\s+2026-11-18", decisions.stdout), decisions.stdout
    runs = project.instance.get_runs(dg.RunsFilter(tags={"dagster/partition": BAD_DAY}))
    agent_run = next(r for r in runs if dg.AssetKey("limit_watch_proposals") in (r.asset_selection or set()))
    assert agent_run.tags["foureyes/tier"] == "CONSTRAINED"


def test_trace_walks_to_the_duckdb_partition_and_names_runs_to_paste_into_the_ui(project):
    text = project.foureyes("trace", "limit_watch_proposals", "-p", BAD_DAY)
    assert text.returncode == 0, text.stderr
    assert "quotes[2026-11-18] (requested 2026-11-19)" in text.stdout
    assert text.stdout.rstrip().endswith("requested partition failed prices_positive)")
    quotes_run = project.instance.get_latest_materialization_event(dg.AssetKey("quotes")).run_id
    good_run = (
        project.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("quotes"), asset_partitions=[GOOD_DAY]), limit=1
        )
        .records[0]
        .run_id
    )
    assert good_run != quotes_run and f"Dagster run {good_run}" in text.stdout  # the 18th's run, not the 19th's
    as_json = json.loads(project.foureyes("trace", "limit_watch_proposals", "-p", BAD_DAY, "--format", "json").stdout)
    quotes = next(i for i in as_json["trace"]["inputs"] if i["dataset"] == "quotes")
    assert quotes["partition"] == GOOD_DAY and quotes["stored_in"].startswith("duckdb "), quotes
    assert quotes["stored_in"].endswith("riskproj.duckdb.public.quotes") and "stored in duckdb " in text.stdout


def test_approvals_and_the_outbox_work_for_the_projects_targets(project):
    opened = [r["body"] for r in project.tickets.accepted.values()]
    assert [(b["agent"], b["action"]) for b in opened] == [("limit_watch", "open_ticket")]
    pending = project.foureyes("approvals", "list", "--format", "json")
    assert pending.returncode == 0, pending.stderr
    votes = {a["proposal_id"]: a for a in json.loads(pending.stdout)}
    assert {a["agent"] for a in votes.values()} == {"exposure_review"} and len(votes) == 2
    two, one = sorted(votes.values(), key=lambda a: -a["required"])
    assert (two["required"], one["required"]) == (2, 1)

    def vote(approval: dict, token: str) -> subprocess.CompletedProcess:
        return project.foureyes("approvals", "approve", approval["approval_id"][:12], "--reason", "ok", token=token)

    alice, bob, carol, proposer = (
        cli_principal(project.foureyes, n) for n in ("alice", "bob", "carol", "exposure_review")
    )
    assert vote(two, alice).returncode == 0
    assert project.foureyes("principals", "add", " ALICE", "--scope", "approve").returncode == 1  # the same person
    agent = cli_principal(project.foureyes, "agent:Exposure_Review", "read")
    refused = project.foureyes("principals", "add", "agent:exposure_review2", "--scope", "approve")
    assert refused.returncode == 1 and "never approves" in refused.stderr, refused.stderr
    for again in (proposer, agent):  # a person named as the agent, the agent itself
        refused = vote(two, again)
        assert refused.returncode != 0 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert "queued as" in vote(two, bob).stdout and "queued as" in vote(one, carol).stdout
    queued = project.foureyes("outbox", "list", "--agent", "exposure_review")
    assert queued.stdout.count(" queued ") == 2, queued.stdout

    assert project.materialize("exposure_review_actions", BAD_DAY).returncode == 0  # what the sensor launches
    books = booked_actions(f"sqlite:///{project.env['FOUREYES_HOME']}/warehouse.db", "books")
    assert sorted(b["proposal_id"] for b in books) == sorted(votes), books
    delivered = project.foureyes("outbox", "list", "--status", "delivered", "--format", "json")
    assert {(e["agent"], e["target"]) for e in json.loads(delivered.stdout)} == {
        ("limit_watch", "tickets"),
        ("exposure_review", "books"),
    }
    key = opened[0]["idempotency_key"][:12]
    unconfigured = project.foureyes("outbox", "retry", key)
    assert unconfigured.returncode == 1 and "needs the 'operate' scope" in unconfigured.stderr
    operator = cli_principal(project.foureyes, "olga", "read", "operate")
    retry = project.foureyes("outbox", "retry", key, token=operator)
    assert retry.returncode == 1 and "no queued or failed outbox entry" in retry.stderr  # delivered: never resent


def test_the_agent_component_is_a_dg_plugin(tmp_path):
    root, env = _copy_project(tmp_path, "http://127.0.0.1:9")
    project = Project(root, env, ToolServer(), status_before_any_run="")
    listed = project.run("dg", "list", "components")
    assert listed.returncode == 0 and "foureyes.AgentComponent" in listed.stdout, listed.stderr
    params = json.dumps({"inputs": ["quotes"]})
    scaffold = project.run(
        "dg", "scaffold", "defs", "foureyes.AgentComponent", "pricing_watch", "--json-params", params
    )
    assert scaffold.returncode == 0, scaffold.stderr
    written = root / "src" / "riskproj" / "defs" / "pricing_watch"
    assert (written / "defs.yaml").read_text().startswith("type: foureyes.AgentComponent")
    assert (written / "agent.py").exists()
    checked = project.run("dg", "check", "defs")
    assert checked.returncode == 0 and "All definitions loaded successfully" in checked.stdout, checked.stderr
    assert re.search(r"^pricing_watch\s", project.foureyes("status").stdout, re.M)
    (written / "defs.yaml").write_text((written / "defs.yaml").read_text().replace("actions: [flag]", "actions: 3"))
    broken = project.run("dg", "check", "defs")
    assert broken.returncode != 0 and "actions" in broken.stdout + broken.stderr


def test_dg_finds_the_component_when_the_optional_extras_are_not_installed(tmp_path):
    """`pip install 'foureyes[dg]'` alone: dg reads every name of the package, the adapters too."""
    root, env = _copy_project(tmp_path, "http://127.0.0.1:9")
    hidden = tmp_path / "without_extras"
    hidden.mkdir()
    absent = ("pydantic_ai", "langgraph", "langchain_core")
    (hidden / "sitecustomize.py").write_text(f"import sys\nsys.modules.update(dict.fromkeys({absent!r}))\n")
    env["PYTHONPATH"] = f"{hidden}:{env['PYTHONPATH']}"
    project = Project(root, env, ToolServer(), status_before_any_run="")
    listed = project.run("dg", "list", "components")
    assert listed.returncode == 0 and "foureyes.AgentComponent" in listed.stdout, listed.stderr[-2000:]
    probe = "import foureyes; foureyes.langgraph_propose"
    asked = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False)
    assert asked.returncode == 1 and "pip install 'foureyes[langgraph]'" in asked.stderr  # asked for: named


def test_the_readmes_add_foureyes_to_your_project_runs_as_written(tmp_path):
    readme = (ROOT / "README.md").read_text()
    section = readme[
        readme.index("## Add foureyes to your Dagster project") : readme.index("## How it maps onto Dagster")
    ]
    (tmp_path / "desk.py").write_text(re.findall(r"```python\n(.*?)```", section, re.S)[0])
    commands = [c for c in re.findall(r"```console\n(.*?)```", section, re.S)[1].splitlines() if "dagster dev" not in c]
    dagster_home = tmp_path / ".dagster"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").touch()
    env = environment_without(("FOUREYES_", "DAGSTER_", "PYTHONPATH"))
    env |= {"FOUREYES_HOME": str(tmp_path / ".foureyes"), "DAGSTER_HOME": str(dagster_home), "PYTHONWARNINGS": "ignore"}
    env["PATH"] = f"{BIN}:{env['PATH']}"
    outputs = []
    for command in commands:
        line = command.split("#")[0]  # as typed, comment aside
        done = subprocess.run(line, shell=True, env=env, cwd=tmp_path, capture_output=True, text=True, check=False)
        assert done.returncode == 0, (command, done.stderr[-2000:])
        outputs.append(done.stdout)
    _, status, decisions, trace, added, *_ = outputs  # then the MCP server, over stdio (no input: it ends)
    assert added.startswith("added person me with read, approve, operating-system account "), added
    assert re.search(r"^late_trades\s+idle\s+2026-11-20", status, re.M), status
    assert "-> APPROVED" in decisions and "executed on books" in decisions
    assert "└─ trades[2026-11-20]" in trace and "checks: 1/1 passed" in trace
