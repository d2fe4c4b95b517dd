"""Filling rejected entities in with the baseline's rows: the table logic, on tables a real run would stamp."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from foureyes.checks.replaced_proposals import REPLACES, replaced_in
from foureyes.checks.rule_kinds import Threshold
from foureyes.checks.supervisor import Supervisor
from foureyes.propose.baseline_fill import fill_in
from foureyes.propose.proposals import proposal_ids

KEY = ["desk"]


class Alerts(pa.DataFrameModel):
    proposal_id: Series[str]
    desk: Series[str]
    action: Series[str]
    rationale: Series[str]
    confidence: Series[float]


SURE = Threshold(id="sure", description="", column="confidence", op=">=", value=0.5, message="{desk} unsure")
SUPERVISOR = Supervisor(schema=Alerts, natural_key=KEY, rules=[SURE])


def _stamped(frame: pd.DataFrame, tier: str) -> pd.DataFrame:
    frame = frame.reset_index(drop=True)
    frame.insert(0, "proposal_id", proposal_ids("alerts", "d1", frame, KEY))
    return frame.assign(tier=tier, served_inputs="")


def _alerts(desks: list[str], confidence: list[float], rationale: str) -> pd.DataFrame:
    return pd.DataFrame(
        {"desk": desks, "action": "notify", "rationale": rationale, "confidence": confidence},
    )


def test_every_row_of_a_rejected_entity_goes_and_its_first_baseline_row_carries_them_all():
    agent = _stamped(_alerts(["rates", "fx", "fx", "credit"], [0.9, 0.9, 0.2, 0.1], "model"), "FULL")
    baseline = _stamped(_alerts(["credit", "fx", "rates"], [1.0, 1.0, 1.0], "batch"), "PASS_THROUGH")
    supervision = SUPERVISOR.review(agent)
    fill = fill_in(agent, supervision, KEY, baseline)
    table = fill.proposals
    assert table[["desk", "rationale", "tier"]].values.tolist() == [
        ["rates", "model", "FULL"],
        ["fx", "batch", "PASS_THROUGH"],  # where the agent's first fx row was
        ["credit", "batch", "PASS_THROUGH"],
    ]
    assert (fill.rejected, fill.filled) == (2, 2)
    replaced = replaced_in(table)
    assert sorted(replaced) == [1, 2]
    fx = replaced[1]
    assert [r.proposal["confidence"] for r in fx] == [0.9, 0.2]  # duplicates: both rejected, both kept on record
    assert {r.reasons[0].rule for r in fx} == {"unique_natural_key"}
    assert len({r.proposal_id for r in fx} | set(table["proposal_id"])) == 5
    assert table.loc[1, "proposal_id"] == agent.loc[1, "proposal_id"]  # the entity's id names its stand-in


def test_a_baseline_with_other_columns_fills_nothing_in_rather_than_break_the_schema_for_all():
    agent = _stamped(_alerts(["rates", "fx"], [0.9, 0.1], "model"), "FULL")
    baseline = _stamped(_alerts(["fx"], [1.0], "batch").assign(owner="desk head"), "PASS_THROUGH")
    fill = fill_in(agent, SUPERVISOR.review(agent), KEY, baseline)
    assert fill.proposals is agent and REPLACES not in fill.proposals
    assert (fill.rejected, fill.filled) == (1, 0)
    assert "its baseline returns other columns than the agent (missing [], extra ['owner'])" in fill.note()
    outcome = fill.outcomes.iloc[0].to_dict()
    assert outcome == {
        "entity": "desk=fx",
        "agent proposed": "notify",
        "rejected because": "sure: fx unsure",
        "baseline proposes": "none: the agent's proposal stays rejected",
    }
    assert fill.metadata()["rejected_not_filled"] == 1 and "baseline_fill" in fill.metadata()
