"""Real HTTP servers on loopback for the model-chain and tool-server paths.

``ModelServer`` speaks the OpenAI chat-completions protocol; ``ToolServer`` is an order
system that deduplicates by ``Idempotency-Key``. Both can be switched, while running, to
answer normally, slowly, with a 500, with garbage, or to stop listening altogether.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

UP, SLOW, ERROR, GARBAGE, INVALID = "up", "slow", "error", "garbage", "invalid"
ECHO = "echo"  # a hostile server: a 500 whose body repeats the credentials it was sent
REFUSED, CONFLICT = "refused", "conflict"  # a 4xx "no", and a 409 "I already have it"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    """A ThreadingHTTPServer that can be started, switched and stopped (down = not listening)."""

    def __init__(self, handler: Callable[[BaseHTTPRequestHandler, dict], tuple[int, bytes]], slow_s: float = 3.0):
        self.port = free_port()
        self.mode = UP
        self.slow_s = slow_s
        self.requests: list[dict] = []
        self._handle = handler
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> _Server:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                outer.requests.append(
                    {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
                )
                if outer.mode == SLOW:
                    time.sleep(outer.slow_s)
                if outer.mode == ERROR:
                    status, payload = 500, b'{"error": "internal"}'
                elif outer.mode == ECHO:
                    echoed = {"error": "bad gateway", "you_sent": dict(self.headers), "path": self.path}
                    status, payload = 500, json.dumps(echoed).encode()
                elif outer.mode == GARBAGE:
                    status, payload = 200, b"<html>proxy error</html>"
                elif outer.mode == REFUSED:
                    status, payload = 422, b'{"error": "order breaches the desk limit"}'
                elif outer.mode == CONFLICT:
                    status, payload = 409, b'{"error": "idempotency key already used"}'
                else:
                    status, payload = outer._handle(self, body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                return None

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


class ModelServer(_Server):
    """An OpenAI-compatible model: ``answer(prompt) -> dict`` is what it says (as JSON content)."""

    def __init__(self, answer: Callable[[str], dict], slow_s: float = 3.0):
        def handle(_request, body: dict) -> tuple[int, bytes]:
            prompt = body["messages"][-1]["content"]
            content = answer(prompt) if self.mode != INVALID else {"decisions": "nope"}
            reply = {"choices": [{"message": {"role": "assistant", "content": json.dumps(content)}}]}
            return 200, json.dumps(reply).encode()

        super().__init__(handle, slow_s)


class ToolServer(_Server):
    """An order system: accepts each idempotency key once, and says "duplicate" after that.

    With ``dedupes=False`` it is the order system that ignores the key: every POST is a new
    order (``orders`` counts them). ``on_order(key)`` runs once an order is taken, before the
    answer is sent (a test can kill its client right there).
    """

    def __init__(self, slow_s: float = 3.0, dedupes: bool = True):
        self.accepted: dict[str, dict] = {}
        self.orders: list[str] = []
        self.on_order: Callable[[str], None] | None = None
        self._lock = threading.Lock()

        def handle(request: BaseHTTPRequestHandler, body: dict) -> tuple[int, bytes]:
            key = request.headers.get("Idempotency-Key")
            if key != body.get("idempotency_key"):
                return 400, b'{"error": "idempotency key mismatch"}'
            with self._lock:
                if dedupes and key in self.accepted:
                    return 200, json.dumps({"status": "duplicate", "reference": self.accepted[key]["ref"]}).encode()
                self.orders.append(key)
                self.accepted[key] = {"ref": f"ORD-{len(self.orders):05d}", "body": body}
            if self.on_order is not None:
                self.on_order(key)
            return 201, json.dumps({"status": "accepted", "reference": self.accepted[key]["ref"]}).encode()

        super().__init__(handle, slow_s)


class LineageReceiver(_Server):
    """A Marquez-like receiver: keeps every event POSTed to /api/v1/lineage and answers 201."""

    def __init__(self):
        self.events: list[dict] = []

        def handle(request: BaseHTTPRequestHandler, body: dict) -> tuple[int, bytes]:
            if request.path != "/api/v1/lineage":
                return 404, b"{}"
            self.events.append(body)
            return 201, b"{}"

        super().__init__(handle)
