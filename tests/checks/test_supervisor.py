"""The Supervisor's verdicts: schema failures block, rejections drop or block by policy."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
import pytest
from pandera.typing import Series

from checks.approval_policy import ApprovalPolicy
from checks.reviewer import Review, Reviewer
from checks.rule_kinds import Threshold
from checks.supervisor import BLOCK, DROP, SCHEMA_RULE, Supervisor
from resources.decision_log import APPROVED, PENDING, REJECTED
from resources.errors import AgentDefinitionError


class Proposals(pa.DataFrameModel):
    proposal_id: Series[str] = pa.Field(unique=True)
    amount: Series[float] = pa.Field(ge=0)
    action: Series[str] = pa.Field(isin=["buy", "hold"])
    rationale: Series[str]
    confidence: Series[float] = pa.Field(ge=0, le=1)


LIMIT = Threshold(
    id="limit",
    description="",
    column="amount",
    op="<=",
    value=100,
    message="{proposal_id}: {amount} > 100",
)


def _proposals(**overrides) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "proposal_id": ["p1", "p2", "p3"],
            "amount": [10.0, 500.0, 50.0],
            "action": ["buy", "buy", "hold"],
            "rationale": ["r"] * 3,
            "confidence": [0.9] * 3,
        }
    )
    return frame.assign(**overrides)


def test_drop_rejects_only_the_offending_proposal():
    result = Supervisor(schema=Proposals, rules=[LIMIT], on_rejection=DROP).review(_proposals())
    assert result.verdicts.tolist() == [APPROVED, REJECTED, APPROVED]
    assert not result.blocked
    assert [r.message for r in result.reasons()[1]] == ["p2: 500.0 > 100"]


def test_block_rejects_the_whole_batch_and_says_why():
    result = Supervisor(schema=Proposals, rules=[LIMIT], on_rejection=BLOCK).review(_proposals())
    assert result.verdicts.tolist() == [REJECTED] * 3
    assert result.blocked
    assert "batch blocked: 1 proposal(s) rejected, e.g. p2: 500.0 > 100" in result.block_reason
    assert result.reasons()[0][-1].rule == "batch_blocked"


def test_a_schema_failure_always_blocks_even_under_drop():
    bad = _proposals(amount=[10.0, -5.0, float("nan")])
    result = Supervisor(schema=Proposals, rules=[LIMIT], on_rejection=DROP).review(bad)
    assert result.blocked and result.rules is None
    assert result.verdicts.tolist() == [REJECTED] * 3
    reasons = result.reasons()
    assert reasons[1][0].rule == SCHEMA_RULE
    assert "amount: greater_than_or_equal_to(0) failed for -5.0" in reasons[1][0].message
    assert "another proposal in the batch failed the schema" in reasons[0][0].message


def test_a_missing_column_blocks_with_a_table_level_reason():
    result = Supervisor(schema=Proposals, rules=[LIMIT]).review(_proposals().drop(columns=["confidence"]))
    assert result.blocked
    assert "confidence" in result.reasons()[0][0].message


def test_policies_and_rule_ids_are_checked():
    with pytest.raises(AgentDefinitionError, match="on_rejection 'ignore' is not one of 'drop', 'block'"):
        Supervisor(schema=Proposals, on_rejection="ignore")
    with pytest.raises(AgentDefinitionError, match="rule and reviewer ids must be unique"):
        Supervisor(schema=Proposals, rules=[LIMIT, LIMIT])


class Vetoes(Reviewer):
    id = "second_opinion"

    def review(self, proposals, references):
        vetoed = proposals["amount"] > references["limits"].loc[0, "soft_cap"]
        return Review(vetoed, vetoed.map({True: "above the soft cap", False: ""}))


class Broken(Reviewer):
    id = "flaky"

    def review(self, proposals, references):
        raise TimeoutError("model server did not answer")


def test_a_reviewer_vetoes_with_its_reason():
    refs = {"limits": pd.DataFrame({"soft_cap": [40.0]})}
    result = Supervisor(schema=Proposals, reviewers=[Vetoes()]).review(_proposals(), refs)
    assert result.verdicts.tolist() == [APPROVED, REJECTED, REJECTED]
    assert result.vetoes == {"second_opinion": 2}
    assert [(r.rule, r.message) for r in result.reasons()[1]] == [("second_opinion", "above the soft cap")]


def test_a_failing_reviewer_vetoes_everything_to_be_safe():
    result = Supervisor(schema=Proposals, reviewers=[Broken()]).review(_proposals())
    assert (result.verdicts == REJECTED).all()
    assert "reviewer flaky failed (TimeoutError: model server did not answer); vetoed to be safe" in (
        result.reasons()[0][0].message
    )


def test_large_actions_wait_for_one_or_two_approvers_and_reports_never_do():
    policy = ApprovalPolicy(
        id="big",
        description="",
        column="amount",
        above=20,
        four_eyes_above=100,
        summary="{proposal_id}: {amount}",
    )
    result = Supervisor(schema=Proposals, approval=policy).review(_proposals(amount=[10.0, 500.0, 50.0]))
    assert result.verdicts.tolist() == [APPROVED, PENDING, APPROVED]  # p3 is a hold: a report
    assert result.required_approvals.tolist() == [0, 2, 0]
    assert result.reasons()[1][0].message == "needs 2 approvals (big): p2: 500.0"


def test_rejected_proposals_never_go_to_approval():
    policy = ApprovalPolicy(id="big", description="", column="amount", above=20)
    result = Supervisor(schema=Proposals, rules=[LIMIT], approval=policy).review(_proposals())
    assert result.verdicts.tolist() == [APPROVED, REJECTED, APPROVED]
    assert result.required_approvals.tolist() == [0, 0, 0]


def test_an_unreadable_size_needs_two_approvers():
    policy = ApprovalPolicy(id="big", description="", column="amount", above=20)
    frame = _proposals(amount=[10.0, 500.0, 50.0]).assign(notional=["1", "x", "3"])
    required = ApprovalPolicy(id="n", description="", column="notional", above=2).required_approvals(frame)
    assert required.tolist() == [0, 2, 1]
    with pytest.raises(AgentDefinitionError, match=r"four_eyes_above .* is below above"):
        ApprovalPolicy(id="bad", description="", column="amount", above=20, four_eyes_above=10)
    assert policy.required_approvals(frame).tolist() == [0, 1, 1]
