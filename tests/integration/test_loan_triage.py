"""``loan_triage`` end to end: real Dagster runs, the real Pydantic AI agent, the stand-in model over HTTP.

The shipped agent triages the synthetic loan tape (its faults are documented in
``foureyes.examples.mortgage_pipeline.servicing``). Each misbehaviour of the model ends in a
rejection, a fallback, or the baseline, with the reason on record; no act tool ever runs
inside the agent; and ``foureyes trace`` walks one executed correction back to the servicer file.
"""

from __future__ import annotations

import json

import dagster as dg
import pytest
import sqlalchemy as sa

import foureyes
from foureyes.examples.mortgage_pipeline.assets import MORTGAGE_ASSETS
from foureyes.examples.mortgage_pipeline.demo_model import standin_chain
from foureyes.examples.mortgage_pipeline.loan_triage import LOAN_TRIAGE, TARGET
from foureyes.examples.mortgage_pipeline.standin_policy import loan_triage_policy
from foureyes.resources.control_plane.agent_runs import FULL, PASS_THROUGH
from foureyes.resources.resource_keys import MODELS
from foureyes.standin_model import (
    HALLUCINATED_ID,
    MALFORMED_JSON,
    OUT_OF_POLICY,
    STALL,
    UNKNOWN_TOOL,
    StandinModelServer,
)
from tests.helpers import cli, home_instance

DAY, BROKEN_FILE_DAY = "2026-11-16", "2026-11-19"
BOOKS = "loan_servicing_actions"


def _triage(tmp_path, day: str, *faults: str):
    """One day of the pipeline: servicer file, tape, triage, supervision, execution."""
    settings = foureyes.FoureyesSettings.from_env({"FOUREYES_HOME": str(tmp_path)})
    with StandinModelServer(loan_triage_policy, faults=faults, stall_s=3.0) as model:
        chain = standin_chain(settings.control_url, model.url, timeout_s=1.0)
        resources = {
            "io_manager": foureyes.PartitionedSqlIOManager(
                warehouse=foureyes.SqlWarehouseResource(url=settings.warehouse_url)
            ),
            TARGET: foureyes.SqlBooksTarget(url=settings.warehouse_url, table=BOOKS),
            MODELS: chain,
        }
        defs = dg.Definitions.merge(
            dg.Definitions(assets=MORTGAGE_ASSETS),
            foureyes.definitions(agents=[LOAN_TRIAGE], resources=resources, settings=settings),
        )
        with home_instance(tmp_path) as instance:
            result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
                partition_key=day, instance=instance, raise_on_error=False
            )
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    control = foureyes.ControlPlaneResource(url=settings.control_url)
    return control, settings


def _decisions(control, day: str) -> dict[str, object]:
    return {d.proposal["loan_id"]: d for d in control.decision_log.for_partition("loan_triage", day)}


def _booked(settings) -> dict[str, dict]:
    engine = sa.create_engine(settings.warehouse_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT action, payload FROM {BOOKS}")).all()
    engine.dispose()
    return {json.loads(p)["loan_id"]: {"action": a, **json.loads(p)} for a, p in rows}


def test_a_good_day_is_triaged_by_the_agent_and_booked_by_the_executor(tmp_path):
    control, settings = _triage(tmp_path, DAY)
    decisions = _decisions(control, DAY)
    assert {loan: (d.action, d.verdict, d.tier) for loan, d in decisions.items()} == {
        "L0003": ("correct_field", "approved", FULL),
        "L0008": ("quarantine_loan", "approved", FULL),
        "L0009": ("escalate", "approved", FULL),  # in bankruptcy: the agent read its history and escalated
    }
    booked = _booked(settings)
    assert booked["L0003"]["field"] == "rate" and booked["L0003"]["value"] == pytest.approx(0.055)
    assert set(booked) == {"L0003", "L0008", "L0009"}
    calls = control.tool_calls.for_partition("loan_triage", DAY)
    statuses = sorted((c.stage, c.tool, c.status) for c in calls if c.kind == "tool")
    assert ("propose", "loan_history", "ok") in statuses and ("propose", "servicer_file", "ok") in statuses
    deferred = [t for s, t, st in statuses if st == "deferred"]
    assert sorted(deferred) == ["correct_field", "escalate", "quarantine_loan"]  # none ran inside the agent
    executed = [t for s, t, st in statuses if s == "execute"]
    assert executed == ["loan_servicing (sql_books)"] * 3

    shown = cli("decisions", "--agent", "loan_triage", "--partition", DAY, home=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "propose tool loan_history [loan_id=L0003] ok in" in shown.stdout and "returned " in shown.stdout

    correction = decisions["L0003"]
    trace = cli("trace", "--proposal", correction.proposal_id, home=tmp_path)
    assert trace.returncode == 0, trace.stderr
    text = trace.stdout
    lines = [
        f"proposal {correction.proposal_id} of loan_triage {DAY}: correct_field",
        "  receipt ",
        "  verdict APPROVED",
        f"  decision: {correction.rationale}",
        "    tier FULL, model standin, prompt ",
        "    call propose tool loan_history [loan_id=L0003] ok",
        "    call propose tool correct_field [",
        f"loan_tape[{DAY}]",
        f"servicer_file[{DAY}]",
    ]
    positions = [text.find(line) for line in lines]
    assert -1 not in positions and positions == sorted(positions), text  # receipt ... back to the servicer file


@pytest.mark.parametrize("fault", [UNKNOWN_TOOL, MALFORMED_JSON, STALL])
def test_a_broken_answer_moves_down_the_chain_to_the_baseline(tmp_path, fault):
    control, _ = _triage(tmp_path, DAY, fault)
    run = control.agent_runs.latest("loan_triage", DAY)
    assert run.tier == PASS_THROUGH and "every model backend failed (standin:" in run.tier_reason
    decisions = _decisions(control, DAY)
    assert {loan: d.action for loan, d in decisions.items()} == {
        "L0003": "correct_field",
        "L0008": "quarantine_loan",
        "L0009": "escalate",
    }
    assert all(d.rationale.startswith("baseline: ") for d in decisions.values())


def test_a_hallucinated_loan_is_rejected_and_the_loan_it_skipped_is_still_triaged(tmp_path):
    control, _ = _triage(tmp_path, DAY, HALLUCINATED_ID)
    decisions = _decisions(control, DAY)
    ghost = decisions["L9999"]
    assert ghost.verdict == "rejected" and any(r.rule == "loan_on_tape" for r in ghost.reasons)
    assert decisions["L0003"].verdict == "approved"  # the exception the model skipped: the baseline's
    assert decisions["L0003"].rationale.startswith("the model proposed nothing for this loan; baseline: ")


def test_an_out_of_policy_correction_is_rejected_and_the_baseline_corrects_in_its_place(tmp_path):
    control, settings = _triage(tmp_path, DAY, OUT_OF_POLICY)
    rows = control.decision_log.for_partition("loan_triage", DAY)
    balance = next(d for d in rows if d.proposal.get("field") == "balance")
    assert balance.verdict == "rejected" and {r.rule for r in balance.reasons} >= {"correctable_fields"}
    fixed = next(d for d in rows if d.proposal["loan_id"] == "L0003" and d.verdict == "approved")
    assert fixed.tier == PASS_THROUGH and fixed.proposal["field"] == "rate"
    assert _booked(settings)["L0003"]["value"] == pytest.approx(0.055)


def test_a_broken_servicer_file_needs_approval_to_quarantine_in_bulk(tmp_path):
    control, settings = _triage(tmp_path, BROKEN_FILE_DAY)
    decisions = _decisions(control, BROKEN_FILE_DAY)
    quarantines = [d for d in decisions.values() if d.action == "quarantine_loan"]
    assert len(quarantines) == 8 and {d.verdict for d in quarantines} == {"pending"}
    assert not any(v["action"] == "quarantine_loan" for v in _booked(settings).values())  # nothing before approval
