"""The Supervisor's verdicts: schema failures block, rejections drop or block by policy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest
from pandera.typing import Series

from foureyes.checks.approval_policy import ApprovalPolicy
from foureyes.checks.reviewer import Review, Reviewer
from foureyes.checks.rule_kinds import Predicate, Threshold
from foureyes.checks.supervisor import (
    APPROVAL_SEVERITY,
    BATCH_BLOCKED,
    BLOCK,
    DROP,
    FINDING_COLUMNS,
    SCHEMA_RULE,
    Supervisor,
)
from foureyes.resources.control_plane.decisions import APPROVED, PENDING, REJECTED, Reason
from foureyes.resources.errors import AgentDefinitionError


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


@pytest.mark.parametrize(
    ("size", "required"),
    [(300.0, 0), (300.01, 1), (-300.01, 1), (500.0, 1), (500.01, 2), (-500.01, 2), (float("nan"), 2)],
)
def test_an_approval_policy_is_decided_exactly_at_its_cut_offs(size, required):
    from foureyes.checks.approval_policy import ApprovalPolicy

    policy = ApprovalPolicy(id="big", description="", column="amount", above=300, four_eyes_above=500)
    assert policy.required_approvals(pd.DataFrame({"amount": [size]})).tolist() == [required]


def test_a_clean_batch_is_approved_with_no_findings_and_no_approvals():
    result = Supervisor(schema=Proposals, rules=[LIMIT]).review(_proposals(amount=[10.0, 20.0, 30.0]))
    assert result.verdicts.tolist() == [APPROVED] * 3
    assert (result.count(APPROVED), result.count(REJECTED), result.count(PENDING)) == (3, 0, 0)
    assert result.reasons() == {}
    assert list(result.findings.columns) == FINDING_COLUMNS and result.findings.empty
    assert result.required_approvals.tolist() == [0, 0, 0]
    assert result.required_approvals.index.equals(result.verdicts.index)
    assert result.blocked is False and result.block_reason == ""
    assert result.schema.passed and result.rules.counts() == {"limit": 0}
    assert result.vetoes == {} and result.integrity == {}


def test_verdicts_and_reasons_keep_the_proposals_own_index():
    policy = ApprovalPolicy(id="big", description="", column="amount", above=20, summary="{proposal_id}")
    frame = _proposals(amount=[10.0, 500.0, 50.0], action=["buy", "buy", "buy"]).set_axis([5, 6, 7])
    result = Supervisor(schema=Proposals, rules=[LIMIT], approval=policy).review(frame)
    assert result.verdicts.to_dict() == {5: APPROVED, 6: REJECTED, 7: PENDING}
    assert result.required_approvals.to_dict() == {5: 0, 6: 0, 7: 1}
    assert {p: [r.rule for r in rs] for p, rs in result.reasons().items()} == {6: ["limit"], 7: ["big"]}


def test_every_reason_names_its_source_and_severity_and_findings_are_numbered():
    policy = ApprovalPolicy(
        id="big", description="", column="amount", above=5, four_eyes_above=1000, summary="{amount}"
    )
    refs = {"limits": pd.DataFrame({"soft_cap": [40.0]})}
    frame = _proposals(amount=[10.0, 500.0, 50.0], action=["buy", "buy", "buy"])
    result = Supervisor(schema=Proposals, rules=[LIMIT], reviewers=[Vetoes()], approval=policy).review(frame, refs)
    assert result.verdicts.tolist() == [PENDING, REJECTED, REJECTED]
    assert result.reasons() == {
        0: (Reason("big", APPROVAL_SEVERITY, "needs 1 approval (big): 10.0"),),
        1: (Reason("limit", "error", "p2: 500.0 > 100"), Reason("second_opinion", "error", "above the soft cap")),
        2: (Reason("second_opinion", "error", "above the soft cap"),),
    }
    assert APPROVAL_SEVERITY == "approval"
    assert result.findings.index.tolist() == [0, 1, 2, 3]
    assert result.vetoes == {"second_opinion": 2}


def test_a_rule_rejection_stands_when_a_reviewer_vetoes_nothing():
    refs = {"limits": pd.DataFrame({"soft_cap": [1000.0]})}
    result = Supervisor(schema=Proposals, rules=[LIMIT], reviewers=[Vetoes()]).review(_proposals(), refs)
    assert result.verdicts.tolist() == [APPROVED, REJECTED, APPROVED]
    assert result.vetoes == {"second_opinion": 0}


def test_the_rules_see_the_references():
    over_cap = Predicate(
        id="soft_cap",
        description="",
        message="{proposal_id} is above the soft cap",
        test=lambda p, refs: p["amount"] > refs["limits"].loc[0, "soft_cap"],
    )
    refs = {"limits": pd.DataFrame({"soft_cap": [40.0]})}
    result = Supervisor(schema=Proposals, rules=[over_cap]).review(_proposals(), refs)
    assert result.verdicts.tolist() == [APPROVED, REJECTED, REJECTED]
    assert [r.message for r in result.reasons()[2]] == ["p3 is above the soft cap"]


def test_a_blocked_batch_keeps_every_finding_and_waits_for_no_approval():
    policy = ApprovalPolicy(id="big", description="", column="amount", above=5)
    refs = {"limits": pd.DataFrame({"soft_cap": [400.0]})}
    frame = _proposals(action=["buy", "buy", "buy"])
    supervisor = Supervisor(schema=Proposals, rules=[LIMIT], reviewers=[Vetoes()], approval=policy, on_rejection=BLOCK)
    result = supervisor.review(frame, refs, accepted_actions=["sell"])
    why = "batch blocked: 3 proposal(s) rejected, e.g. action 'buy' is not one its target accepts (hold, sell)"
    assert result.blocked is True and result.block_reason == why
    assert result.verdicts.tolist() == [REJECTED] * 3 and result.count(REJECTED) == 3
    assert result.required_approvals.tolist() == [0, 0, 0]
    assert result.required_approvals.index.equals(frame.index)
    assert result.schema.passed and result.rules.counts() == {"limit": 1}
    assert result.vetoes == {"second_opinion": 1}
    assert result.integrity == {"accepted_action": 3}
    assert result.reasons()[1] == (
        Reason("accepted_action", "error", "action 'buy' is not one its target accepts (hold, sell)"),
        Reason("limit", "error", "p2: 500.0 > 100"),
        Reason("second_opinion", "error", "above the soft cap"),
        Reason(BATCH_BLOCKED, "error", why),
    )


def test_a_schema_block_says_what_failed_on_each_row_and_keeps_the_integrity_findings():
    policy = ApprovalPolicy(id="big", description="", column="amount", above=5)
    bad = _proposals(amount=[np.inf, -5.0, 50.0], confidence=[0.9, 2.0, 0.5])
    result = Supervisor(schema=Proposals, rules=[LIMIT], approval=policy).review(bad)
    why = "proposals table failed its schema (2 failure case(s))"
    assert result.blocked is True and result.block_reason == why
    assert result.rules is None and result.vetoes == {}
    assert not result.schema.passed and len(result.schema.failure_cases) == 2
    assert result.required_approvals.tolist() == [0, 0, 0]
    assert result.required_approvals.index.equals(bad.index)
    assert result.integrity == {"finite_values": 1}
    other = f"{why}: another proposal in the batch failed the schema"
    assert result.reasons() == {
        0: (
            Reason("finite_values", "error", "amount is inf: not a finite number"),
            Reason(SCHEMA_RULE, "error", other),
        ),
        1: (
            Reason(
                SCHEMA_RULE,
                "error",
                f"{why}: amount: greater_than_or_equal_to(0) failed for -5.0; "
                "confidence: less_than_or_equal_to(1) failed for 2.0",
            ),
        ),
        2: (Reason(SCHEMA_RULE, "error", other),),
    }
    assert result.findings.index.tolist() == [0, 1, 2, 3]


def test_every_table_wide_schema_failure_is_named():
    result = Supervisor(schema=Proposals).review(_proposals().drop(columns=["confidence", "rationale"]))
    assert result.reasons()[2] == (
        Reason(
            SCHEMA_RULE,
            "error",
            "proposals table failed its schema (2 failure case(s)): "
            "Proposals: column_in_dataframe (rationale); Proposals: column_in_dataframe (confidence)",
        ),
    )


def test_the_columns_foureyes_adds_are_not_judged_as_the_agents_proposals():
    frame = _proposals().assign(tier=np.inf, served_inputs=-np.inf, replaces=np.inf)
    result = Supervisor(schema=Proposals).review(frame)
    assert result.verdicts.tolist() == [APPROVED] * 3 and result.integrity == {}


def test_no_rule_can_pass_itself_off_as_a_baseline_fill_in():
    rule = Threshold(id="filled_by_baseline", description="", column="amount", value=1, message="m")
    with pytest.raises(AgentDefinitionError, match=r"rule ids \['filled_by_baseline'\] are foureyes' own"):
        Supervisor(schema=Proposals, rules=[rule])


@pytest.mark.parametrize(
    "approval",
    [None, ApprovalPolicy(id="size", description="", column="amount", above=1000)],
    ids=["no policy", "a policy blind to it"],
)
def test_a_proposal_whose_agent_asked_for_a_human_always_waits_for_one(approval):
    """An interrupt's row (``human_approvals``) needs people whatever approval policy the agent declared."""
    asked = _proposals(amount=[10.0, 20.0, 30.0], action=["buy"] * 3).assign(human_approvals=[0, 1, 2])
    supervisor = Supervisor(schema=Proposals, approval=approval)
    result = supervisor.review(asked)
    assert result.verdicts.tolist() == [APPROVED, PENDING, PENDING]
    assert result.required_approvals.tolist() == [0, 1, 2]
    assert supervisor.approval_policy(asked).id == ("human_in_the_loop" if approval is None else "size")
