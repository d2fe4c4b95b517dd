"""The Pydantic AI adapter over real HTTP: the real library, the stand-in model server on loopback.

An agent with one read tool and two act tools is run through ``foureyes.pydantic_ai_propose``
by a scripted model. Act tools must never run inside the agent (their bodies count calls);
every misbehaviour of the model must end in a fallback down the chain, or the chain exhausted
(so the baseline reports), with the reason recorded.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pydantic_ai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

import foureyes
from foureyes.adapters.tool_kinds import DEFERRED
from foureyes.propose.context import ProposalContext
from foureyes.resources.fallback.model_chain import ModelChainExhaustedError
from foureyes.standin_model import MALFORMED_JSON, STALL, UNKNOWN_TOOL, StandinModelServer
from tests.conftest import ROOT

RAN: list[str] = []


class Note(BaseModel):
    loan_id: str
    action: str
    rationale: str
    confidence: float


class Answer(BaseModel):
    proposals: list[Note]


def _agent() -> pydantic_ai.Agent:
    agent = pydantic_ai.Agent(output_type=Answer, name="triage", deps_type=ProposalContext)

    @agent.tool
    def loan_history(ctx: pydantic_ai.RunContext[ProposalContext], loan_id: str, api_key: str = "") -> list[dict]:
        RAN.append("loan_history")
        return [{"loan_id": loan_id, "day": ctx.deps.partition, "rate": 0.05}]

    @agent.tool_plain
    def quarantine_loan(loan_id: str, rationale: str, confidence: float) -> str:
        RAN.append("quarantine_loan")
        return "quarantined"

    @agent.tool_plain
    def escalate(loan_id: str, rationale: str, confidence: float) -> str:
        RAN.append("escalate")
        return "escalated"

    return agent


def scripted(request: dict, faults: frozenset[str]) -> dict:
    """Look, act twice, then answer with one note."""
    turns = sum(1 for m in request["messages"] if m["role"] == "assistant")
    if turns == 0:
        return {"tool_calls": [{"name": "loan_history", "arguments": {"loan_id": "L1", "api_key": "sk-live-999"}}]}
    if turns == 1:
        return {
            "tool_calls": [
                {"name": "quarantine_loan", "arguments": {"loan_id": "L1", "rationale": "shifted", "confidence": 0.9}},
                {"name": "escalate", "arguments": {"loan_id": "L2", "rationale": "no balance", "confidence": 0.8}},
            ]
        }
    note = {"loan_id": "L3", "action": "hold", "rationale": "benign", "confidence": 0.7}
    return {"tool_calls": [{"name": "final_result", "arguments": {"proposals": [note]}}]}


def _context(tmp_path, *urls: str, timeout_s: float = 5.0) -> ProposalContext:
    backends = [
        foureyes.ModelBackend(name=f"model{i}", kind="openai", url=url, timeout_s=timeout_s, retries=0)
        for i, url in enumerate(urls)
    ]
    chain = foureyes.ModelChainResource(
        control_url=f"sqlite:///{tmp_path}/control.db",
        backends=[*backends, foureyes.ModelBackend(name="local", kind="local_policy")],
        breaker_threshold=1000,
    )
    return ProposalContext("triage", "2026-11-16", {}, logging.getLogger("test"), models=chain)


def _propose():
    return foureyes.pydantic_ai_propose(
        _agent(),
        prompt=lambda ctx: f"Triage {ctx.partition}",
        read_tools=["loan_history"],
        act_tools=["quarantine_loan", "escalate"],
    )


@pytest.fixture(autouse=True)
def _nothing_ran():
    RAN.clear()


def test_act_calls_become_proposals_and_only_read_tools_run(tmp_path):
    with StandinModelServer(scripted) as model:
        ctx = _context(tmp_path, model.url)
        proposals = _propose()(ctx)
    assert RAN == ["loan_history"]  # the act tools' bodies never ran
    assert proposals[["loan_id", "action"]].values.tolist() == [
        ["L1", "quarantine_loan"],
        ["L2", "escalate"],
        ["L3", "hold"],
    ]
    calls = {c.tool: c for c in ctx.tool_calls}
    history = calls["loan_history"]
    assert history.status == "ok" and history.detail.startswith("returned ") and history.latency_ms >= 0
    assert history.parameters == {"loan_id": "L1", "api_key": "***"}  # a secret argument is never stored
    assert calls["quarantine_loan"].status == calls["escalate"].status == DEFERRED
    assert [a["outcome"] for a in ctx.model_calls] == ["ok", "ok", "ok"]  # look, act, answer
    assert ctx.answers[-1].backend == "model0" and len(ctx.answers[-1].prompt_hash) == 16
    # the model was told the act calls were recorded, not done
    replies = [m for m in model.requests[-1]["messages"] if m["role"] == "tool"]
    assert any("was not executed" in r["content"] for r in replies)


@pytest.mark.parametrize(
    ("fault", "outcome"), [(UNKNOWN_TOOL, "invalid"), (MALFORMED_JSON, "unparseable"), (STALL, "timeout")]
)
def test_a_misbehaving_model_moves_the_chain_down(tmp_path, fault, outcome):
    with (
        StandinModelServer(scripted, faults=[fault], stall_s=2.0) as bad,
        StandinModelServer(scripted) as good,
    ):
        ctx = _context(tmp_path, bad.url, good.url, timeout_s=0.5)
        proposals = _propose()(ctx)
    assert len(proposals) == 3 and RAN == ["loan_history"]
    first = ctx.model_calls[0]
    assert (first["backend"], first["outcome"]) == ("model0", outcome)
    assert ctx.model_calls[1]["backend"] == "model1" and ctx.model_calls[1]["outcome"] == "ok"


def test_with_no_good_backend_the_chain_is_exhausted_and_nothing_ran(tmp_path):
    with StandinModelServer(scripted, faults=[UNKNOWN_TOOL]) as bad:
        ctx = _context(tmp_path, bad.url)
        with pytest.raises(ModelChainExhaustedError, match=r"model0: invalid; local: not_applicable"):
            _propose()(ctx)
    assert RAN == [] and "delete_all_records" in ctx.model_calls[0]["detail"]


def test_every_tool_must_be_declared_read_or_act():
    with pytest.raises(foureyes.AgentDefinitionError, match=r"tools neither read nor act: \['escalate'\]"):
        foureyes.pydantic_ai_propose(_agent(), prompt=str, read_tools=["loan_history"], act_tools=["quarantine_loan"])
    with pytest.raises(foureyes.AgentDefinitionError, match="declared both read and act"):
        foureyes.pydantic_ai_propose(
            _agent(), prompt=str, read_tools=["loan_history", "escalate"], act_tools=["quarantine_loan", "escalate"]
        )


def test_without_the_extra_the_message_names_it():
    probe = "import sys; sys.modules['pydantic_ai'] = None\nimport foureyes\nfoureyes.pydantic_ai_propose"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode == 1
    assert "needs the 'pydantic-ai' extra" in last and "pip install 'foureyes[pydantic-ai]'" in last


TOOL_NAMES = st.sampled_from(["loan_history", "quarantine_loan", "escalate", "final_result", "rm_rf", ""])
VALUES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8))
ARGS = st.dictionaries(st.sampled_from(["loan_id", "rationale", "confidence", "proposals", "x"]), VALUES, max_size=4)
WELL_FORMED_ACT = st.tuples(
    st.sampled_from(["quarantine_loan", "escalate"]),
    st.fixed_dictionaries({"loan_id": st.text(max_size=5), "rationale": st.text(), "confidence": st.floats(0, 1)}),
    st.just(False),
)
CALLS = st.lists(st.one_of(WELL_FORMED_ACT, st.tuples(TOOL_NAMES, ARGS, st.booleans())), min_size=0, max_size=4)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(turns=st.lists(CALLS, min_size=1, max_size=4), text=st.text(max_size=20))
def test_arbitrary_tool_calls_never_execute_an_act_tool(tmp_path, turns, text):
    """Whatever a model says, over however many turns, no act tool runs inside the agent."""
    RAN.clear()

    def hostile(request: dict, faults: frozenset[str]) -> dict:
        turn = sum(1 for m in request["messages"] if m["role"] == "assistant")
        calls = turns[turn % len(turns)]
        return {
            "content": text or None,
            "tool_calls": [
                {"name": name, **({"raw_arguments": json.dumps(args)[:-1]} if broken else {"arguments": args})}
                for name, args, broken in calls
            ],
        }

    with StandinModelServer(hostile) as model:
        ctx = _context(tmp_path, model.url)
        try:
            proposals = _propose()(ctx)
        except (ModelChainExhaustedError, pydantic_ai.exceptions.UnexpectedModelBehavior):
            proposals = None  # the agent failed: foureyes runs its baseline instead
    assert set(RAN) <= {"loan_history"}
    deferred = [c for c in ctx.tool_calls if c.status == DEFERRED]
    assert all(c.tool in ("quarantine_loan", "escalate") for c in deferred)
    if proposals is not None:  # a run that finished keeps every act call as a proposal row
        acted = proposals[proposals["action"].isin(["quarantine_loan", "escalate"])] if len(proposals) else proposals
        assert len(acted) >= len(deferred)


def test_the_readme_wraps_an_agent_as_it_says(tmp_path):
    """The README's wrapping example, run as written, on the stand-in."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Agents with tools: Pydantic AI and LangGraph", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    wrapping = ["import foureyes", *code[code.index("propose = foureyes.") :].strip().splitlines()]
    assert len(wrapping) < 15  # what foureyes adds to an existing agent
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)

    def quarantines(request: dict, faults: frozenset[str]) -> dict:
        if any(m["role"] == "tool" for m in request["messages"]):
            return {"tool_calls": [{"name": "final_result", "arguments": {"response": []}}]}
        args = {"loan_id": "L7", "rationale": "shifted row", "confidence": 0.9}
        return {"tool_calls": [{"name": "quarantine_loan", "arguments": args}]}

    with StandinModelServer(quarantines) as model:
        proposals = namespace["propose"](_context(tmp_path, model.url))
    assert proposals.to_dict("records") == [
        {"loan_id": "L7", "rationale": "shifted row", "confidence": 0.9, "action": "quarantine_loan"}
    ]
