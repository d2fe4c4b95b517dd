"""``foureyes.definitions(agents=[...])``: exactly those agents, on the embedded defaults, loadable as Dagster loads."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import dagster as dg
import pandas as pd
import pandera.pandas as pa
import pytest

import foureyes
from foureyes.resources.targets.base import booked_actions
from tests.conftest import ROOT

DAYS = dg.DailyPartitionsDefinition(start_date="2026-11-01")


class Alerts(pa.DataFrameModel):
    desk: str
    action: str
    rationale: str
    confidence: float


def _notify(ctx: foureyes.ProposalContext) -> pd.DataFrame:
    trades = ctx.inputs["trades"]
    return pd.DataFrame(
        {"desk": sorted(set(trades["desk"])), "action": "notify", "rationale": "late trades", "confidence": 0.9}
    )


def _agent(name: str, target: str = "books") -> foureyes.Agent:
    return foureyes.define_agent(
        name,
        inputs=["trades"],
        propose=_notify,
        proposals_schema=Alerts,
        natural_key=["desk"],
        actions=["notify"],
        partitions_def=DAYS,
        target=target,
    )


@dg.asset(partitions_def=DAYS)
def trades() -> pd.DataFrame:
    return pd.DataFrame({"desk": ["rates", "fx", "rates"], "notional": [1.0, 2.0, 3.0]})


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("FOUREYES_HOME", str(tmp_path / "home"))
    for name in ("FOUREYES_WAREHOUSE_URL", "FOUREYES_CONTROL_URL", "FOUREYES_MODELS"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "home"


def test_definitions_hold_exactly_the_agents_given_with_their_checks_and_sensors(home):
    defs = foureyes.definitions(agents=[_agent("alpha"), _agent("beta")])
    assert sorted(a.key.to_user_string() for a in defs.assets) == [
        "alpha_actions",
        "alpha_proposals",
        "beta_actions",
        "beta_proposals",
    ]
    checks = {k.name for c in defs.asset_checks for k in c.check_keys if k.asset_key.path == ["alpha_proposals"]}
    assert {"proposals_schema", "business_rules"} <= checks  # human_approval only with an approval policy
    assert sorted(s.name for s in defs.sensors) == sorted(
        f"{agent}_{kind}" for agent in ("alpha", "beta") for kind in ("approvals", "outbox", "watchdog", "failed_runs")
    )
    assert {"books", "foureyes_io_manager", "foureyes_control_plane", "foureyes_fallback"} <= set(defs.resources)


def test_with_nothing_but_agents_it_runs_on_the_embedded_defaults_under_foureyes_home(home):
    project = dg.Definitions.merge(dg.Definitions(assets=[trades]), foureyes.definitions(agents=[_agent("alpha")]))
    done = dg.materialize(
        [trades, *project.assets, *project.asset_checks],
        resources=project.resources,
        partition_key="2026-11-20",
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert done.success
    booked = booked_actions(f"sqlite:///{home / 'warehouse.db'}", "books")  # the SQL books target named books
    assert sorted(b["action"] for b in booked) == ["notify", "notify"]
    assert (home / "control.db").exists()


def test_calling_it_twice_in_one_project_merges(home):
    merged = dg.Definitions.merge(
        foureyes.definitions(agents=[_agent("alpha")]), foureyes.definitions(agents=[_agent("beta")])
    )
    assert len(merged.resolve_asset_graph().get_all_asset_keys()) == 5  # four agent assets and their input


@pytest.mark.parametrize(
    ("agents", "resources", "message"),
    [
        ([_agent("alpha"), _agent("alpha")], None, "two agents are named 'alpha': agent names are unique"),
        ([dg.Definitions()], None, "takes agents from define_agent, got ['Definitions']"),
        ([_agent("alpha", target="tickets")], None, "sends its actions to 'tickets', which is not a resource"),
        ([_agent("alpha", target="tickets")], {"tickets": object()}, "its target 'tickets' is a object"),
    ],
)
def test_a_project_that_cannot_work_is_refused_when_it_loads(home, agents, resources, message):
    with pytest.raises(foureyes.AgentDefinitionError, match=message.replace("[", r"\[").replace("(", r"\(")):
        foureyes.definitions(agents=agents, resources=resources)


def test_a_module_with_two_agents_at_module_scope_loads_as_dagster_loads_modules(home, tmp_path):
    (tmp_path / "two_agents.py").write_text(
        textwrap.dedent(
            """
            import dagster as dg
            import foureyes
            from tests.agent_assets.test_agent_definitions import _agent, trades

            alpha = _agent("alpha")
            beta = _agent("beta")
            defs = dg.Definitions.merge(dg.Definitions(assets=[trades]), foureyes.definitions(agents=[alpha, beta]))
            """
        )
    )
    listed = subprocess.run(
        [sys.executable, "-m", "dagster", "asset", "list", "-f", str(tmp_path / "two_agents.py")],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert set(listed.stdout.split()) >= {"alpha_proposals", "beta_actions", "trades"}
