"""The LangGraph adapter over real HTTP: the real library, the stand-in model server on loopback.

A graph with one read tool and two act tools (the toy desk's ``buy`` and ``sell``) is run
through ``foureyes.langgraph_propose`` by a scripted model. Act tools must never run inside
the graph (their bodies count calls); every misbehaviour of the model must end in a fallback
down the chain, or the chain exhausted, with the reason recorded; an ``interrupt()`` must wait
for an approval recorded in foureyes, and only then be executed, once, by the executor.
"""

from __future__ import annotations

import functools
import json
import logging
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandera.pandas as pa
import pytest
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import interrupt
from pandera.typing import Series
from pydantic import BaseModel

import foureyes
from foureyes.adapters.langgraph import HUMAN_APPROVALS, INTERRUPTED
from foureyes.adapters.tool_kinds import DEFERRED
from foureyes.propose.context import ProposalContext
from foureyes.resources.control_plane.approvals import APPROVED, PENDING
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.fallback.model_chain import ModelChainExhaustedError
from foureyes.resources.resource_keys import MODELS
from foureyes.resources.settings import sqlite_url
from foureyes.resources.targets.base import booked_actions
from foureyes.standin_model import MALFORMED_JSON, STALL, UNKNOWN_TOOL, StandinModelServer
from tests.helpers import cli, cli_principal
from tests.integration.toy_desk import APPROVAL, Trades, desk, limits, resources, restricted, signals

RAN: list[str] = []


@tool
def signal(portfolio_id: str, instrument_id: str, api_key: str = "", password: str = "") -> dict:
    """The momentum score of an instrument held in a portfolio."""
    RAN.append("signal")
    return {"portfolio_id": portfolio_id, "instrument_id": instrument_id, "score": 0.9}


@tool
def buy(portfolio_id: str, instrument_id: str, trade_value: float, rationale: str, confidence: float) -> str:
    """Buy the instrument for the portfolio."""
    RAN.append("buy")
    return "bought"


@tool
def sell(portfolio_id: str, instrument_id: str, trade_value: float, rationale: str, confidence: float) -> str:
    """Sell the instrument from the portfolio."""
    RAN.append("sell")
    return "sold"


TOOLS = [signal, buy, sell]
LOOK = {"name": "signal", "arguments": {"portfolio_id": "P1", "instrument_id": "X1", "api_key": "sk-live-999"}}
LOOK_AGAIN = {"name": "signal", "arguments": {"portfolio_id": "P2", "instrument_id": "X2", "password": "hunter2"}}
BUY = {
    "name": "buy",
    "arguments": {
        "portfolio_id": "P1",
        "instrument_id": "X1",
        "trade_value": 200.0,
        "rationale": "momentum",
        "confidence": 0.9,
    },
}
SELL = {
    "name": "sell",
    "arguments": {
        "portfolio_id": "P2",
        "instrument_id": "X2",
        "trade_value": -280.0,
        "rationale": "momentum",
        "confidence": 0.7,
    },
}


def scripted(*turns: list[dict] | str):
    """A model that answers its n-th turn with ``turns[n]``: tool calls, or text (its final answer)."""

    def policy(request: dict, faults: frozenset[str]) -> dict:
        turn = turns[min(sum(1 for m in request["messages"] if m["role"] == "assistant"), len(turns) - 1)]
        return {"content": turn} if isinstance(turn, str) else {"content": None, "tool_calls": turn}

    return policy


LOOK_THEN_TRADE = scripted([LOOK, LOOK_AGAIN], [BUY, SELL], "done: one buy, one sell")


def react_graph(model, tools, wrap_tool_call=None, offered=None):
    """The ReAct loop most LangGraph agents are: the model, its tools, until it stops calling them."""
    bound = model.bind_tools(offered or tools)
    graph = StateGraph(MessagesState)
    graph.add_node("agent", lambda state: {"messages": [bound.invoke(state["messages"])]})
    graph.add_node("tools", ToolNode(tools, wrap_tool_call=wrap_tool_call))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile()


def ask_a_human_before_buying(request, execute):
    """LangGraph's human-in-the-loop idiom: a buy waits for a human, anything else goes ahead."""
    call = request.tool_call
    if call["name"] == "buy":
        interrupt({**call["args"], "action": "buy"})
    return execute(request)


def hitl_graph(model, tools):
    return react_graph(model, tools, wrap_tool_call=ask_a_human_before_buying)


def _propose(graph=react_graph, **options):
    return foureyes.langgraph_propose(
        graph,
        tools=TOOLS,
        read_tools=["signal"],
        act_tools=["buy", "sell"],
        prompt=lambda ctx: f"Trade the signals of {ctx.partition}.",
        name="toy",
        **options,
    )


def _chain(url: str, *models: str, timeout_s: float = 5.0) -> foureyes.ModelChainResource:
    backends = [
        foureyes.ModelBackend(name=f"model{i}", kind="openai", url=m, timeout_s=timeout_s, retries=0)
        for i, m in enumerate(models)
    ]
    return foureyes.ModelChainResource(
        control_url=url,
        backends=[*backends, foureyes.ModelBackend(name="local", kind="local_policy")],
        breaker_threshold=1000,
    )


def _context(tmp_path, *models: str, timeout_s: float = 5.0) -> ProposalContext:
    chain = _chain(sqlite_url(tmp_path / "control.db"), *models, timeout_s=timeout_s)
    return ProposalContext("toy", "d1", {}, logging.getLogger("test"), models=chain)


@pytest.fixture(autouse=True)
def _nothing_ran():
    RAN.clear()


def test_act_calls_become_proposals_and_only_read_tools_run(tmp_path):
    with StandinModelServer(LOOK_THEN_TRADE) as model:
        ctx = _context(tmp_path, model.url)
        proposals = _propose()(ctx)
    assert RAN == ["signal", "signal"]  # the act tools' bodies never ran
    assert sorted(proposals[["portfolio_id", "instrument_id", "trade_value", "action"]].values.tolist()) == [
        ["P1", "X1", 200.0, "buy"],
        ["P2", "X2", -280.0, "sell"],
    ]
    assert HUMAN_APPROVALS not in proposals  # no interrupt, no column
    reads = sorted((c for c in ctx.tool_calls if c.tool == "signal"), key=lambda c: c.parameters["portfolio_id"])
    assert [c.status for c in reads] == ["ok", "ok"]
    assert all(c.detail.startswith("returned ") and c.latency_ms >= 0 for c in reads)
    assert reads[0].parameters == {"portfolio_id": "P1", "instrument_id": "X1", "api_key": "***"}  # never stored
    assert reads[1].parameters == {"portfolio_id": "P2", "instrument_id": "X2", "password": "***"}
    acts = sorted((c.tool, c.status) for c in ctx.tool_calls if c.tool != "signal")
    assert acts == [("buy", DEFERRED), ("sell", DEFERRED)]
    assert [a["outcome"] for a in ctx.model_calls] == ["ok", "ok", "ok"]  # look, act, answer
    assert ctx.answers[-1].backend == "model0" and len(ctx.answers[-1].prompt_hash) == 16
    replies = [m for m in model.requests[-1]["messages"] if m["role"] == "tool"]
    assert sum("was not executed" in r["content"] for r in replies) == 2  # the model was told
    # the model was offered the user's tools exactly as they are
    assert model.requests[0]["tools"] == [convert_to_openai_tool(t) for t in TOOLS]


class Report(BaseModel):
    portfolio_id: str
    instrument_id: str
    action: str
    rationale: str
    confidence: float


class ReportState(MessagesState):
    report: Report


def reporting_graph(model, tools):
    """One structured answer: ``with_structured_output`` requires a tool call (text is no answer)."""
    reporter = model.with_structured_output(Report)
    graph = StateGraph(ReportState)
    graph.add_node("report", lambda state: {"report": reporter.invoke(state["messages"])})
    graph.add_edge(START, "report")
    return graph.compile()


def reporter(request: dict, faults: frozenset[str]) -> dict:
    if "text_only" in faults:
        return {"content": "P1 looks fine to me"}
    report = {"portfolio_id": "P1", "instrument_id": "X1", "action": "hold", "rationale": "flat", "confidence": 0.6}
    return {"content": None, "tool_calls": [{"name": "Report", "arguments": report}]}


def _reported(state: dict) -> list[dict]:
    return [state["report"].model_dump()] if "report" in state else []


@pytest.mark.parametrize(
    ("graph", "policy", "fault", "outcome"),
    [
        (react_graph, LOOK_THEN_TRADE, UNKNOWN_TOOL, "invalid"),
        (react_graph, LOOK_THEN_TRADE, MALFORMED_JSON, "unparseable"),
        (react_graph, LOOK_THEN_TRADE, STALL, "timeout"),
        (reporting_graph, reporter, "text_only", "invalid"),
    ],
    ids=["unknown_tool", "malformed_json", "stall", "text_where_a_tool_call_is_required"],
)
def test_a_misbehaving_model_moves_the_chain_down(tmp_path, graph, policy, fault, outcome):
    with (
        StandinModelServer(policy, faults=[fault], stall_s=2.0) as bad,
        StandinModelServer(policy) as good,
    ):
        ctx = _context(tmp_path, bad.url, good.url, timeout_s=0.5)
        proposals = _propose(graph, answer=_reported)(ctx)
    first, second = ctx.model_calls[0], ctx.model_calls[1]
    assert (first["backend"], first["outcome"]) == ("model0", outcome)
    assert (second["backend"], second["outcome"]) == ("model1", "ok")
    assert "buy" not in RAN and "sell" not in RAN
    if graph is react_graph:
        assert sorted(proposals["action"]) == ["buy", "sell"] and RAN == ["signal", "signal"]
    else:
        assert proposals[["portfolio_id", "action"]].values.tolist() == [["P1", "hold"]]
        assert "without a tool call" in first["detail"]


def test_a_read_tool_that_fails_is_logged_failed(tmp_path):
    @tool
    def feed(portfolio_id: str) -> dict:
        """The live price feed."""
        raise RuntimeError(f"feed down for {portfolio_id}")

    def graph(model, tools):
        bound = model.bind_tools(tools)
        built = StateGraph(MessagesState)
        built.add_node("agent", lambda state: {"messages": [bound.invoke(state["messages"])]})
        built.add_node("tools", ToolNode(tools, handle_tool_errors=True))  # the model is told, and goes on
        built.add_edge(START, "agent")
        built.add_conditional_edges("agent", tools_condition)
        built.add_edge("tools", "agent")
        return built.compile()

    look = {"name": "feed", "arguments": {"portfolio_id": "P1"}}
    with StandinModelServer(scripted([look], "no prices, no trades")) as model:
        ctx = _context(tmp_path, model.url)
        propose = foureyes.langgraph_propose(
            graph, tools=[feed], read_tools=["feed"], prompt=lambda ctx: "Price P1", name="toy"
        )
        assert propose(ctx).empty
    (call,) = ctx.tool_calls
    assert (call.tool, call.status, call.parameters) == ("feed", "error", {"portfolio_id": "P1"})
    assert call.detail == "failed: RuntimeError: feed down for P1"


def test_with_no_good_backend_the_chain_is_exhausted_and_nothing_ran(tmp_path):
    with StandinModelServer(LOOK_THEN_TRADE, faults=[UNKNOWN_TOOL]) as bad:
        ctx = _context(tmp_path, bad.url)
        with pytest.raises(ModelChainExhaustedError, match=r"model0: invalid; local: not_applicable"):
            _propose()(ctx)
    assert RAN == [] and "called 'delete_all_records', which is not a tool" in ctx.model_calls[0]["detail"]


def test_an_interrupt_is_a_proposal_waiting_for_a_human(tmp_path):
    with StandinModelServer(scripted([LOOK], [SELL], [BUY], "unreachable: the graph paused")) as model:
        ctx = _context(tmp_path, model.url)
        proposals = _propose(hitl_graph)(ctx)
    assert len(model.requests) == 3  # the graph paused at the buy and was not resumed
    assert proposals[["instrument_id", "action", HUMAN_APPROVALS]].values.tolist() == [
        ["X2", "sell", 0],
        ["X1", "buy", 1],
    ]
    assert proposals.loc[1, "rationale"] == "momentum" and proposals.loc[1, "confidence"] == 0.9
    (asked,) = [c for c in ctx.tool_calls if c.status == INTERRUPTED]
    assert asked.tool == "buy" and "waiting for 1 human approval" in asked.detail
    assert RAN == ["signal"]


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("Approve the buy?", r"an interrupt\(\) must be given the proposal .*got 'Approve the buy\?'"),
        ({"portfolio_id": "P1"}, r"a dict with 'action'"),
        ({"action": "buy", HUMAN_APPROVALS: 3}, r"human_approvals must be 1 or 2, got 3"),
    ],
    ids=["a_question", "no_action", "three_approvers"],
)
def test_an_interrupt_that_is_no_proposal_is_refused(tmp_path, value, match):
    def asking(model, tools):
        graph = StateGraph(MessagesState)
        graph.add_node("ask", lambda state: {"messages": [("user", str(interrupt(value)))]})
        graph.add_edge(START, "ask")
        return graph.compile()

    with StandinModelServer(LOOK_THEN_TRADE) as model, pytest.raises(foureyes.AgentDefinitionError, match=match):
        _propose(asking)(_context(tmp_path, model.url))


def cancel_everything(portfolio_id: str) -> str:
    """A tool nobody declared."""
    RAN.append("cancel_everything")
    return "cancelled"


def test_every_tool_must_be_declared_and_supervised(tmp_path):
    with pytest.raises(foureyes.AgentDefinitionError, match=r"tools neither read nor act: \['sell'\]"):
        foureyes.langgraph_propose(react_graph, tools=TOOLS, read_tools=["signal"], act_tools=["buy"], prompt=str)
    with pytest.raises(foureyes.AgentDefinitionError, match=r"give prompt .* or state"):
        foureyes.langgraph_propose(react_graph, tools=TOOLS, read_tools=["signal"], act_tools=["buy", "sell"])
    with StandinModelServer(LOOK_THEN_TRADE) as model:
        own_tools = _propose(lambda model, tools: react_graph(model, TOOLS))  # the user's tools, not foureyes'
        with pytest.raises(foureyes.AgentDefinitionError, match=r"holds tools foureyes did not hand it: \['buy',"):
            own_tools(_context(tmp_path, model.url))
        extra = _propose(lambda model, tools: react_graph(model, tools, offered=[*tools, tool(cancel_everything)]))
        with pytest.raises(
            foureyes.AgentDefinitionError,
            match=r"offers the model tools foureyes was not given: \['cancel_everything'\]",
        ):
            extra(_context(tmp_path, model.url))
        assert model.requests == []  # refused before any model was asked
    assert RAN == []


@pytest.mark.parametrize("use", ["import foureyes.adapters.langgraph", "import foureyes; foureyes.langgraph_propose"])
def test_without_the_extra_the_message_names_it(use):
    probe = f"import sys; sys.modules['langgraph'] = None\n{use}"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "foureyes.adapters.extras.MissingExtraError: foureyes.langgraph_propose needs the 'langgraph' extra "
        "(langgraph is not installed): pip install 'foureyes[langgraph]'"
    )


# -- in a real Dagster run: the interrupted buy waits for an approval, then the executor books it once -------


class GraphTrades(Trades):
    """The toy desk's trades, and the column an interrupted proposal carries."""

    human_approvals: Series[int] | None = pa.Field(isin=[0, 1, 2])  # optional: only a run that interrupted has it


def _run(url: str, model_url: str, only_executor: bool = False) -> dg.ExecuteInProcessResult:
    agent = desk(propose=_propose(hitl_graph), schema=GraphTrades, approval=foureyes.interrupt_approval(APPROVAL))
    with_model = {**resources(url), MODELS: _chain(url, model_url)}
    defs = foureyes.definitions(agents=[agent], resources=with_model)
    selection = dg.AssetSelection.assets("toy_actions") if only_executor else dg.AssetSelection.all()
    return dg.materialize(
        [signals, restricted, limits, *defs.assets, *defs.asset_checks],
        selection=selection,
        partition_key="d1",
        resources=with_model,
    )


def _booked(url: str) -> list[tuple[str, str]]:
    return [(json.loads(r["payload"])["instrument_id"], r["action"]) for r in booked_actions(url, "toy_books")]


def _cli(url: str, *args: str, **settings: str) -> subprocess.CompletedProcess:
    toy = ("-m", "tests.integration.toy_desk", "-a", "location")
    home = Path(url.removeprefix("sqlite:///")).parent
    return cli(*args, *toy, home=home, FOUREYES_CONTROL_URL=url, **settings)


def test_an_interrupted_action_executes_only_after_its_approval_and_once(tmp_path):
    url = sqlite_url(tmp_path / "desk.db")
    with StandinModelServer(scripted([LOOK], [SELL], [BUY], "unreachable")) as model:
        assert _run(url, model.url).success
    control = ControlPlaneResource(url=url)
    (pending,) = control.approvals.find(status=PENDING, agent="toy")
    # a buy of 200 is below the desk's size limit (300): it waits because the graph asked a human
    assert (pending.action, pending.required, pending.policy) == ("buy", 1, "human_in_the_loop")
    assert pending.summary == f"buy {pending.proposal_id}: momentum"
    assert _booked(url) == [("X2", "sell")]  # the sell was approved by the rules and booked; the buy waits

    listing = _cli(url, "approvals", "list", "--agent", "toy")
    assert listing.returncode == 0 and pending.approval_id[:12] in listing.stdout and "0/1" in listing.stdout
    alice = cli_principal(functools.partial(_cli, url), "alice")
    done = _cli(
        url, "approvals", "approve", pending.approval_id[:12], "--reason", "signal checked", FOUREYES_TOKEN=alice
    )
    assert done.returncode == 0, done.stderr
    assert "approved (alice)" in done.stdout and control.approvals.get(pending.approval_id).status == APPROVED

    with StandinModelServer(scripted("never asked")) as model:
        for _ in range(2):  # the executor runs twice: the buy is booked once
            assert _run(url, model.url, only_executor=True).success
        assert model.requests == []  # the executor does not run the graph
    assert sorted(_booked(url)) == [("X1", "buy"), ("X2", "sell")]
    assert RAN == ["signal"]  # booked by the executor's target, never by the graph's tool
    decisions = {d.proposal["instrument_id"]: d for d in control.decision_log.for_partition("toy", "d1")}
    assert {k: (d.verdict, d.proposal[HUMAN_APPROVALS]) for k, d in decisions.items()} == {
        "X2": ("approved", 0),
        "X1": ("pending", 1),
    }
