"""What a model's answer must be before an agent library acts on it; else that backend failed.

Every adapter (Pydantic AI, LangGraph) puts a backend's answer through the same test: each
tool call names a tool that was offered, its arguments are a JSON object valid against that
tool's JSON schema, and an answer without any tool call carries text, where text is allowed
at all. A failure is a ``BackendFailedError`` (outcome ``invalid`` or ``unparseable``), so
the model chain records it and moves down, as it does for a timeout or a 5xx.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import jsonschema

from foureyes.resources.fallback.openai_backend import BackendFailedError

#: A tool call as the model made it: the tool's name and its arguments, raw (JSON text) or parsed.
RawCall = tuple[str, str | Mapping[str, object] | None]


def checked_tool_calls(
    calls: Sequence[RawCall],
    tools: Mapping[str, Mapping[str, object]],
    *,
    text: str | None,
    text_allowed: bool,
) -> list[dict[str, object]]:
    """Each call's arguments as a dict, once every call and the answer as a whole pass.

    ``tools`` maps each offered tool's name to the JSON schema of its arguments; ``text`` is
    what the answer says besides its calls, accepted as the whole answer only when
    ``text_allowed``.

    Examples:
        >>> from foureyes.adapters.tool_call_checks import checked_tool_calls
        >>> schema = {"type": "object", "properties": {"loan_id": {"type": "string"}}, "required": ["loan_id"]}
        >>> checked_tool_calls([("loan_history", '{"loan_id": "L1"}')], {"loan_history": schema},
        ...                    text=None, text_allowed=True)
        [{'loan_id': 'L1'}]
        >>> checked_tool_calls([("rm_rf", "{}")], {"loan_history": schema}, text=None, text_allowed=True)
        Traceback (most recent call last):
        ...
        foureyes...BackendFailedError: called 'rm_rf', which is not a tool (have ['loan_history'])
    """
    parsed = []
    for name, raw in calls:
        if name not in tools:
            raise BackendFailedError("invalid", f"called {name!r}, which is not a tool (have {sorted(tools)})")
        args = _arguments(name, raw)
        try:
            jsonschema.validate(args, dict(tools[name]))
        except jsonschema.ValidationError as exc:
            raise BackendFailedError("invalid", f"arguments of {name!r}: {exc.message[:200]}") from None
        parsed.append(args)
    if not calls and not (text and text.strip() and text_allowed):
        raise BackendFailedError("invalid", "answered without a tool call or the structured answer required")
    return parsed


def _arguments(name: str, raw: str | Mapping[str, object] | None) -> dict[str, object]:
    if raw is None or raw == "":
        return {}
    if isinstance(raw, Mapping):
        return dict(raw)
    try:
        args = json.loads(raw)
    except ValueError as exc:
        raise BackendFailedError("unparseable", f"arguments of {name!r} are not JSON ({exc})") from None
    if not isinstance(args, dict):
        raise BackendFailedError("unparseable", f"arguments of {name!r} are {type(args).__name__}, not a JSON object")
    return args
