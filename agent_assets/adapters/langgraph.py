"""A LangGraph graph as a foureyes agent's ``propose`` (extra ``foureyes[langgraph]``).

The graph is the user's, built per run by a factory ``graph(model, tools)`` that foureyes
calls with two things of its own. ``model`` is ``FoureyesChatModel``: a langchain-core chat
model over the foureyes model chain, each answer checked before the graph sees it (a call to
a tool that was not offered, arguments that are not JSON or break the tool's schema, no tool
call where one was required: that backend failed, the chain moves down; every backend
failed: ``ModelChainExhaustedError``, and the agent's deterministic baseline reports).
``tools`` are the user's tools, each behind a stand-in of the same name and schema: a read
tool's stand-in runs it and logs the call (name, arguments with secrets redacted, result
size, latency); an act tool's stand-in never runs it — the call becomes a proposal,
supervised like any other and executed only by the executor after its verdict, and the
model is told so.

An ``interrupt()`` of the graph — a node or a tool wrapper waiting for a human — becomes a
proposal that waits for a foureyes approval: its value is the proposal (a dict with
``action``, the agent's natural key, ``rationale``, ``confidence``, and optionally
``human_approvals``: 1, the default, or 2 for four eyes), the adapter sets its
``human_approvals`` column, and the supervisor sends every such proposal to the approvals
queue whatever the agent's approval policy says (``HUMAN_APPROVALS`` in
``foureyes.checks.supervisor``: never fewer people than were asked for;
``interrupt_approval()`` combines it with a size policy of the agent's own). A proposal the
rules reject stays rejected: no approval overrides a hard rule.
The graph is never resumed inside the run: the run ends where the graph paused (what the
graph would do after the interrupt never happens), the approver answers in foureyes
(``foureyes approvals approve ID --reason ...``, as an authenticated principal holding the
``approve`` scope), and the executor — not the graph — carries out the approved action, once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from foureyes.adapters.extras import require

require("langgraph", "langgraph", "foureyes.langgraph_propose")

from langchain_core.language_models import BaseChatModel  # noqa: E402
from langchain_core.messages import (  # noqa: E402
    AIMessage,
    BaseMessage,
    HumanMessage,
    ToolMessage,
    convert_to_openai_messages,
)
from langchain_core.outputs import ChatGeneration, ChatResult  # noqa: E402
from langchain_core.tools import BaseTool  # noqa: E402
from langchain_core.tools import tool as as_tool  # noqa: E402
from langchain_core.utils.function_calling import convert_to_openai_tool  # noqa: E402
from langgraph.checkpoint.base import BaseCheckpointSaver  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402
from langgraph.errors import GraphBubbleUp  # noqa: E402
from langgraph.prebuilt import ToolNode  # noqa: E402
from langgraph.pregel import Pregel  # noqa: E402
from langgraph.types import Interrupt  # noqa: E402
from pydantic import BaseModel, PrivateAttr  # noqa: E402

from foureyes.adapters.tool_call_checks import checked_tool_calls  # noqa: E402
from foureyes.adapters.tool_kinds import ReadCall, ToolCallRecorder, ToolKinds  # noqa: E402
from foureyes.agent import ProposeFn  # noqa: E402
from foureyes.checks.approval_policy import ApprovalPolicy  # noqa: E402
from foureyes.checks.supervisor import HUMAN_APPROVALS  # noqa: E402
from foureyes.propose.context import ProposalContext  # noqa: E402
from foureyes.resources.control_plane.tool_calls import TOOL, ToolCall, redact  # noqa: E402
from foureyes.resources.errors import AgentDefinitionError  # noqa: E402
from foureyes.resources.fallback.model_chain import (  # noqa: E402
    OPENAI,
    ModelAnswer,
    ModelBackend,
    ModelChainExhaustedError,
    ModelChainResource,
)
from foureyes.resources.fallback.openai_backend import BackendFailedError, chat_message  # noqa: E402

#: The column an interrupted proposal carries: the approvals it waits for (0 on every other row).
#: An interrupt's status in the tool-call log: it became a proposal waiting for a human.
INTERRUPTED = "interrupted"

GraphFactory = Callable[[BaseChatModel, list[BaseTool]], Any]


def langgraph_propose(
    graph: GraphFactory,
    *,
    tools: Sequence[BaseTool | Callable[..., Any]],
    read_tools: Sequence[str] = (),
    act_tools: Sequence[str] = (),
    prompt: Callable[[ProposalContext], str] | None = None,
    state: Callable[[ProposalContext], Mapping[str, Any]] | None = None,
    answer: Callable[[Mapping[str, Any]], Iterable[Mapping[str, object]]] | None = None,
    name: str = "langgraph_agent",
    recursion_limit: int = 25,
) -> ProposeFn:
    """A ``propose`` that runs a LangGraph graph on the foureyes model chain, its act tools deferred to the executor.

    ``graph(model, tools)`` builds the graph (compiled, or a ``StateGraph`` foureyes
    compiles) from the chat model and the tools foureyes hands it — the tools given in
    ``tools``, each declared in ``read_tools`` or ``act_tools``, behind their stand-ins; a
    ``ToolNode`` of the graph holding any other tool is refused. The run starts from
    ``{"messages": [HumanMessage(prompt(ctx))]}`` updated with ``state(ctx)``; ``answer`` turns
    the state it ends with (finished, or paused at its interrupts) into proposals of its own
    (a ``hold`` report, say). The proposals are, in order: one per act call, one per
    interrupt (see the module docstring; a strict schema declares the optional
    ``human_approvals`` column), then
    ``answer``'s. ``name`` names the agent in errors; ``recursion_limit`` bounds the graph's
    steps (a model stuck calling tools ends in ``GraphRecursionError``, and the baseline).

    Examples:
        >>> import pandera.pandas as pa
        >>> from langchain_core.tools import tool
        >>> from langgraph.prebuilt import ToolNode, tools_condition
        >>> from langgraph.graph import START, MessagesState, StateGraph
        >>> import foureyes
        >>> @tool
        ... def loan_history(loan_id: str) -> list[dict]:
        ...     '''The loan's payment history.'''
        ...     return []
        >>> @tool
        ... def quarantine_loan(loan_id: str, rationale: str, confidence: float) -> str:
        ...     '''Take the loan out of the pool.'''
        ...     raise AssertionError("never runs inside the agent")
        >>> def triage_graph(model, tools):
        ...     bound = model.bind_tools(tools)
        ...     graph = StateGraph(MessagesState)
        ...     graph.add_node("agent", lambda state: {"messages": [bound.invoke(state["messages"])]})
        ...     graph.add_node("tools", ToolNode(tools))
        ...     graph.add_edge(START, "agent")
        ...     graph.add_conditional_edges("agent", tools_condition)
        ...     graph.add_edge("tools", "agent")
        ...     return graph.compile()
        >>> propose = foureyes.langgraph_propose(
        ...     triage_graph,
        ...     tools=[loan_history, quarantine_loan],
        ...     read_tools=["loan_history"],
        ...     act_tools=["quarantine_loan"],
        ...     prompt=lambda ctx: f"Triage the tape of {ctx.partition}.",
        ... )
        >>> class Triage(pa.DataFrameModel):
        ...     loan_id: str
        ...     action: str
        ...     rationale: str
        ...     confidence: float
        >>> triage = foureyes.define_agent(
        ...     "triage",
        ...     inputs=["loan_tape"],
        ...     propose=propose,
        ...     proposals_schema=Triage,
        ...     natural_key=["loan_id"],
        ...     actions=["quarantine_loan"],
        ...     approval=foureyes.interrupt_approval(),  # what the graph interrupts for waits for a human
        ... )
        >>> defs = foureyes.definitions(agents=[triage])  # a dg.Definitions: assets, checks, resources, sensors
        >>> triage.proposals_key.to_user_string(), triage.approval.id
        ('triage_proposals', 'human_in_the_loop')
    """
    if prompt is None and state is None:
        raise AgentDefinitionError(f"agent {name!r}: give prompt (the user message) or state (the initial state)")
    given = [t if isinstance(t, BaseTool) else as_tool(t) for t in tools]
    kinds = ToolKinds.declared(name, read_tools, act_tools, [t.name for t in given])

    def propose(ctx: ProposalContext) -> pd.DataFrame:
        if ctx.models is None:
            raise ModelChainExhaustedError([])  # no chain, no model: the baseline reports
        recorder = ToolCallRecorder(ctx, kinds)
        handed = [_stand_in(t, recorder) for t in given]
        model = FoureyesChatModel(chain=ctx.models, ctx=ctx, tools=kinds.read | kinds.act)
        compiled = _compiled(graph(model, handed))
        _refuse_unsupervised_tools(name, compiled, handed)
        config = {
            "configurable": {"thread_id": f"foureyes-{ctx.agent}-{ctx.partition}-{uuid.uuid4().hex[:12]}"},
            "recursion_limit": recursion_limit,
        }
        initial = {"messages": [HumanMessage(prompt(ctx))]} if prompt else {}
        compiled.invoke({**initial, **(state(ctx) if state else {})}, config)
        snapshot = compiled.get_state(config)
        asked = [_interrupted(ctx, i) for i in snapshot.interrupts]
        answered = [dict(row) for row in answer(snapshot.values)] if answer else []
        proposals = recorder.proposals([*asked, *answered])
        if asked:
            proposals[HUMAN_APPROVALS] = pd.to_numeric(proposals[HUMAN_APPROVALS]).fillna(0).astype(int)
        return proposals

    propose.__qualname__ = f"langgraph_propose[{name}]"
    return propose


def interrupt_approval(
    policy: ApprovalPolicy | None = None,
    *,
    id: str = "human_in_the_loop",
    expires_after: dt.timedelta | None = None,
) -> InterruptApprovalPolicy:
    """The approval policy of a LangGraph agent: what its graph interrupted for waits for a human.

    A proposal from an ``interrupt()`` needs the approvals its ``human_approvals`` column asks
    (1, or 2 for four eyes); ``policy``, when given, still applies to every proposal (a size
    limit, say), and a proposal needs the larger of the two. Undecided after
    ``expires_after`` (``policy``'s, else 24 hours), it expires to rejected.

    Examples:
        >>> import pandas as pd
        >>> import foureyes
        >>> size = foureyes.ApprovalPolicy(id="big", description="big trades", column="value", above=500)
        >>> approval = foureyes.interrupt_approval(size)
        >>> proposals = pd.DataFrame({"action": ["buy"] * 3, "value": [100, 900, 100], "human_approvals": [0, 0, 2]})
        >>> approval.required_approvals(proposals).tolist()
        [0, 1, 2]
    """
    expiry = expires_after or (policy.expires_after if policy else dt.timedelta(hours=24))
    return InterruptApprovalPolicy(
        id=id,
        description="what the agent's graph interrupted for waits for a human"
        + (f"; and {policy.id}: {policy.description}" if policy else ""),
        column=HUMAN_APPROVALS,
        above=0,
        four_eyes_above=1,
        expires_after=expiry,
        summary="{action} {proposal_id}: {rationale}",
        also=policy,
    )


@dataclass(frozen=True)
class InterruptApprovalPolicy(ApprovalPolicy):
    """``ApprovalPolicy`` over the ``human_approvals`` column, and another policy's limits (``also``)."""

    also: ApprovalPolicy | None = None

    def required_approvals(self, proposals: pd.DataFrame) -> pd.Series:
        """Per proposal, the larger of what its interrupt asked and what ``also`` requires."""
        if HUMAN_APPROVALS in proposals.columns:
            column = proposals[HUMAN_APPROVALS]
            asked = pd.to_numeric(column, errors="coerce")
            unreadable = asked.isna() & column.notna()  # a value, but no number: two, as for sizes
            asked = np.where(unreadable, 2, np.ceil(asked.fillna(0).clip(0, 2)))
        else:
            asked = np.zeros(len(proposals))
        required = asked if self.also is None else np.maximum(asked, self.also.required_approvals(proposals))
        return pd.Series(required.astype(int), index=proposals.index)

    def describe(self, row: Mapping[str, object]) -> str:
        """An interrupted proposal in this policy's words; any other in ``also``'s."""
        asked = row.get(HUMAN_APPROVALS)
        if self.also is not None and (asked is None or pd.isna(asked) or not asked):
            return self.also.describe(row)
        return super().describe(row)


class FoureyesChatModel(BaseChatModel):
    """The foureyes model chain as a langchain-core chat model (``bind_tools`` included).

    Each call walks the chain: the first OpenAI-compatible backend whose answer passes the
    checks answers, through the ``openai`` SDK; the local-policy link cannot hold a
    conversation, so when every endpoint fails the chain is exhausted. A bound tool foureyes
    was not told the kind of is refused, so a tool cannot be slipped in unclassified. Every
    attempt goes to the context's model-call log.
    """

    _chain: ModelChainResource = PrivateAttr()
    _ctx: ProposalContext = PrivateAttr()
    _tools: frozenset[str] = PrivateAttr()
    _prompt_hash: str = PrivateAttr(default="")

    def __init__(self, *, chain: ModelChainResource, ctx: ProposalContext, tools: Iterable[str] = (), **kwargs: Any):
        super().__init__(**kwargs)
        self._chain = chain
        self._ctx = ctx
        self._tools = frozenset(tools)

    @property
    def _llm_type(self) -> str:
        return "foureyes-chain"

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: str | dict | bool | None = None, **kwargs: Any):
        """Offer ``tools`` (tools, functions, pydantic models or OpenAI tool dicts) to the model."""
        offered = [convert_to_openai_tool(t) for t in tools]
        if "ls_structured_output_format" in kwargs:  # with_structured_output: the schema is the answer
            kwargs["foureyes_answer_tools"] = [t["function"]["name"] for t in offered]
        return self.bind(tools=offered, tool_choice=_tool_choice(tool_choice), **kwargs)

    def _generate(
        self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        offered = kwargs.get("tools") or []
        schemas = {t["function"]["name"]: t["function"].get("parameters") or {"type": "object"} for t in offered}
        unknown = sorted(set(schemas) - self._tools - set(kwargs.get("foureyes_answer_tools") or ()))
        if unknown:
            raise AgentDefinitionError(
                f"agent {self._ctx.agent!r}: the graph offers the model tools foureyes was not given: {unknown} "
                f"(its tools: {sorted(self._tools)}); pass each in tools= and declare it in read_tools or act_tools"
            )
        choice = kwargs.get("tool_choice")
        request: dict[str, Any] = {"messages": convert_to_openai_messages(messages)}
        if offered:
            request["tools"] = offered
            if choice is not None:
                request["tool_choice"] = choice
            if "parallel_tool_calls" in kwargs:
                request["parallel_tool_calls"] = kwargs["parallel_tool_calls"]
        if stop:
            request["stop"] = stop
        if not self._prompt_hash:  # the first call holds the instructions and the prompt
            self._prompt_hash = hashlib.sha256(json.dumps(request["messages"], default=str).encode()).hexdigest()[:16]
        text_allowed = not offered or choice in (None, "auto", "none")
        walk = self._chain.walk(self._ctx.agent)
        try:
            for backend in walk.links(kinds=(OPENAI,)):
                tries = walk.tries(backend)
                for _ in tries:
                    with tries.one():
                        message = _checked(chat_message(backend, **request), schemas, text_allowed, backend)
                    if tries.succeeded:
                        self._ctx.answers.append(ModelAnswer({}, backend.name, walk.attempts, self._prompt_hash))
                        return ChatResult(generations=[ChatGeneration(message=message)])
        finally:
            self._ctx.log_model_calls(walk.attempts, self._prompt_hash)
        raise ModelChainExhaustedError(walk.attempts)


def _tool_choice(choice: str | dict | bool | None) -> str | dict | None:
    """langchain's ``tool_choice`` as the Chat Completions API spells it."""
    if choice is None or choice is False:
        return None
    if isinstance(choice, dict):
        return choice
    if choice is True or choice == "any":
        return "required"
    if choice in ("auto", "none", "required"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def _checked(message: Any, schemas: Mapping[str, Mapping], text_allowed: bool, backend: ModelBackend) -> AIMessage:
    """The answer as the graph gets it, once it passed the checks every adapter makes."""
    calls = message.tool_calls or []
    raw = []
    for call in calls:
        function = getattr(call, "function", None)
        if function is None:
            raise BackendFailedError("invalid", f"a {getattr(call, 'type', '?')} tool call, not a function call")
        raw.append((function.name, function.arguments))
    args = checked_tool_calls(raw, schemas, text=message.content, text_allowed=text_allowed)
    return AIMessage(
        content=message.content or "",
        tool_calls=[
            {"name": name, "args": a, "id": call.id, "type": "tool_call"}
            for (name, _), a, call in zip(raw, args, calls, strict=True)
        ],
        response_metadata={"model_name": backend.model, "foureyes_backend": backend.name},
    )


# -- the tools the graph is handed ------------------------------------------------------------------


def _stand_in(tool: BaseTool, recorder: ToolCallRecorder) -> BaseTool:
    """The tool as the graph gets it: same name, description and schema, supervised."""
    kind = _ReadTool if tool.name in recorder.kinds.read else _ActTool
    return kind(
        name=tool.name,
        description=tool.description,
        args_schema=tool.args_schema if tool.args_schema is not None else tool.get_input_schema(),
        return_direct=tool.return_direct,
        inner=tool,
        recorder=recorder,
    )


class _SupervisedTool(BaseTool):
    _inner: BaseTool = PrivateAttr()
    _recorder: ToolCallRecorder = PrivateAttr()
    _arguments: frozenset[str] = PrivateAttr()

    def __init__(self, *, inner: BaseTool, recorder: ToolCallRecorder, **fields: Any):
        super().__init__(**fields)
        self._inner = inner
        self._recorder = recorder
        parameters = convert_to_openai_tool(inner)["function"].get("parameters") or {}
        self._arguments = frozenset(parameters.get("properties") or ())

    def _run(self, *args: Any, **kwargs: Any) -> Any:  # every call goes through invoke
        raise NotImplementedError(f"{self.name} is called through invoke")

    def _model_args(self, given: Any) -> dict[str, object]:
        """The arguments the model gave (not what the graph injected, such as its state)."""
        args = given.get("args", {}) if _is_tool_call(given) else given
        if not isinstance(args, Mapping):
            return {"input": args}
        return {k: _plain(v) for k, v in args.items() if k in self._arguments}


class _ReadTool(_SupervisedTool):
    """Runs the user's read tool, and logs the call."""

    def invoke(self, input: Any, config: Any = None, **kwargs: Any) -> Any:
        with self._reading(input) as read:
            _answered(read, self._inner.invoke(input, config, **kwargs))
        return read.result

    async def ainvoke(self, input: Any, config: Any = None, **kwargs: Any) -> Any:
        with self._reading(input) as read:
            _answered(read, await self._inner.ainvoke(input, config, **kwargs))
        return read.result

    def _reading(self, given: Any) -> contextlib.AbstractContextManager[ReadCall]:
        # an interrupt() inside the tool is not a failure: the run pauses
        return self._recorder.reading(self.name, self._model_args(given), passing=(GraphBubbleUp,))


def _answered(read: ReadCall, result: Any) -> None:
    """A read tool's result; a ToolMessage is measured by its content, and its error status kept."""
    read.result = result
    if isinstance(result, ToolMessage):
        read.shown = result.content
        if result.status == "error":  # the tool's own error handling
            read.error = f"error reply: {result.content}"


class _ActTool(_SupervisedTool):
    """Never runs the user's act tool: the call becomes a proposal, and the model is told so."""

    def invoke(self, input: Any, config: Any = None, **kwargs: Any) -> Any:
        call_id = input.get("id") if _is_tool_call(input) else None
        reply = self._recorder.act(self.name, self._model_args(input), call_id)
        if call_id is None:
            return reply
        return ToolMessage(content=reply, tool_call_id=call_id, name=self.name)

    async def ainvoke(self, input: Any, config: Any = None, **kwargs: Any) -> Any:
        return self.invoke(input, config, **kwargs)


def _is_tool_call(given: Any) -> bool:
    return isinstance(given, Mapping) and given.get("type") == "tool_call" and "args" in given


def _plain(value: object) -> object:
    return value.model_dump() if isinstance(value, BaseModel) else value


# -- the graph, its run, its interrupts -------------------------------------------------------------


def _compiled(built: Any) -> Pregel:
    """The factory's graph, compiled, with a checkpointer (the run's state is read back from it)."""
    if not isinstance(built, Pregel):
        if not callable(getattr(built, "compile", None)):
            raise AgentDefinitionError(
                f"the graph factory returned a {type(built).__name__}, not a compiled graph or a StateGraph"
            )
        return built.compile(checkpointer=InMemorySaver())
    if isinstance(built.checkpointer, BaseCheckpointSaver):
        return built
    return built.copy(update={"checkpointer": InMemorySaver()})


def _refuse_unsupervised_tools(agent: str, compiled: Pregel, handed: Sequence[BaseTool]) -> None:
    """A ``ToolNode`` must hold the tools foureyes handed the factory, not the user's own."""
    ours = {id(t) for t in handed}
    graphs = [compiled, *(sub for _, sub in compiled.get_subgraphs(recurse=True))]
    for each in graphs:
        for node in each.nodes.values():
            bound = getattr(node, "bound", None)
            if isinstance(bound, ToolNode):
                theirs = sorted(n for n, t in bound.tools_by_name.items() if id(t) not in ours)
                if theirs:
                    raise AgentDefinitionError(
                        f"agent {agent!r}: a ToolNode of the graph holds tools foureyes did not hand it: {theirs}; "
                        "build the graph from the tools the factory is given, so each call is supervised"
                    )


def _interrupted(ctx: ProposalContext, pending: Interrupt) -> dict[str, object]:
    """The proposal an interrupt stands for, logged as waiting for a human."""
    value = pending.value
    if not isinstance(value, Mapping) or not isinstance(value.get("action"), str) or not value["action"].strip():
        raise AgentDefinitionError(
            f"agent {ctx.agent!r}: an interrupt() must be given the proposal it asks a human about: a dict with "
            f"'action', the agent's natural key, 'rationale' and 'confidence' (optionally '{HUMAN_APPROVALS}': "
            f"1 or 2), got {str(value)[:200]!r}"
        )
    approvals = value.get(HUMAN_APPROVALS, 1)
    if isinstance(approvals, bool) or approvals not in (1, 2):
        raise AgentDefinitionError(
            f"agent {ctx.agent!r}: an interrupt's {HUMAN_APPROVALS} must be 1 or 2, got {approvals!r}"
        )
    row = {**value, HUMAN_APPROVALS: int(approvals)}
    ctx.tool_calls.append(
        ToolCall(
            agent=ctx.agent,
            partition=ctx.partition,
            stage="propose",
            kind=TOOL,
            tool=str(value["action"]),
            parameters=redact({k: v for k, v in value.items() if k != "action"}),
            status=INTERRUPTED,
            latency_ms=0.0,
            detail=f"interrupt {pending.id}: became a proposal waiting for {int(approvals)} human approval(s)",
        )
    )
    return row
