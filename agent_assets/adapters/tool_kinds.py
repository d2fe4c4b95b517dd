"""The two kinds of agent tool, and what a call of each leaves behind.

A *read* tool looks at the world: it runs inside the agent, and each call is logged (name,
arguments with secrets redacted, result size, latency, outcome). An *act* tool would change
the world: it never runs inside the agent. Its call becomes a proposal — the tool's name is
the action, its arguments the proposal's columns (so an act tool takes the agent's natural
key, and ``rationale`` and ``confidence``, as parameters) — supervised like any other and
executed only by the executor, after its verdict. Every tool must be declared one or the
other: a tool nobody classified is refused at definition, so a tool added later cannot
start acting unseen.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from foureyes.propose.context import ProposalContext
from foureyes.resources.control_plane.tool_calls import TOOL, ToolCall, redact
from foureyes.resources.errors import AgentDefinitionError
from foureyes.resources.redaction import scrub

#: An act call's status in the tool-call log: it became a proposal instead of running.
DEFERRED = "deferred"
READ_OK, READ_FAILED = "ok", "error"


def deferred_reply(tool: str) -> str:
    """What the model is told instead of the act tool's result: nothing happened yet."""
    return (
        f"Recorded as a proposal: {tool} was not executed. It is reviewed by the supervisor and "
        "carried out only if approved. Do not call it again for the same case."
    )


@dataclass(frozen=True)
class ToolKinds:
    """Which of an agent's tools are read tools and which are act tools."""

    read: frozenset[str]
    act: frozenset[str]

    @classmethod
    def declared(cls, agent: str, read: Sequence[str], act: Sequence[str], tools: Iterable[str]) -> ToolKinds:
        """The declaration, checked against the tools the agent has: each exactly one kind."""
        read_set, act_set, present = _names(read), _names(act), set(tools)
        problems = []
        if both := sorted(read_set & act_set):
            problems.append(f"declared both read and act: {both}")
        if unknown := sorted((read_set | act_set) - present):
            problems.append(f"declared but not tools of the agent: {unknown} (its tools: {sorted(present)})")
        if unclassified := sorted(present - read_set - act_set):
            problems.append(f"tools neither read nor act: {unclassified}; declare each in read_tools or act_tools")
        if problems:
            raise AgentDefinitionError(f"agent {agent!r}: " + "; ".join(problems))
        return cls(frozenset(read_set), frozenset(act_set))


def _names(names: Sequence[str]) -> set[str]:
    return {names} if isinstance(names, str) else set(names)


@dataclass
class ReadCall:
    """One read call under way: what it returns, and what is measured of it when that differs."""

    result: object = None
    shown: object = None
    error: str = ""


class ToolCallRecorder:
    """Collects one run's tool calls: read calls for the log, act calls as proposals."""

    def __init__(self, ctx: ProposalContext, kinds: ToolKinds):
        self._ctx = ctx
        self.kinds = kinds
        self.act_calls: list[dict[str, object]] = []

    def read(self, tool: str, args: Mapping[str, object], result: object, started: float, error: str = "") -> None:
        """Log one read call that started at ``started`` (``time.perf_counter``) and ended now."""
        detail = f"failed: {scrub(error)[:300]}" if error else f"returned {_size(result)} bytes"
        self._log(tool, args, READ_FAILED if error else READ_OK, started, detail)

    @contextlib.contextmanager
    def reading(
        self, tool: str, args: Mapping[str, object], passing: tuple[type[BaseException], ...] = ()
    ) -> Iterator[ReadCall]:
        """Time and log the read call made inside the block; one that raises is logged failed and re-raised.

        ``passing`` are exceptions that are not failures of the tool (an interrupt): raised unlogged.
        """
        call, started = ReadCall(), time.perf_counter()
        try:
            yield call
        except passing:
            raise
        except Exception as exc:
            self.read(tool, args, None, started, error=f"{type(exc).__name__}: {exc}")
            raise
        self.read(tool, args, call.result if call.shown is None else call.shown, started, error=call.error)

    def act(self, tool: str, args: Mapping[str, object], call_id: str | None) -> str:
        """Turn one act call into a proposal row; the model's reply says it did not run."""
        self.act_calls.append({**args, "action": tool})
        self._log(tool, args, DEFERRED, time.perf_counter(), f"became a proposal (call {call_id or '-'})")
        return deferred_reply(tool)

    def proposals(self, answered: Sequence[Mapping[str, object]]) -> pd.DataFrame:
        """The run's proposals: one row per act call, then the rows of the agent's own answer."""
        return pd.DataFrame([*self.act_calls, *(dict(row) for row in answered)])

    def _log(self, tool: str, args: Mapping[str, object], status: str, started: float, detail: str) -> None:
        self._ctx.tool_calls.append(
            ToolCall(
                agent=self._ctx.agent,
                partition=self._ctx.partition,
                stage="propose",
                kind=TOOL,
                tool=tool,
                parameters=redact(dict(args)),
                status=status,
                latency_ms=round((time.perf_counter() - started) * 1000, 1),
                detail=detail,
            )
        )


def _size(result: object) -> int:
    try:
        return len(json.dumps(result, default=str))
    except (TypeError, ValueError):
        return len(str(result))
