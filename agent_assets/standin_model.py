"""A stand-in for a language model: an OpenAI-compatible server that answers deterministically.

It is not a model. The demo and the tests have none, and the agents must still be exercised
end to end over real HTTP, tool calls included, so this server answers each chat completion
with what a *policy* (a plain function of the request) says, and labels every answer as a
stand-in (``model`` and ``system_fingerprint``). Switches make it misbehave the ways real
models do, so that supervision is seen to catch each:

* ``unknown_tool``: the first tool call names a tool the request does not offer;
* ``malformed_json``: the first tool call's arguments are cut short, not JSON;
* ``stall``: the answer comes after ``stall_s`` seconds (longer than a client waits);
* anything else (``hallucinated_id``, ``out_of_policy``...) is passed to the policy, whose
  domain it is.

Point ``FOUREYES_MODELS`` at a real OpenAI-compatible endpoint (vLLM, Ollama, a hosted API) in
production; ``foureyes standin-model`` serves this one on loopback.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

STANDIN = "foureyes-standin"
FINGERPRINT = "stand-in: deterministic answers from a policy, not a language model"
#: How often the serving thread looks for a stop: ``stop`` waits for it, and the shipped code
#: location starts and stops the stand-in with every run (socketserver's 0.5 s cost ~0.25-0.5 s each).
STOP_POLL_S = 0.02
UNKNOWN_TOOL, MALFORMED_JSON, STALL = "unknown_tool", "malformed_json", "stall"
HALLUCINATED_ID, OUT_OF_POLICY = "hallucinated_id", "out_of_policy"

__all__ = [
    "FINGERPRINT",
    "HALLUCINATED_ID",
    "MALFORMED_JSON",
    "OUT_OF_POLICY",
    "STALL",
    "STANDIN",
    "UNKNOWN_TOOL",
    "Policy",
    "Reply",
    "StandinModelServer",
]

#: A reply: ``{"content": str | None, "tool_calls": [{"name": ..., "arguments": {...}}]}``,
#: or None when the policy does not answer this request.
Reply = Mapping[str, object]
Policy = Callable[[Mapping[str, object], frozenset[str]], Reply | None]


class StandinModelServer:
    """The stand-in on ``127.0.0.1``: ``url`` is its base URL (the ``/v1`` API).

    Examples:
        >>> import openai
        >>> def echo(request, faults):
        ...     return {"content": "heard: " + request["messages"][-1]["content"]}
        >>> with StandinModelServer(echo) as server:
        ...     client = openai.OpenAI(base_url=server.url, api_key="none")
        ...     answer = client.chat.completions.create(model="any", messages=[{"role": "user", "content": "hi"}])
        >>> answer.choices[0].message.content, answer.model
        ('heard: hi', 'foureyes-standin')
    """

    def __init__(self, *policies: Policy, faults: Iterable[str] = (), stall_s: float = 30.0, port: int = 0):
        self.policies = policies
        self.faults = frozenset(faults)
        self.stall_s = stall_s
        self.requests: list[dict] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": STOP_POLL_S}, name="standin-model", daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/v1"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (the ``foureyes standin-model`` command)."""
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()

    def completion(self, request: Mapping[str, object]) -> tuple[int, dict]:
        """The HTTP status and body answering one chat-completions request."""
        self.requests.append(dict(request))
        if STALL in self.faults:
            time.sleep(self.stall_s)
        reply = next((r for p in self.policies if (r := p(request, self.faults)) is not None), None)
        if reply is None:
            return 404, {"error": {"message": "the stand-in has no policy for this request", "type": "not_found"}}
        return 200, _chat_completion(_misbehaving(dict(reply), self.faults), len(self.requests))


def _misbehaving(reply: dict, faults: frozenset[str]) -> dict:
    calls = [dict(c) for c in reply.get("tool_calls") or []]
    if calls and UNKNOWN_TOOL in faults:
        calls[0]["name"] = "delete_all_records"
    if calls and MALFORMED_JSON in faults:
        calls[0]["raw_arguments"] = json.dumps(calls[0].get("arguments", {}))[:-3]
    return {**reply, "tool_calls": calls}


def _chat_completion(reply: Mapping[str, object], number: int) -> dict:
    calls = [
        {
            "id": f"call_{number}_{i}",
            "type": "function",
            "function": {"name": c["name"], "arguments": c.get("raw_arguments") or json.dumps(c.get("arguments", {}))},
        }
        for i, c in enumerate(reply.get("tool_calls") or [])
    ]
    message: dict[str, object] = {"role": "assistant", "content": reply.get("content")}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": f"standin-{number}",
        "object": "chat.completion",
        "created": 0,
        "model": STANDIN,
        "system_fingerprint": FINGERPRINT,
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def _handler(owner: StandinModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                self._send(
                    200, {"object": "list", "data": [{"id": STANDIN, "object": "model", "owned_by": "foureyes"}]}
                )
            else:
                self._send(404, {"error": {"message": f"no {self.path}"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                request = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._send(400, {"error": {"message": "the body is not JSON"}})
                return
            if self.path.rstrip("/") != "/v1/chat/completions" or not isinstance(request, dict):
                self._send(404, {"error": {"message": f"no {self.path}"}})
                return
            self._send(*owner.completion(request))

        def _send(self, status: int, body: dict) -> None:
            payload = json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (a stall)
                pass

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler
