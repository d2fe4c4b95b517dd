"""The far side of the reliability harness: a payments hub on loopback that keeps count.

It honours ``Idempotency-Key`` as a real order system that promises to would: a key it has
applied is answered ``duplicate`` and not applied again. It counts what the harness checks
against: every delivery per key, and every application per business action (the payment's
``payment_id``), so a payment sent under two keys shows as applied twice.

It can flap (``flapping``): decline a share of requests before acting (503), apply and then
answer too late for the client (a timeout), or apply and drop the connection without an
answer (a lost response). ``on_applied(key)`` runs the moment an action is applied, before
the answer is sent: the harness kills the client there.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER, DECLINE, LATE, LOSE = "answer", "decline", "late", "lose"


@dataclass(frozen=True)
class Flapping:
    """Shares of requests declined (before acting), answered late and answered never (after acting)."""

    declined: float = 0.30
    late: float = 0.07
    lost: float = 0.07
    late_by_s: float = 0.6
    seed: int = 14

    def behaviours(self) -> Callable[[], str]:
        rng = random.Random(self.seed)
        lock = threading.Lock()

        def draw() -> str:
            with lock:
                roll = rng.random()
            if roll < self.declined:
                return DECLINE
            if roll < self.declined + self.late:
                return LATE
            if roll < self.declined + self.late + self.lost:
                return LOSE
            return ANSWER

        return draw


class PaymentsHub:
    """A tool server for ``HttpToolTarget``: POST /actions, deduplicated by idempotency key."""

    def __init__(self, flapping: Flapping | None = None):
        self.applied: dict[str, str] = {}  # idempotency key -> payment_id
        self.deliveries: Counter[str] = Counter()  # every POST, per key
        self.applications: Counter[str] = Counter()  # every application, per payment_id
        self.behaviours: Counter[str] = Counter()
        self.on_applied: Callable[[str], None] | None = None
        self._flapping = flapping
        self._draw = flapping.behaviours() if flapping else (lambda: ANSWER)
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> PaymentsHub:
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def apply(self, key: str, payment_id: str) -> bool:
        """Apply once per key; whether this delivery applied it."""
        with self._lock:
            self.deliveries[key] += 1
            if key in self.applied:
                return False
            self.applied[key] = payment_id
            self.applications[payment_id] += 1
            return True

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                key = self.headers.get("Idempotency-Key", "")
                behaviour = hub._draw()
                hub.behaviours[behaviour] += 1
                if behaviour == DECLINE:
                    return self._answer(503, {"error": "busy, try later"})
                fresh = hub.apply(key, str(body.get("payload", {}).get("payment_id", "")))
                if fresh and hub.on_applied is not None:
                    hub.on_applied(key)
                if behaviour == LOSE:
                    self.close_connection = True
                    self.connection.close()
                    return None
                if behaviour == LATE:
                    time.sleep(hub._flapping.late_by_s)
                return self._answer(201 if fresh else 200, {"status": "accepted" if fresh else "duplicate"})

            def _answer(self, status: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client is gone (killed, or timed out): it never hears the answer
                    pass

            def log_message(self, *args) -> None:
                return None

        return Handler
