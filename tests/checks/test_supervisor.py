"""The Supervisor's verdicts: schema failures block, rejections drop or block by policy."""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
import pytest
from pandera.typing import Series

from checks.rules import Threshold
from checks.supervisor import BLOCK, DROP, SCHEMA_RULE, Supervisor
from resources.decision_log import APPROVED, REJECTED
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
    assert [r.message for r in result.reasons[1]] == ["p2: 500.0 > 100"]


def test_block_rejects_the_whole_batch_and_says_why():
    result = Supervisor(schema=Proposals, rules=[LIMIT], on_rejection=BLOCK).review(_proposals())
    assert result.verdicts.tolist() == [REJECTED] * 3
    assert result.blocked
    assert "batch blocked: 1 proposal(s) broke a rule, e.g. p2: 500.0 > 100" in result.block_reason
    assert result.reasons[0][-1].rule == "batch_blocked"


def test_a_schema_failure_always_blocks_even_under_drop():
    bad = _proposals(amount=[10.0, -5.0, float("nan")])
    result = Supervisor(schema=Proposals, rules=[LIMIT], on_rejection=DROP).review(bad)
    assert result.blocked and result.rules is None
    assert result.verdicts.tolist() == [REJECTED] * 3
    assert result.reasons[1][0].rule == SCHEMA_RULE
    assert "amount: greater_than_or_equal_to(0) failed for -5.0" in result.reasons[1][0].message
    assert "another proposal in the batch failed the schema" in result.reasons[0][0].message


def test_a_missing_column_blocks_with_a_table_level_reason():
    result = Supervisor(schema=Proposals, rules=[LIMIT]).review(_proposals().drop(columns=["confidence"]))
    assert result.blocked
    assert "confidence" in result.reasons[0][0].message


def test_policies_and_rule_ids_are_checked():
    with pytest.raises(AgentDefinitionError, match="on_rejection 'ignore' is not one of 'drop', 'block'"):
        Supervisor(schema=Proposals, on_rejection="ignore")
    with pytest.raises(AgentDefinitionError, match="rule ids must be unique"):
        Supervisor(schema=Proposals, rules=[LIMIT, LIMIT])
