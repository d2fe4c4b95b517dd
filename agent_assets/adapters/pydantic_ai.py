"""A ``pydantic_ai.Agent`` as a foureyes agent's ``propose`` (extra ``foureyes[pydantic-ai]``).

The agent runs unchanged but for three things. Its model is the foureyes model chain
(``ChainModel``): ordered OpenAI-compatible backends with breakers in the control plane, each
answer checked before the agent sees it — a call to a tool that does not exist, arguments that
are not JSON or break the tool's schema, text where a structured answer was required — and a
backend that answers so is a failed link, the chain moving down. Its read tools run, each call
logged. Its act tools never run: a hook at Pydantic AI's tool execution defers each act call
through Pydantic AI's approval machinery (``ApprovalRequired``), the deferred call becomes a
proposal, and the run resumes with the call denied (``ToolDenied``) and the model told it was
recorded, not executed. What the agent finally answers — its output type is the proposal
model, one object or a list — adds proposals of its own (a ``hold`` report, say).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from foureyes.adapters.extras import require

require("pydantic_ai", "pydantic-ai", "foureyes.pydantic_ai_propose")

import openai  # noqa: E402
from pydantic import BaseModel  # noqa: E402
from pydantic_ai import Agent as PydanticAgent  # noqa: E402
from pydantic_ai import DeferredToolRequests, DeferredToolResults, ModelResponse, ToolDenied  # noqa: E402
from pydantic_ai.capabilities import Hooks  # noqa: E402
from pydantic_ai.exceptions import (  # noqa: E402
    ApprovalRequired,
    ModelConnectionError,
    ModelHTTPError,
    ModelTimeoutError,
    UnexpectedModelBehavior,
)
from pydantic_ai.messages import (  # noqa: E402
    INVALID_JSON_KEY,
    ModelMessage,
    ModelMessagesTypeAdapter,
    TextPart,
    ToolCallPart,
)
from pydantic_ai.models import Model, ModelRequestParameters  # noqa: E402
from pydantic_ai.models.openai import OpenAIChatModel  # noqa: E402
from pydantic_ai.providers.openai import OpenAIProvider  # noqa: E402
from pydantic_ai.settings import ModelSettings  # noqa: E402

from foureyes.adapters.tool_call_checks import checked_tool_calls  # noqa: E402
from foureyes.adapters.tool_kinds import ToolCallRecorder, ToolKinds  # noqa: E402
from foureyes.agent import ProposeFn  # noqa: E402
from foureyes.propose.context import ProposalContext  # noqa: E402
from foureyes.resources.fallback.model_chain import (  # noqa: E402
    OPENAI,
    ModelAnswer,
    ModelBackend,
    ModelChainExhaustedError,
    ModelChainResource,
)
from foureyes.resources.fallback.openai_backend import BackendFailedError, client_options, sdk_failure  # noqa: E402

#: Rounds of deferred act calls one run may make before it is cut off (a model stuck in a loop).
MAX_ACT_ROUNDS = 8


def pydantic_ai_propose(
    agent: PydanticAgent,
    *,
    prompt: Callable[[ProposalContext], str],
    read_tools: Sequence[str] = (),
    act_tools: Sequence[str] = (),
    deps: Callable[[ProposalContext], Any] | None = None,
) -> ProposeFn:
    """A ``propose`` that runs ``agent`` on the foureyes model chain, its act tools deferred to the executor.

    ``prompt(ctx)`` is the run's user prompt; ``deps(ctx)`` its dependencies (the
    ``ProposalContext`` itself when not given, so tools can read ``ctx.deps.inputs``). Every
    tool of the agent must be named in ``read_tools`` or ``act_tools``.

    Examples:
        >>> import pandas as pd
        >>> import pydantic_ai
        >>> import foureyes
        >>> triage = pydantic_ai.Agent(output_type=list[dict], instructions="Triage the loan tape.")
        >>> @triage.tool_plain
        ... def loan_history(loan_id: str) -> list[dict]:
        ...     return []
        >>> @triage.tool_plain
        ... def quarantine_loan(loan_id: str, rationale: str, confidence: float) -> str:
        ...     raise AssertionError("never runs inside the agent")
        >>> propose = foureyes.pydantic_ai_propose(
        ...     triage,
        ...     prompt=lambda ctx: f"Triage the tape of {ctx.partition}.",
        ...     read_tools=["loan_history"],
        ...     act_tools=["quarantine_loan"],
        ... )
        >>> callable(propose)
        True
    """
    kinds = ToolKinds.declared(_name(agent), read_tools, act_tools, _tool_names(agent))

    def propose(ctx: ProposalContext) -> pd.DataFrame:
        if ctx.models is None:
            raise ModelChainExhaustedError([])  # no chain, no model: the baseline reports
        recorder = ToolCallRecorder(ctx, kinds)
        model = ChainModel(ctx.models, ctx)
        output = _run(agent, prompt(ctx), deps(ctx) if deps else ctx, model, recorder)
        return recorder.proposals(_rows(output))

    propose.__qualname__ = f"pydantic_ai_propose[{_name(agent)}]"
    return propose


def _run(agent: PydanticAgent, prompt: str, deps: object, model: ChainModel, recorder: ToolCallRecorder) -> object:
    """Run to the final answer, each round of deferred act calls recorded and denied."""
    hooks = _tool_hooks(recorder)
    output_type = [agent.output_type, DeferredToolRequests]  # a deferred act call ends the run, to be recorded
    options = {"model": model, "deps": deps, "capabilities": [hooks], "output_type": output_type}
    result = agent.run_sync(prompt, **options)
    for _ in range(MAX_ACT_ROUNDS):
        if not isinstance(result.output, DeferredToolRequests):
            return result.output
        denied = {
            call.tool_call_id: ToolDenied(recorder.act(call.tool_name, call.args_as_dict(), call.tool_call_id))
            for call in [*result.output.approvals, *result.output.calls]
        }
        result = agent.run_sync(
            message_history=result.all_messages(),
            deferred_tool_results=DeferredToolResults(approvals=denied),
            **options,
        )
    raise UnexpectedModelBehavior(f"still calling act tools after {MAX_ACT_ROUNDS} rounds")


def _tool_hooks(recorder: ToolCallRecorder) -> Hooks:
    """Read tools run and are logged; act tools are deferred, so their body never runs here."""
    hooks = Hooks()

    @hooks.on.tool_execute
    async def supervised(ctx, *, call, tool_def, args, handler):
        if call.tool_name not in recorder.kinds.read:
            raise ApprovalRequired()  # an act tool, or anything not declared a read tool
        with recorder.reading(call.tool_name, _as_dict(args)) as read:
            read.result = await handler(args)
        return read.result

    return hooks


class ChainModel(Model):
    """The foureyes model chain as a Pydantic AI model.

    Each request walks the chain: the first OpenAI-compatible backend whose answer passes the
    checks answers; the local-policy link cannot hold a conversation, so when every endpoint
    fails the chain is exhausted and the agent's deterministic baseline reports instead. Every
    attempt goes to the context's model-call log.
    """

    def __init__(self, chain: ModelChainResource, ctx: ProposalContext):
        super().__init__()
        self._chain = chain
        self._ctx = ctx
        self._prompt_hash = ""

    @property
    def model_name(self) -> str:
        return "foureyes-chain"

    @property
    def system(self) -> str:
        return "foureyes"

    def prepare_request(
        self, model_settings: ModelSettings | None, model_request_parameters: ModelRequestParameters
    ) -> tuple[ModelSettings | None, ModelRequestParameters]:
        return model_settings, model_request_parameters  # each backend prepares its own

    def prepare_messages(
        self, messages: list[ModelMessage], model_request_parameters: ModelRequestParameters | None = None
    ) -> list[ModelMessage]:
        return messages

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        if not self._prompt_hash:  # the first request holds the instructions and the prompt
            self._prompt_hash = hashlib.sha256(ModelMessagesTypeAdapter.dump_json(messages)).hexdigest()[:16]
        walk = self._chain.walk(self._ctx.agent)
        try:
            for backend in walk.links(kinds=(OPENAI,)):
                inner = OpenAIChatModel(
                    backend.model, provider=OpenAIProvider(openai_client=openai.AsyncOpenAI(**client_options(backend)))
                )
                tries = walk.tries(backend)
                for _ in tries:
                    with tries.one():
                        settings, parameters = inner.prepare_request(model_settings, model_request_parameters)
                        response = await _answer(inner, messages, settings, parameters, backend)
                        _check(response, parameters)
                    if tries.succeeded:
                        self._ctx.answers.append(ModelAnswer({}, backend.name, walk.attempts, self._prompt_hash))
                        return response
        finally:
            self._ctx.log_model_calls(walk.attempts, self._prompt_hash)
        raise ModelChainExhaustedError(walk.attempts)


async def _answer(
    inner: OpenAIChatModel,
    messages: list[ModelMessage],
    settings: ModelSettings | None,
    parameters: ModelRequestParameters,
    backend: ModelBackend,
) -> ModelResponse:
    """One backend's answer; how it failed, in the chain's outcomes, when it did not answer."""
    try:
        return await inner.request(inner.prepare_messages(messages, parameters), settings, parameters)
    except openai.OpenAIError as exc:
        raise sdk_failure(exc, backend) from None
    except ModelTimeoutError:
        raise BackendFailedError("timeout", f"no answer within {backend.timeout_s}s") from None
    except ModelConnectionError as exc:
        raise BackendFailedError("unreachable", type(exc.__cause__ or exc).__name__) from None
    except ModelHTTPError as exc:
        raise BackendFailedError(f"http_{exc.status_code}", str(exc.body)[:200]) from None
    except (UnexpectedModelBehavior, ValueError) as exc:
        cause = exc.__cause__
        if isinstance(cause, openai.OpenAIError):
            raise sdk_failure(cause, backend) from None
        raise BackendFailedError("unparseable", f"{type(exc).__name__}: {str(exc)[:200]}") from None


def _check(response: ModelResponse, parameters: ModelRequestParameters) -> None:
    """What a backend's answer must be before the agent acts on it; else that backend failed."""
    tools = {t.name: t.parameters_json_schema for t in [*parameters.function_tools, *parameters.output_tools]}
    calls = []
    for part in response.parts:
        if isinstance(part, ToolCallPart):
            raw = part.args
            if isinstance(raw, dict) and INVALID_JSON_KEY in raw:  # how Pydantic AI keeps what it could not parse
                raw = str(raw[INVALID_JSON_KEY])
            calls.append((part.tool_name, raw))
    text = "".join(p.content for p in response.parts if isinstance(p, TextPart))
    checked_tool_calls(calls, tools, text=text, text_allowed=parameters.allow_text_output)


def _rows(output: object) -> list[Mapping[str, object]]:
    """The proposals in the agent's answer: a model or dict is one, a list holds several."""
    if output is None or isinstance(output, str):
        return []
    if isinstance(output, BaseModel):
        fields = list(type(output).model_fields)
        inner = getattr(output, fields[0]) if len(fields) == 1 else None
        return _rows(inner) if isinstance(inner, list) else [output.model_dump()]
    if isinstance(output, Mapping):
        return [output]
    if isinstance(output, list | tuple):
        return [row for item in output for row in _rows(item)]
    raise UnexpectedModelBehavior(f"the agent answered a {type(output).__name__}, not proposals")


def _as_dict(args: object) -> dict[str, object]:
    if isinstance(args, BaseModel):
        return args.model_dump()
    return dict(args) if isinstance(args, Mapping) else {"args": args}


def _tool_names(agent: PydanticAgent) -> list[str]:
    return list(agent._function_toolset.tools)


def _name(agent: PydanticAgent) -> str:
    return agent.name or "pydantic_ai_agent"
