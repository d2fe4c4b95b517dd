"""An adversarial agent against the real pipeline: whatever it proposes, the books stay clean.

Hypothesis plays a malicious or broken agent — arbitrary values and types, NaN and infinities,
missing and extra columns, duplicate keys, forged proposal ids, injection strings — and
random humans then vote on whatever went to approval (the agent itself included). After every
example, over everything that reached the books:

* no action executed without an approved verdict (or a granted approval) of its proposal;
* no executed action breaks a hard rule;
* no proposal that needed approval executed before it was granted.
"""

import contextlib
import tempfile
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from checks.rules import evaluate
from checks.supervisor import MACHINERY_COLUMNS
from resources.action_targets import SqlBooksTarget
from resources.approvals import APPROVED as GRANTED
from resources.approvals import ApprovalError
from resources.control_plane import ControlPlaneResource
from resources.decision_log import APPROVED, PENDING
from resources.engine import dispose_all
from tests.integration.toy_desk import HARD_RULES, LIMITS, RESTRICTED, Trades, desk, run_desk

NASTY_TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["'; DROP TABLE toy_books; --", "{action}", "\\N", "", " ", "X9\n", "../../etc/passwd"]),
)
PLAUSIBLE = {  # well-typed values that still try every rule: restricted buys, oversize, wrong signs
    "portfolio_id": st.sampled_from(["P1", "P2"]),
    "instrument_id": st.sampled_from(["X1", "X2", "X9"]),
    "trade_value": st.floats(min_value=-2000, max_value=2000),
    "action": st.sampled_from(["buy", "sell", "hold"]),
    "rationale": st.sampled_from(["momentum", "trust me"]),
    "confidence": st.floats(0, 1),
    "proposal_id": st.sampled_from(["P1-X1", "forged"]),
}
NASTY = {
    "portfolio_id": st.one_of(st.sampled_from(["P3"]), NASTY_TEXT, st.none(), st.integers()),
    "instrument_id": st.one_of(st.sampled_from(["x9", "X9 "]), NASTY_TEXT, st.none()),
    "trade_value": st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-(10**12), 10**12),
        st.sampled_from([None, "1e3", "lots"]),
    ),
    "action": st.one_of(st.sampled_from(["BUY", "execute_all"]), NASTY_TEXT, st.none()),
    "rationale": st.one_of(NASTY_TEXT, st.none()),
    "confidence": st.one_of(st.floats(allow_nan=True), st.sampled_from([None, "high", 7.0])),
    "proposal_id": NASTY_TEXT,
}
CELLS = {name: st.one_of(PLAUSIBLE[name], PLAUSIBLE[name], NASTY[name]) for name in PLAUSIBLE}


@st.composite
def plausible_row(draw) -> dict:
    """Mostly consistent (sign matches side, sizes near the limits), sometimes not."""
    row = {name: draw(strategy) for name, strategy in PLAUSIBLE.items()}
    size = draw(st.floats(min_value=1, max_value=1500))
    consistent = draw(st.sampled_from([True, True, True, False]))
    sign = {"buy": 1, "sell": -1, "hold": 0}[row["action"]] * (1 if consistent else -1)
    row["trade_value"] = sign * size if row["action"] != "hold" or not consistent else 0.0
    return row


@st.composite
def adversarial_proposals(draw) -> pd.DataFrame:
    """Two thirds plausible (typed, one proposal per holding, trying every rule), one third anything."""
    if draw(st.sampled_from(["plausible", "plausible", "anything"])) == "plausible":
        rows = draw(st.lists(plausible_row(), min_size=1, max_size=6))
        return pd.DataFrame(rows, columns=list(PLAUSIBLE)).drop_duplicates(["portfolio_id", "instrument_id"])
    frame = pd.DataFrame(draw(st.lists(st.fixed_dictionaries(CELLS), max_size=8)), columns=list(CELLS))
    for column in draw(st.sets(st.sampled_from(list(CELLS)), max_size=2)):
        frame = frame.drop(columns=[column])
    if draw(st.booleans()):
        frame["approved"] = True  # the agent claims its own approval: it must not matter
    return frame


VOTES = st.lists(
    st.tuples(
        st.sampled_from(["alice", "bob", "agent:toy", "alice"]),
        st.sampled_from(["approve", "approve", "reject"]),
    ),
    max_size=4,
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(proposals=adversarial_proposals(), votes=VOTES)
def test_nothing_an_adversarial_agent_proposes_reaches_the_books_unsupervised(proposals, votes):
    with tempfile.TemporaryDirectory() as home:
        url = f"sqlite:///{Path(home) / 'desk.db'}"
        defs = desk(propose=lambda ctx: proposals.copy())
        run_desk(url, defs)
        control = ControlPlaneResource(url=url)
        for approval in control.approvals.find(status="pending"):
            for who, decision in votes:
                # a refusal (self-approval, second vote, already decided) is exactly what must happen
                with contextlib.suppress(ApprovalError):
                    control.approvals.decide(approval.approval_id, by=who, decision=decision, reason="hypothesis")
        run_desk(url, defs, only_executor=True)  # what the approvals sensor would launch
        _assert_books_are_clean(url, control)
        dispose_all()


def _assert_books_are_clean(url: str, control: ControlPlaneResource) -> None:
    booked = SqlBooksTarget(url=url, table="toy_books").booked()
    event(f"actions booked: {'some' if booked else 'none'}")
    if not booked:
        return
    supervisions = control.decision_log.latest_supervisions("toy", "d1")
    decisions = {d.proposal_id: d for s in supervisions for d in control.decision_log.of_supervision(s.supervision_id)}
    approvals = {a.proposal_id: a for a in control.approvals.find(agent="toy")}
    for row in booked:
        decision = decisions[row["proposal_id"]]
        assert decision.verdict in (APPROVED, PENDING), (row, decision)
        if decision.verdict == PENDING:
            approval = approvals[row["proposal_id"]]
            assert approval.status == GRANTED, (row, approval)
            assert approval.decided_at <= row["booked_at"].replace(tzinfo=approval.decided_at.tzinfo)
            assert "agent:toy" not in approval.approvers
            assert len(set(approval.approvers)) >= approval.required
    executed = pd.DataFrame([decisions[r["proposal_id"]].proposal for r in booked])
    assert set(executed["tier"]) == {"FULL"}
    Trades.validate(executed.drop(columns=list(MACHINERY_COLUMNS)).astype({"trade_value": float, "confidence": float}))
    report = evaluate(HARD_RULES, executed.astype({"trade_value": float}), {"restricted": RESTRICTED, "limits": LIMITS})
    assert not report.rejected().any(), report.findings()


def test_the_adversary_can_reach_the_books_when_it_behaves():
    """The property above is not vacuous: well-formed proposals do get executed."""
    good = pd.DataFrame(
        {
            "portfolio_id": ["P1"],
            "instrument_id": ["X1"],
            "trade_value": [100.0],
            "action": ["buy"],
            "rationale": ["fine"],
            "confidence": [0.9],
        }
    )
    with tempfile.TemporaryDirectory() as home:
        url = f"sqlite:///{Path(home) / 'desk.db'}"
        result = run_desk(url, desk(propose=lambda ctx: good.copy()))
        assert result.success
        assert len(SqlBooksTarget(url=url, table="toy_books").booked()) == 1
        dispose_all()
