"""The supervisor's decisions, built column by column from a proposals table, are the decisions built
one row at a time from its ``json_records``: the same proposal JSON text, ids, tiers, reasons and order."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from foureyes.checks.replaced_proposals import FILLED_BY_BASELINE, INFO, ReplacedProposal
from foureyes.checks.supervision_checks import _approved_actions, _decisions
from foureyes.checks.supervisor import Supervision
from foureyes.resources.control_plane.agent_runs import AgentRunRecord
from foureyes.resources.control_plane.decisions import (
    APPROVED,
    PENDING,
    REJECTED,
    Decision,
    DecisionColumns,
    Reason,
    SupervisionRecord,
)
from foureyes.resources.json_values import json_records

AT = dt.datetime(2026, 11, 20, 18, 30, tzinfo=dt.UTC)
RECORD = SupervisionRecord("s1", "toy", "d1", "v1", False, "", {}, run_id="run", supervised_at=AT)
TEXT = st.sampled_from(["", "buy", "hold", 'a "quote"', "back\\slash", "tab\t%s", "ünï 😀", "x" * 500]) | st.text(
    max_size=12
)
FLOAT = st.floats() | st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e300, 0.1])


def _per_row(proposals: pd.DataFrame, supervision: Supervision, run, replaced) -> list[Decision]:
    """The decisions as the supervisor built them before, one row and one dict at a time."""
    reasons = supervision.reasons()
    out = []

    def decision(proposal_id, proposal, verdict, why, by_model) -> Decision:
        tier, confidence = proposal.get("tier"), proposal.get("confidence")
        finite = isinstance(confidence, int | float) and not isinstance(confidence, bool) and math.isfinite(confidence)
        return Decision(
            agent="toy",
            partition="d1",
            proposal_id=proposal_id,
            proposals_version="v1",
            supervision_id="s1",
            action=str(proposal.get("action") or "unknown"),
            proposal=proposal,
            rationale=str(proposal.get("rationale") or ""),
            confidence=float(confidence) if finite else None,
            verdict=verdict,
            reasons=why,
            run_id="run",
            tier=tier if isinstance(tier, str) and tier else (run.tier if run else None),
            model=(run.model if run else None) if by_model else None,
            decided_at=AT,
        )

    for position, proposal, verdict in zip(
        proposals.index, json_records(proposals), supervision.verdicts.to_numpy(), strict=True
    ):
        proposal_id = str(proposal.get("proposal_id") or f"row-{position}")
        own, replacing = reasons.get(position, ()), replaced.get(position, ())
        if replacing:
            note = (
                f"replaced by the baseline's proposal {proposal_id} ({proposal.get('action')}): nothing of it executes"
            )
            filled_by = Reason(FILLED_BY_BASELINE, INFO, note)
            out += [
                decision(r.proposal_id, dict(r.proposal), REJECTED, (*r.reasons, filled_by), True) for r in replacing
            ]
            own += tuple(Reason(FILLED_BY_BASELINE, INFO, f"in place of the agent's {r.describe()}") for r in replacing)
        out.append(decision(proposal_id, proposal, str(verdict), own, not replacing))
    return out


@st.composite
def tables(draw) -> pd.DataFrame:
    """Proposals tables with every kind of column json_records meets, under odd names."""
    n = draw(st.integers(1, 12))
    column = {
        "text": st.lists(TEXT, min_size=n, max_size=n),
        "text or missing": st.lists(st.none() | TEXT, min_size=n, max_size=n),
        "floats": st.lists(FLOAT, min_size=n, max_size=n).map(lambda v: np.array(v, dtype=float)),
        "float32": st.lists(st.floats(width=32), min_size=n, max_size=n).map(lambda v: np.array(v, dtype="float32")),
        "ints": st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n).map(np.array),
        "nullable ints": st.lists(st.none() | st.integers(-100, 100), min_size=n, max_size=n).map(
            lambda v: pd.array(v, dtype="Int64")
        ),
        "bools": st.lists(st.booleans(), min_size=n, max_size=n).map(np.array),
        "times": st.lists(
            st.none() | st.datetimes(dt.datetime(1700, 1, 1), dt.datetime(2200, 1, 1), timezones=st.just(dt.UTC)),
            min_size=n,
            max_size=n,
        ).map(lambda v: pd.to_datetime(v, utc=True)),
        "mixed": st.lists(
            st.none() | TEXT | FLOAT | st.integers() | st.lists(st.integers(), max_size=2), min_size=n, max_size=n
        ).map(lambda v: pd.Series(v, dtype=object)),
    }
    names = ["proposal_id", "action", "rationale", "confidence", "tier", '100% "odd" \\ name', "ü"]
    frame = {}
    for name in draw(st.lists(st.sampled_from(names), unique=True, max_size=len(names))):
        frame[name] = draw(column[draw(st.sampled_from(sorted(column)))])
    index = draw(st.sampled_from([pd.RangeIndex(n), pd.Index([f"r{i}" for i in range(n)][::-1])]))
    return pd.DataFrame(frame, index=index) if frame else pd.DataFrame(index=index)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_decisions_built_by_column_are_those_built_by_row(data):
    proposals = data.draw(tables())
    n, labels = len(proposals), list(proposals.index)
    verdicts = pd.Series(data.draw(st.lists(st.sampled_from([APPROVED, REJECTED, PENDING]), min_size=n, max_size=n)))
    verdicts.index = proposals.index
    flagged = data.draw(st.lists(st.sampled_from(labels), max_size=4))
    findings = pd.DataFrame(
        {
            "position": flagged,
            "rule": "r",
            "severity": "error",
            "message": [f"bad {i} \t\\" for i in range(len(flagged))],
        }
    )
    supervision = Supervision(verdicts, findings, None, None, {}, pd.Series(0, index=proposals.index), False)
    run = data.draw(st.sampled_from([None, AgentRunRecord("toy", "d1", "v1", "CONSTRAINED", "stale input", [], "m")]))
    rejected = (Reason("max", "error", "too big"),)
    replaced = {
        label: (ReplacedProposal({"proposal_id": f"agent-{label}", "action": "sell", "confidence": 2}, rejected),)
        for label in data.draw(st.lists(st.sampled_from(labels), unique=True, max_size=2))
    }

    built = _decisions(RECORD, proposals, supervision, run, replaced)
    expected = DecisionColumns.of(_per_row(proposals, supervision, run, replaced))
    assert len(built) == len(expected)
    for name in expected.columns:
        assert [built.value(name, i) for i in range(len(built))] == expected.columns[name], name
    assert [e.proposal_id for e in _approved_actions(built, "books")] == [
        d.proposal_id
        for d in map(expected.decision, range(len(expected)))
        if d.verdict == APPROVED and d.action != "hold"
    ]
