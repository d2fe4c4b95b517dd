"""What every proposals table must satisfy, whatever its schema: finite, keyed once, actions the target takes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest
from pandera.typing import Series

from foureyes.checks.integrity import ACCEPTED_ACTION, FINITE, KEY_PRESENT, UNIQUE_KEY, integrity_findings
from foureyes.checks.supervisor import Supervisor
from foureyes.resources.control_plane.decisions import APPROVED, REJECTED

KEY = ["portfolio_id", "instrument_id"]
ACCEPTED = ["buy", "sell"]


class Lax(pa.DataFrameModel):
    """A schema with every gap an author may leave: no isin on action, no finite check, no unique key."""

    portfolio_id: Series[str] = pa.Field(nullable=True)
    instrument_id: Series[str] = pa.Field(nullable=True)
    trade_value: Series[float] = pa.Field(nullable=True)
    action: Series[str] = pa.Field(nullable=True)
    rationale: Series[str]
    confidence: Series[float]


def _frame(**overrides) -> pd.DataFrame:
    base = {
        "portfolio_id": ["P1", "P1", "P2"],
        "instrument_id": ["X1", "X2", "X3"],
        "trade_value": [100.0, -50.0, 20.0],
        "action": ["buy", "sell", "hold"],
        "rationale": ["r", "r", "r"],
        "confidence": [0.9, 0.8, 0.7],
    }
    return pd.DataFrame({**base, **overrides})


def _rules_of(findings: pd.DataFrame) -> dict[int, set[str]]:
    return {p: set(g["rule"]) for p, g in findings.groupby("position")}


def test_a_well_formed_table_has_no_findings():
    assert integrity_findings(_frame(), KEY, ACCEPTED).empty


@pytest.mark.parametrize("value", [np.inf, -np.inf])
@pytest.mark.parametrize("column", ["trade_value", "confidence"])
def test_an_infinite_number_anywhere_is_a_rejection(column, value):
    frame = _frame(**{column: [1.0, value, 0.5]})
    found = integrity_findings(frame, KEY, ACCEPTED)
    assert _rules_of(found) == {1: {FINITE}}
    assert f"{column} is {value}: not a finite number" in found["message"].tolist()


def test_an_infinity_hidden_in_a_column_of_mixed_objects_is_found():
    frame = _frame(trade_value=pd.Series([1.0, "lots", float("-inf")], dtype=object))
    assert _rules_of(integrity_findings(frame, KEY, ACCEPTED)) == {2: {FINITE}}


@pytest.mark.parametrize(
    "column",
    [
        pd.Series([1.0, 2.0, np.inf], dtype=pd.SparseDtype(object)),
        pd.Series([1 + 0j, 2 + 0j, complex(np.inf, 0)]),
        pd.Series([1.0, 2.0, -np.inf], dtype="Float64"),
        pd.Series([1.0, 2.0, float("inf")], dtype=pd.SparseDtype(float)),
    ],
    ids=["sparse-object", "complex", "nullable-float", "sparse-float"],
)
def test_an_infinity_is_found_whatever_the_column_type(column):
    frame = _frame().assign(trade_value=column.to_numpy() if column.dtype == complex else column.array)
    assert _rules_of(integrity_findings(frame, KEY, ACCEPTED)) == {2: {FINITE}}


def test_nan_is_missing_not_infinite():
    assert integrity_findings(_frame(trade_value=[np.nan, 1.0, 2.0]), KEY, ACCEPTED).empty


@pytest.mark.parametrize("missing", [None, np.nan, "", "   "])
def test_a_missing_natural_key_is_a_rejection(missing):
    frame = _frame(instrument_id=["X1", missing, "X3"])
    assert _rules_of(integrity_findings(frame, KEY, ACCEPTED)) == {1: {KEY_PRESENT}}


def test_every_row_that_repeats_a_natural_key_is_rejected_and_says_how_often():
    frame = _frame(instrument_id=["X1", "X1", "X1"], portfolio_id=["P1", "P1", "P2"])
    found = integrity_findings(frame, KEY, ACCEPTED)
    assert _rules_of(found) == {0: {UNIQUE_KEY}, 1: {UNIQUE_KEY}}
    assert found["message"].iloc[0] == "portfolio_id=P1, instrument_id=X1 is proposed 2 times: one per key"


@pytest.mark.parametrize("action", ["liquidate_everything", "BUY", "buy ", None, 7, ""])
def test_an_action_the_target_does_not_declare_is_rejected_whatever_the_schema(action):
    frame = _frame(action=pd.Series(["buy", action, "hold"], dtype=object))
    found = integrity_findings(frame, KEY, ACCEPTED)
    assert _rules_of(found) == {1: {ACCEPTED_ACTION}}
    assert "its target accepts (buy, hold, sell)" in found["message"].iloc[0]


def test_hold_is_always_accepted_and_no_target_means_no_action_check():
    frame = _frame(action=["hold", "anything", "hold"])
    assert _rules_of(integrity_findings(frame, KEY, [])) == {1: {ACCEPTED_ACTION}}
    assert integrity_findings(frame, KEY, None).empty


def test_the_supervisor_rejects_what_integrity_finds_even_with_a_lax_schema():
    frame = _frame(
        instrument_id=["X1", "X1", "X3"],
        portfolio_id=["P1", "P1", "P2"],
        action=["buy", "buy", "liquidate_everything"],
        trade_value=[1.0, 2.0, np.inf],
    )
    frame.insert(0, "proposal_id", ["a", "b", "c"])
    supervision = Supervisor(schema=Lax, natural_key=KEY).review(frame, {}, accepted_actions=ACCEPTED)
    assert supervision.verdicts.tolist() == [REJECTED] * 3
    assert supervision.integrity == {UNIQUE_KEY: 2, ACCEPTED_ACTION: 1, FINITE: 1}
    assert not supervision.blocked  # drop: the others would go ahead
    fine = _frame()
    fine.insert(0, "proposal_id", ["a", "b", "c"])
    assert (
        Supervisor(schema=Lax, natural_key=KEY).review(fine, {}, accepted_actions=ACCEPTED).verdicts.tolist()
        == [APPROVED] * 3
    )


def test_an_author_cannot_name_a_rule_like_a_builtin_one():
    from foureyes.checks.rule_kinds import Threshold
    from foureyes.resources.errors import AgentDefinitionError

    rule = Threshold(id=FINITE, description="d", column="trade_value", value=1, message="m")
    with pytest.raises(AgentDefinitionError, match=r"rule ids \['finite_values'\] are foureyes' own"):
        Supervisor(schema=Lax, rules=[rule])


def test_findings_are_error_rows_of_position_rule_severity_and_message():
    found = integrity_findings(_frame(trade_value=[np.inf, 1.0, 2.0]), KEY, ACCEPTED)
    assert found.to_dict("records") == [
        {"position": 0, "rule": FINITE, "severity": "error", "message": "trade_value is inf: not a finite number"}
    ]
    assert list(integrity_findings(_frame(), KEY, ACCEPTED).columns) == ["position", "rule", "severity", "message"]


def test_an_infinite_category_is_a_rejection():
    frame = _frame(
        trade_value=pd.Categorical([1.0, np.inf, None]),
        confidence=pd.Categorical(["high", None, -np.inf]),
    )
    found = integrity_findings(frame, KEY, ACCEPTED)
    assert found[["position", "message"]].values.tolist() == [
        [1, "trade_value is inf: not a finite number"],
        [2, "confidence is -inf: not a finite number"],
    ]
    assert integrity_findings(_frame(trade_value=pd.Categorical([None, None, None])), KEY, ACCEPTED).empty


def test_an_infinity_in_a_nullable_float_column_is_found_beside_missing_values():
    frame = _frame(trade_value=pd.array([1.0, None, -np.inf], dtype="Float64"))
    found = integrity_findings(frame, KEY, ACCEPTED)
    assert found[["position", "message"]].values.tolist() == [[2, "trade_value is -inf: not a finite number"]]


def test_whole_numbers_flags_and_times_are_never_infinite():
    frame = _frame().assign(
        quantity=[1, 2, 3], urgent=[True, False, True], at=pd.to_datetime(["2026-11-20"] * 3), note=["a", None, "c"]
    )
    assert integrity_findings(frame, KEY, ACCEPTED).empty


def test_ignored_columns_are_skipped_and_the_columns_after_them_still_judged():
    frame = _frame(trade_value=[1.0, np.inf, 2.0])
    frame.insert(0, "tier", [np.inf, np.inf, np.inf])
    found = integrity_findings(frame, KEY, ACCEPTED, ignored_columns=("tier",))
    assert found[["position", "message"]].values.tolist() == [[1, "trade_value is inf: not a finite number"]]


def test_rows_missing_a_key_are_not_also_counted_as_duplicates():
    frame = _frame(portfolio_id=[None, None, "P2"], instrument_id=["X1", "X1", "X3"])
    found = integrity_findings(frame, KEY, ACCEPTED)
    assert _rules_of(found) == {0: {KEY_PRESENT}, 1: {KEY_PRESENT}}
    assert found["message"].tolist() == ["natural key portfolio_id is missing"] * 2


def test_an_empty_table_has_no_findings():
    empty = _frame().iloc[0:0]
    assert integrity_findings(empty, KEY, ACCEPTED).empty
    assert integrity_findings(empty.astype(object), KEY, ACCEPTED).empty
