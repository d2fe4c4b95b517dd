"""Proposals built to break the machinery are rejected with a reason; a supervision that breaks is recorded.

Each case runs the toy desk for real (proposals, supervisor, executor) with an agent that
returns something hostile, then reads the books, the decision log and the CLI.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest
from pandera.typing import Series

from foureyes.checks.integrity import ACCEPTED_ACTION, FINITE, KEY_PRESENT, UNIQUE_KEY
from foureyes.resources.asset_inputs import AssetInput
from foureyes.resources.control_plane.decisions import APPROVED, FAILED, REJECTED
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.settings import sqlite_url
from foureyes.resources.targets.base import booked_actions
from tests.helpers import cli
from tests.integration.toy_desk import REFERENCES, desk, run_desk


class LaxTrades(pa.DataFrameModel):
    """An author's schema with gaps: any action, any float, no uniqueness."""

    proposal_id: Series[str]
    portfolio_id: Series[str] = pa.Field(nullable=True)
    instrument_id: Series[str] = pa.Field(nullable=True)
    trade_value: Series[float]
    action: Series[str]
    rationale: Series[str]
    confidence: Series[float]


def _trades(**overrides) -> pd.DataFrame:
    base = {
        "portfolio_id": ["P1", "P2"],
        "instrument_id": ["X1", "X2"],
        "trade_value": [100.0, -50.0],
        "action": ["buy", "sell"],
        "rationale": ["fine", "fine"],
        "confidence": [0.9, 0.9],
    }
    return pd.DataFrame({**base, **overrides})


def _run(tmp_path, proposals: pd.DataFrame, **desk_args):
    url = sqlite_url(tmp_path / "desk.db")
    agent = desk(propose=lambda ctx: proposals.copy(), schema=LaxTrades, approval=None, rules=(), **desk_args)
    result = run_desk(url, agent)  # no business rules: what is rejected here, integrity rejected
    control = ControlPlaneResource(url=url)
    (supervision,) = control.decision_log.latest_supervisions("toy", "d1", limit=1)
    decisions = control.decision_log.of_supervision(supervision.supervision_id)
    return url, result, supervision, decisions, booked_actions(url, "toy_books")


def _by_instrument(decisions):
    return {d.proposal["instrument_id"]: d for d in decisions}


@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinite_values_are_rejected_and_the_rest_executes(tmp_path, value):
    _, result, supervision, decisions, booked = _run(tmp_path, _trades(trade_value=[value, -50.0]))
    assert result.success and supervision.status != FAILED
    verdicts = _by_instrument(decisions)
    assert verdicts["X1"].verdict == REJECTED and [r.rule for r in verdicts["X1"].reasons] == [FINITE]
    assert verdicts["X1"].proposal["trade_value"] == str(value)  # the record shows what was proposed
    assert verdicts["X2"].verdict == APPROVED
    assert [b["proposal_id"] for b in booked] == [verdicts["X2"].proposal_id]


def test_duplicate_natural_keys_are_all_rejected_each_with_its_own_id(tmp_path):
    proposals = _trades(portfolio_id=["P1", "P1"], instrument_id=["X1", "X1"], trade_value=[100.0, 200.0])
    _, result, _, decisions, booked = _run(tmp_path, proposals)
    assert result.success and booked == []
    assert len({d.proposal_id for d in decisions}) == 2
    assert all(d.verdict == REJECTED and [r.rule for r in d.reasons] == [UNIQUE_KEY] for d in decisions)


def test_a_missing_natural_key_is_rejected(tmp_path):
    _, _, _, decisions, booked = _run(tmp_path, _trades(instrument_id=[None, "X2"]))
    assert {d.verdict for d in decisions if d.proposal["instrument_id"] is None} == {REJECTED}
    assert KEY_PRESENT in {r.rule for d in decisions for r in d.reasons}
    assert len(booked) == 1


@pytest.mark.parametrize("action", ["liquidate_everything", "Buy", "sell_all"])
def test_an_action_outside_the_targets_declaration_is_never_booked(tmp_path, action):
    _, _, _, decisions, booked = _run(tmp_path, _trades(action=[action, "sell"]))
    verdicts = _by_instrument(decisions)
    assert verdicts["X1"].verdict == REJECTED and [r.rule for r in verdicts["X1"].reasons] == [ACCEPTED_ACTION]
    assert [b["action"] for b in booked] == ["sell"]


def test_values_the_warehouse_cannot_hold_are_stored_as_text_and_judged(tmp_path):
    proposals = _trades(trade_value=pd.Series([100.0, "lots"], dtype=object), rationale=["fine", "nul\x00byte"])
    _, result, supervision, decisions, booked = _run(tmp_path, proposals)
    assert supervision.blocked and "failed its schema" in supervision.block_reason  # text where a float was wanted
    assert _failed_steps(result) == ["toy_supervisor"] and booked == []  # blocked by its checks, not crashed
    assert {d.proposal["trade_value"] for d in decisions} == {"100.0", "lots"}


def test_a_table_that_cannot_be_a_proposals_table_is_the_agent_failing(tmp_path):
    url = sqlite_url(tmp_path / "desk.db")
    frame = _trades()
    frame.columns = [*frame.columns[:-1], 7]  # a column named by an integer
    result = run_desk(url, desk(propose=lambda ctx: frame, schema=LaxTrades))
    assert not result.success  # no baseline to fall back to: the step fails, nothing is stored or executed
    assert _failed_steps(result) == ["toy_proposals"]
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "column names must be strings, got [7]" in failure.event_specific_data.error.to_string()
    assert booked_actions(url, "toy_books") == []


def _failed_steps(result) -> list[str]:
    return [e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"]


def _cli(url: str, *args: str) -> subprocess.CompletedProcess:
    home = Path(url.removeprefix("sqlite:///")).parent
    toy = ("-m", "tests.integration.toy_desk", "-a", "location")
    return cli(*args, *toy, home=home, FOUREYES_CONTROL_URL=url, FOUREYES_WAREHOUSE_URL=url)


def test_a_supervision_that_breaks_is_recorded_failed_blocks_the_executor_and_is_reported(tmp_path):
    unreadable = [*REFERENCES, AssetInput("never_written")]
    url, result, supervision, decisions, booked = _run(tmp_path, _trades(), references=unreadable)
    assert supervision.status == FAILED and supervision.blocked and decisions == []
    assert supervision.block_reason.startswith(
        "supervision failed (InputDataError: the supervisor cannot read never_written"
    )
    assert booked == []  # the executor did nothing for that version
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks and not any(checks.values())

    shown = _cli(url, "decisions", "--agent", "toy", "--partition", "d1")
    assert shown.returncode == 2, shown.stderr
    assert "SUPERVISION FAILED for proposals version" in shown.stdout and "never_written" in shown.stdout
    as_json = json.loads(_cli(url, "decisions", "--agent", "toy", "-p", "d1", "--format", "json").stdout)
    assert as_json["supervision_status"] == FAILED and as_json["decisions"] == []

    status = _cli(url, "status", "--format", "json")
    assert status.returncode == 2, status.stderr
    (toy,) = [a for a in json.loads(status.stdout)["agents"] if a["agent"] == "toy"]
    assert toy["supervision_failed"] and toy["last_decision"]["status"] == FAILED
    assert "SUPERVISION FAILED" in _cli(url, "status").stdout
