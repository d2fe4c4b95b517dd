"""An adversarial agent against the real pipeline: whatever it proposes, the books stay clean.

Hypothesis plays a malicious or broken agent — near-limit and over-limit trades, wrong
signs, restricted instruments spelled oddly, actions nobody declared, NaN and infinities,
missing and extra columns, duplicate keys, forged proposal ids, injection strings — and
random people then vote on whatever went to approval (the agent itself, in several
spellings, among them). After every example, everything that reached the books is judged
by an oracle written from the rules' plain meaning, in plain Python — not by the rule
engine under test:

* it is a buy or a sell (what the books accept), of a finite amount whose sign matches;
* a buy is never of the restricted instrument, however it is spelled;
* its size is within its portfolio's limit;
* above 300 it was approved, before it was booked, by enough distinct people (two above
  500), none of them an agent;
* each (portfolio, instrument) is booked once.

Most examples are well-behaved enough that something is booked, so the property is about
real bookings, not vacuously true.
"""

import contextlib
import datetime as dt
import math
import tempfile
import unicodedata
from collections import Counter
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foureyes.resources.control_plane.approvals import APPROVED as GRANTED
from foureyes.resources.control_plane.principal_book import APPROVE, READ, Principal
from foureyes.resources.control_plane.principals import ApprovalError, identity_key, principal
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.engine import dispose_all
from foureyes.resources.targets.base import booked_actions
from tests.integration.toy_desk import desk, run_desk

LIMITS = {"P1": 1000.0, "P2": 600.0}
RESTRICTED = "x9"
ONE_APPROVER, TWO_APPROVERS = 300.0, 500.0
NASTY_TEXT = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["'; DROP TABLE toy_books; --", "{action}", "\\N", "", " ", "X9\n", "../../etc/passwd"]),
)
NASTY = {
    "portfolio_id": st.one_of(st.sampled_from(["P3"]), NASTY_TEXT, st.none(), st.integers()),
    "instrument_id": st.one_of(st.sampled_from(["X1", "X9", "x9 "]), NASTY_TEXT, st.none()),
    "trade_value": st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-(10**12), 10**12),
        st.sampled_from([None, "1e3", "lots"]),
    ),
    "action": st.one_of(st.sampled_from(["buy", "sell", "hold", "liquidate_everything", "BUY"]), NASTY_TEXT, st.none()),
    "rationale": st.one_of(NASTY_TEXT, st.none()),
    "confidence": st.one_of(st.floats(allow_nan=True), st.sampled_from([None, "high", 7.0])),
    "proposal_id": NASTY_TEXT,
}


ORDINARY = ["X1", "X2", "X3", "X4", "X5", "X6", "X7"]
RESTRICTED_SPELLINGS = ["X9", "x9", "X9 ", " X9", "Ｘ９", "X9\t"]
SIZES_AT_THE_EDGE = [300.0, 500.0, 600.0, 1000.0, 300.01, 500.01, 600.01, 1000.01]


def trade(rng) -> dict:
    """A typed trade near the limits, drawn with the odds a careless agent has: a fifth of the
    instruments restricted, a tenth of the signs wrong, a third of the sizes above the approval
    limit, and one row in twenty carrying something the schema refuses."""
    portfolio = rng.choice(["P1", "P2"])
    action = rng.choice(["buy", "buy", "buy", "sell", "sell", "hold"])
    size = (
        rng.choice(SIZES_AT_THE_EDGE) if rng.random() < 0.15 else rng.uniform(1, 299 if rng.random() < 0.66 else 1200)
    )
    value = {"buy": 1, "sell": -1}.get(action, 0) * (-1 if rng.random() < 0.1 else 1) * size
    if rng.random() < 0.05:
        twist = rng.choice(["action", "inf", "-inf", "nan"])
        action = rng.choice(["liquidate_everything", "BUY"]) if twist == "action" else action
        value = value if twist == "action" else float(twist)
    return {
        "portfolio_id": portfolio,
        "instrument_id": rng.choice(RESTRICTED_SPELLINGS) if rng.random() < 0.2 else rng.choice(ORDINARY),
        "trade_value": value,
        "action": action,
        "rationale": "momentum",
        "confidence": rng.random(),
    }


@st.composite
def adversarial_proposals(draw) -> pd.DataFrame:
    """Nine in ten typed (trying every rule, keys sometimes repeated), one in ten anything at all."""
    rng = draw(st.randoms(use_true_random=True))  # seeded by hypothesis; the odds above hold as written
    if rng.random() < 0.9:
        frame = pd.DataFrame([trade(rng) for _ in range(rng.randint(2, 6))])
        if rng.random() < 0.75:  # three times in four, one proposal per holding
            frame = frame.drop_duplicates(["portfolio_id", "instrument_id"])
        return frame
    frame = pd.DataFrame(draw(st.lists(st.fixed_dictionaries(NASTY), max_size=8)), columns=list(NASTY))
    for column in draw(st.sets(st.sampled_from(list(NASTY)), max_size=2)):
        frame = frame.drop(columns=[column])
    if draw(st.booleans()):
        frame["approved"] = True  # the agent claims its own approval: it must not matter
    return frame


SPELLINGS = ["alice", "bob", "carol", "Alice", "agent:toy", "toy", "AGENT : TOY"]
VOTES = st.lists(
    st.tuples(
        st.sampled_from(SPELLINGS),
        st.sampled_from(["approve", "approve", "approve", "reject"]),
    ),
    min_size=1,
    max_size=4,
)


def test_nothing_an_adversarial_agent_proposes_reaches_the_books_unsupervised():
    outcomes: Counter = Counter()

    @settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(proposals=adversarial_proposals(), votes=VOTES)
    def check(proposals, votes):
        with tempfile.TemporaryDirectory() as home:
            url = f"sqlite:///{Path(home) / 'desk.db'}"
            defs = desk(propose=lambda ctx: proposals.copy())
            run_desk(url, defs)
            control = ControlPlaneResource(url=url)
            voters = _voters(control)
            for approval in control.approvals.find(status="pending"):
                for who, decision in votes:
                    # a refusal (an agent voting, a second vote, already decided) is exactly what must happen
                    with contextlib.suppress(ApprovalError):
                        control.approvals.decide(
                            approval.approval_id, by=voters[who], decision=decision, reason="hypothesis"
                        )
            run_desk(url, defs, only_executor=True)  # what the approvals sensor would launch
            booked = booked_actions(url, "toy_books")
            outcomes["booked" if booked else "nothing booked"] += 1
            _judge(booked, control)
            dispose_all()

    check()
    print(dict(outcomes))
    assert outcomes["booked"] >= 0.5 * sum(outcomes.values()), outcomes  # the property is about real bookings


def _judge(booked: list[dict], control: ControlPlaneResource) -> None:
    """The oracle: each booked row against the plain meaning of the rules, from the proposal it came from."""
    decisions = {d.proposal_id: d for d in control.decision_log.for_partition("toy", "d1")}
    approvals = {a.proposal_id: a for a in control.approvals.find(agent="toy")}
    seen = set()
    for row in booked:
        proposal = decisions[row["proposal_id"]].proposal
        action, value = proposal["action"], proposal["trade_value"]
        portfolio, instrument = proposal["portfolio_id"], proposal["instrument_id"]
        assert row["action"] == action and action in ("buy", "sell"), row
        assert isinstance(value, float) and math.isfinite(value), proposal
        assert (value > 0) if action == "buy" else (value < 0), proposal
        assert not (action == "buy" and _folded(instrument) == RESTRICTED), proposal
        assert portfolio in LIMITS and abs(value) <= LIMITS[portfolio], proposal
        assert (portfolio, instrument) not in seen, f"booked twice: {portfolio} {instrument}"
        seen.add((portfolio, instrument))
        if abs(value) > ONE_APPROVER:
            approval = approvals[row["proposal_id"]]
            people = {identity_key(v.approver) for v in approval.votes if v.decision == "approve"}
            assert approval.status == GRANTED and approval.decided_at <= _aware(row["booked_at"]), approval
            assert not people & {identity_key("toy"), identity_key("agent:toy")}, approval
            assert len(people) >= (2 if abs(value) > TWO_APPROVERS else 1), approval


def _voters(control: ControlPlaneResource) -> dict[str, Principal]:
    """Each spelling as the principal it authenticates as: people approve, the agent only reads.

    A spelling of a configured name cannot be configured again: it is that principal, with a token of
    its own. ``toy``, a person named as the agent, may hold ``approve``; its votes are refused.
    """
    voters: dict[str, Principal] = {}
    for spelling in SPELLINGS:
        name = principal(spelling)
        known = {identity_key(p.name): p.name for p in control.principals.list()}
        if identity_key(name) in known:
            name = known[identity_key(name)]
        else:
            control.principals.add(name, [READ] if name.startswith("agent:") else [READ, APPROVE], created_by="test")
        voters[spelling] = control.principals.authenticate(control.principals.issue_token(name).token)
    return voters


def _folded(text: object) -> object:
    return unicodedata.normalize("NFKC", text).strip().casefold() if isinstance(text, str) else text


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


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
        assert len(booked_actions(url, "toy_books")) == 1
        dispose_all()
