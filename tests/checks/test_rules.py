"""The rule engine: vectorised masks, filters, messages, and safe failure."""

from __future__ import annotations

import pandas as pd
import pytest

from checks.rules import ERROR, WARN, Predicate, Threshold, evaluate
from resources.errors import AgentDefinitionError

PROPOSALS = pd.DataFrame(
    {
        "portfolio_id": ["A", "B", "C", "D"],
        "action": ["reduce_exposure", "reduce_exposure", "hold", "escalate"],
        "reduction_pct": [0.2, 0.8, 0.9, None],
        "confidence": [0.9, 0.5, 0.1, 0.95],
    }
)

MAX_CUT = Threshold(
    id="max_cut",
    description="cuts at most 50%",
    column="reduction_pct",
    op="<=",
    value=0.5,
    when={"action": "reduce_exposure"},
    message="{portfolio_id}: cut {reduction_pct:.0%} > 50%",
)


def test_threshold_applies_only_where_its_filter_matches():
    report = evaluate([MAX_CUT], PROPOSALS)
    assert report.outcomes[0].broken.tolist() == [False, True, False, False]
    assert report.rejected().tolist() == [False, True, False, False]
    assert MAX_CUT.explain(PROPOSALS.loc[1].to_dict()) == "B: cut 80% > 50%"


def test_a_missing_value_breaks_a_threshold():
    rule = Threshold(
        id="has_cut",
        description="",
        column="reduction_pct",
        op=">=",
        value=0.0,
        message="{portfolio_id}",
    )
    assert evaluate([rule], PROPOSALS).outcomes[0].broken.tolist() == [False, False, False, True]


def test_warnings_are_recorded_but_do_not_reject():
    low = Threshold(
        id="low_conf",
        description="",
        column="confidence",
        op=">=",
        value=0.6,
        severity=WARN,
        message="{portfolio_id}",
    )
    report = evaluate([low], PROPOSALS)
    assert report.counts() == {"low_conf": 2}
    assert not report.rejected().any()


def test_predicate_rules_see_references():
    restricted = pd.DataFrame({"portfolio_id": ["C"]})
    rule = Predicate(
        id="restricted",
        description="",
        message="{portfolio_id} is restricted",
        test=lambda p, refs: p["portfolio_id"].isin(refs["restricted"]["portfolio_id"]),
    )
    assert evaluate([rule], PROPOSALS, {"restricted": restricted}).rejected().tolist() == [
        False,
        False,
        True,
        False,
    ]


def test_a_rule_that_crashes_rejects_everything_and_says_why():
    broken = Threshold(id="typo", description="", column="no_such_column", op="<", value=1, message="x")
    report = evaluate([broken], PROPOSALS)
    assert report.rejected().all()
    assert report.outcomes[0].rule.severity == ERROR
    assert "rule typo could not be evaluated (KeyError" in report.outcomes[0].rule.message


def test_an_unformattable_message_still_names_the_rule():
    rule = Threshold(id="r", description="", column="confidence", op=">", value=2, message="{nope:.0%}")
    assert rule.explain(PROPOSALS.loc[0].to_dict()) == "r: {nope:.0%}"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"severity": "fatal"}, "severity 'fatal' is not one of 'error', 'warn'"),
        ({"op": "=~"}, r"op '=~' is not one of \['!=', '<', '<=', '==', '>', '>='\]"),
    ],
)
def test_bad_rule_declarations_are_refused(kwargs, match):
    with pytest.raises(AgentDefinitionError, match=match):
        Threshold(id="r", description="", column="x", message="m", **kwargs)
