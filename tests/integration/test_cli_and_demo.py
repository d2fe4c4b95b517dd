"""The user's entry points: `foureyes demo`, `foureyes trace`, and the workspace itself."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.helpers import environment_without

FOUREYES = [sys.executable, "-m", "foureyes.cli.main"]


def _cli(*args: str, home: Path, **settings: str) -> subprocess.CompletedProcess:
    """Run the CLI as a user would, on the embedded default under ``home`` (plus ``FOUREYES_*`` settings)."""
    env = environment_without(("FOUREYES_", "DAGSTER_HOME"))
    env |= {"FOUREYES_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), **settings}
    return subprocess.run(
        [*FOUREYES, *args], env=env, capture_output=True, text=True, cwd=ROOT, timeout=600, check=False
    )


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory):
    """A FOUREYES_HOME on which `foureyes demo` has run once (the embedded default)."""
    home = tmp_path_factory.mktemp("demo")
    done = _cli("demo", home=home)
    assert done.returncode == 0, done.stderr[-3000:]
    return home, done.stdout


COMMANDS = {
    "demo": ["demo", "--days", "1"],
    "status": ["status"],
    "decisions": ["decisions", "--agent", "var_risk", "--partition", "2026-11-20"],
    "trace": ["trace", "positions", "--partition", "2026-11-20"],
    "approvals": ["approvals", "list"],
    "outbox list": ["outbox", "list"],
    "outbox retry": ["outbox", "retry", "--all"],
    "lineage ingest": ["lineage", "ingest", str(ROOT / "pyproject.toml")],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_bad_setting_is_one_clear_line_from_every_command(command, tmp_path):
    done = _cli(*COMMANDS[command], home=tmp_path, FOUREYES_MODELS="garbage")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert (
        done.stderr.strip()
        == "Error: FOUREYES_MODELS item 'garbage' is not 'name=url' (e.g. 'primary=http://models:8000')"
    )


def test_demo_summarises_every_partition_and_traces_the_bad_one(demo_home):
    _, out = demo_home
    for day in ["2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19", "2026-11-20"]:
        assert f"\n{day}  var_risk" in out
    assert "RUN FAILED" not in out
    assert "margin_calls" in out and "rebalancing" in out
    assert "outliers in vendor_prices" in out
    assert "2026-11-18  var_risk      CONSTRAINED: market_prices: served 2026-11-17 for 2026-11-18" in out
    assert "requested partition failed no_outliers" in out
    assert "Trace of var_risk_proposals[2026-11-18], built on the faulty day:" in out
    assert "market_prices[2026-11-17] (requested 2026-11-18)" in out  # the trace shows what was really served
    assert "root cause: vendor_prices[2026-11-18] (version " in out


def test_demo_twice_executes_nothing_twice(demo_home):
    home, _ = demo_home
    again = _cli("demo", "--format", "json", home=home)
    assert again.returncode == 0, again.stderr[-2000:]
    days = [agent for run in json.loads(again.stdout)["runs"] for agent in run["agents"]]
    assert all(day["executed"] == 0 for day in days)
    assert sum(day["already_executed"] for day in days) > 0


def test_trace_text_and_json(demo_home):
    home, _ = demo_home
    text = _cli("trace", "var_risk_proposals", "--partition", "2026-11-20", home=home)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("var_risk_proposals[2026-11-20]  version ")
    assert "├─ positions[2026-11-20]  version " in text.stdout
    assert text.stdout.strip().endswith("passed its checks and is current")
    data = json.loads(_cli("trace", "var_risk_proposals", "-p", "2026-11-20", "--format", "json", home=home).stdout)
    root = data["trace"]
    assert root["dataset"] == "var_risk_proposals" and root["partition"] == "2026-11-20"
    assert {i["dataset"]: i["partition"] for i in root["inputs"]} == {
        "positions": "2026-11-20",
        "market_prices": "2026-11-20",
        "portfolios": "__all__",
    }
    assert all(len(i["version"]) == 32 for i in root["inputs"])


def test_trace_of_something_never_built_is_one_clear_line(demo_home):
    home, _ = demo_home
    missing = _cli("trace", "var_risk_proposals", "--partition", "2030-01-01", home=home)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [
        "Error: no completed run wrote var_risk_proposals partition 2030-01-01 (dataset "
        f"sqlite://{home}/warehouse.db/var_risk_proposals); materialise it first, or check the asset key"
    ]


@pytest.mark.parametrize("given_as", ["option", "setting"])
def test_a_bad_fault_spec_is_one_clear_line(given_as, tmp_path):
    spec = "vendor_prices:2026-11-18=gremlins"
    if given_as == "option":
        done = _cli("demo", "--fault", spec, home=tmp_path)
    else:  # the README's FOUREYES_FAULTS=... make demo
        done = _cli("demo", home=tmp_path, FOUREYES_FAULTS=spec)
    assert done.returncode == 1
    assert "Error: unknown fault 'gremlins'; valid faults: missing, nan_prices" in done.stderr


def test_decisions_give_the_whole_record_of_each_proposal(demo_home):
    home, _ = demo_home
    done = _cli("decisions", "--agent", "var_risk", "--partition", "2026-11-18", "--format", "json", home=home)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["agent"] == "var_risk" and report["partition"] == "2026-11-18"
    decisions = report["decisions"]
    assert len(decisions) == report["counts"]["proposals"] == 4
    for d in decisions:
        assert d["tier"] == "CONSTRAINED" and d["model"] == "local_policy"
        assert len(d["prompt_hash"]) == 16 and len(d["policy_version"]) == 16
        assert d["rationale"] and d["alternatives"] and 0 <= d["confidence"] <= 1
        served = {i["input"]: (i["requested"], i["served"]) for i in d["inputs"]}
        assert served["market_prices"] == ("2026-11-18", "2026-11-17")  # what the agent really read
        assert all(len(i["version"]) == 32 for i in d["inputs"])
        model_calls = [c for c in d["tool_calls"] if c["stage"] == "propose"]
        assert [(c["kind"], c["tool"], c["status"]) for c in model_calls] == [("model", "local_policy", "ok")]
        assert model_calls[0]["parameters"]["prompt_hash"] == d["prompt_hash"]
    executed = [d for d in decisions if d["receipt"]]
    assert executed, "the demo executes at least one var_risk action on the 18th"
    for d in executed:
        assert d["verdict"] == "approved" and d["receipt"]["status"] == "executed"
        (call,) = [c for c in d["tool_calls"] if c["stage"] == "execute"]
        assert call["tool"] == "books (sql_books)" and call["status"] == "executed"
        assert call["parameters"]["idempotency_key"] == d["receipt"]["idempotency_key"]
    for d in decisions:
        if d["verdict"] == "pending":
            assert d["approval"]["status"] == "pending" and d["approval"]["votes"] == []
        if d["action"] == "hold":
            assert not d["receipt"] and not d["outbox"]


def test_decisions_as_text_and_filtered_by_verdict(demo_home):
    home, _ = demo_home
    text = _cli("decisions", "--agent", "rebalancing", "-p", "2026-11-20", "--verdict", "rejected", home=home)
    assert text.returncode == 0, text.stderr
    head, *proposals = text.stdout.split("\n\n")
    assert head.startswith("rebalancing 2026-11-20: ") and "tier FULL" in head and "policy " in head
    assert re.search(r"market_prices\s+2026-11-20\s+2026-11-20\s+[0-9a-f]{12}\s+fresh", head)
    assert proposals and all("-> REJECTED" in p for p in proposals)
    assert all("  error " in p or "  warn " in p for p in proposals)  # each rejection names its rule
    missing = _cli("decisions", "--agent", "var_risk", "-p", "2030-01-01", home=home)
    assert missing.returncode == 1
    assert "no decisions for agent 'var_risk' on partition '2030-01-01'" in missing.stderr


def test_status_after_the_demo_shows_every_agent_idle(demo_home):
    home, _ = demo_home
    done = _cli("status", "--format", "json", home=home)
    assert done.returncode == 0, done.stderr
    agents = {a["agent"]: a for a in json.loads(done.stdout)["agents"]}
    assert set(agents) == {"var_risk", "margin_calls", "rebalancing", "loan_triage"}
    for a in agents.values():
        assert a["phase"] == "idle" and a["last_outcome"] == "ok" and not a["stuck"]
        assert a["last_decision"]["partition"] == "2026-11-20" and a["last_tier"]["tier"] == "FULL"


def test_every_command_has_help(tmp_path):
    for command in ([], ["demo"], ["trace"], ["decisions"], ["status"]):
        done = _cli(*command, "--help", home=tmp_path)
        assert done.returncode == 0 and "Usage:" in done.stdout


def test_the_workspace_validates():
    dagster = Path(sys.executable).parent / "dagster"
    done = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "All code locations passed validation." in done.stderr + done.stdout


def test_the_workspace_loads_without_the_agent_libraries():
    """Every step process loads the location: only loan_triage's step pays for Pydantic AI and the OpenAI SDK."""
    heavy = ("pydantic_ai", "openai", "langgraph", "langchain_core")
    script = f"import sys, foureyes.examples.finance_desk.definitions; print([m for m in {heavy} if m in sys.modules])"
    env = environment_without(("FOUREYES_", "DAGSTER_HOME"))
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "[]"
