"""Receiving lineage from others: an OpenLineage endpoint and a file importer for the store.

Upstream jobs outside Dagster — Spark, Airflow, dbt with their OpenLineage integrations —
point their http transport at ``foureyes lineage serve`` (it answers ``POST /api/v1/lineage``
like Marquez), or their events are imported with ``foureyes lineage ingest FILE``. Their runs
then sit in the same store as ours, indexed the same way, and the trace walks through them.

The endpoint is treated as one that faces the internet. Every event is validated against
the OpenLineage schemas before anything is stored (a 400 lists the problems, and a batch
with one bad event stores none); a body is bounded before and after decompression (413);
every malformed request gets a 4xx answer; and storing is idempotent, so a client's retry
or a file ingested twice stores each event once.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from foureyes.resources.errors import FoureyesError
from foureyes.resources.lineage.store import LineageStore
from foureyes.resources.lineage.validation import event_problems

LINEAGE_PATH = "/api/v1/lineage"
BATCH = 1000
MIB = 1024 * 1024
DEFAULT_MAX_BODY = 2 * MIB
DEFAULT_MAX_INFLATED = 8 * MIB
READ_TIMEOUT_S = 30


class InvalidLineageError(FoureyesError):
    """Events that are not valid OpenLineage, listed with their problems."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        super().__init__(f"not valid OpenLineage: {shown}")


@dataclass(frozen=True)
class Ingested:
    """What one file or request brought: stored, already stored, and the problems of invalid events."""

    stored: int = 0
    duplicates: int = 0
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class NumberedEvent:
    """An event as read from a file, with where it was (line, or position in an array)."""

    where: str
    event: object


def read_events(path: Path) -> Iterator[NumberedEvent]:
    """Events from a file: JSON lines, a JSON array, or a single JSON object; unreadable lines kept as problems."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        raise FoureyesError(f"{path}: not UTF-8 text (expected OpenLineage events as JSON)") from None
    if not text:
        return
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    else:
        items = whole if isinstance(whole, list) else [whole]
        label = "item " if isinstance(whole, list) else ""
        yield from (NumberedEvent(f"{path}:{label}{i}", e) for i, e in enumerate(items, 1))
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                yield NumberedEvent(f"{path}:{number}", json.loads(line))
            except json.JSONDecodeError as exc:
                yield NumberedEvent(f"{path}:{number}", _Unreadable(exc.msg))


def ingest(store: LineageStore, events: Iterable[NumberedEvent], *, skip_invalid: bool = False) -> Ingested:
    """Validate every event, then store them (in batches) unless one is invalid and ``skip_invalid`` is off."""
    valid, problems = [], []
    for item in events:
        unreadable = isinstance(item.event, _Unreadable)
        found = [f"not JSON ({item.event.reason})"] if unreadable else event_problems(item.event)
        if found:
            problems += [f"{item.where}: {p}" for p in found]
        else:
            valid.append(item.event)
    if problems and not skip_invalid:
        return Ingested(problems=problems)
    stored = sum(store.add_many(valid[i : i + BATCH]) for i in range(0, len(valid), BATCH))
    return Ingested(stored=stored, duplicates=len(valid) - stored, problems=problems)


class _Unreadable:
    def __init__(self, reason: str):
        self.reason = reason


class _RefusedError(Exception):
    """A request answered with a 4xx before (or instead of) anything being stored."""

    def __init__(self, status: int, message: str, **extra: object):
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra


def make_server(
    store: LineageStore,
    host: str = "127.0.0.1",
    port: int = 5000,
    *,
    max_body: int = DEFAULT_MAX_BODY,
    max_inflated: int = DEFAULT_MAX_INFLATED,
    read_timeout_s: float = READ_TIMEOUT_S,
) -> ThreadingHTTPServer:
    """An HTTP server answering ``POST /api/v1/lineage`` (201 stored, 200 all known already) and ``GET /``.

    ``max_body`` bounds the bytes read from the wire, ``max_inflated`` what a gzip or deflate
    body may expand to; past either the answer is 413 and nothing is stored. A body that stops
    arriving for ``read_timeout_s`` is answered 408.
    """

    class Handler(BaseHTTPRequestHandler):
        timeout = read_timeout_s  # a client that stops sending is answered 408, not waited for
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._answer(200, {"status": "ok", "endpoint": LINEAGE_PATH})

        def do_POST(self) -> None:
            try:
                if self.path.split("?")[0].rstrip("/") != LINEAGE_PATH:
                    raise _RefusedError(404, f"POST lineage to {LINEAGE_PATH}")
                events = self._events()
                problems = [f"event {i}: {p}" for i, e in enumerate(events) for p in event_problems(e)]
                if problems:
                    raise _RefusedError(400, "not valid OpenLineage; nothing stored", problems=problems)
                stored = store.add_many(events)
            except _RefusedError as refused:
                self._answer(refused.status, {"error": refused.message, **refused.extra}, close=True)
                return
            except TimeoutError:
                self._answer(408, {"error": f"the body stopped arriving for {read_timeout_s:g}s"}, close=True)
                return
            self._answer(201 if stored else 200, {"stored": stored, "duplicates": len(events) - stored})

        def do_PUT(self) -> None:
            self._not_allowed()

        def do_DELETE(self) -> None:
            self._not_allowed()

        def do_PATCH(self) -> None:
            self._not_allowed()

        def _not_allowed(self) -> None:
            self._answer(405, {"error": f"only POST {LINEAGE_PATH} (and GET /)"}, close=True, allow="GET, POST")

        def _events(self) -> list[object]:
            body = self._inflated(self._body())
            try:
                payload = json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise _RefusedError(400, f"the body is not JSON ({exc})") from None
            if isinstance(payload, list):
                if not payload:
                    raise _RefusedError(400, "an empty batch: send one event or a list of them")
                return payload
            return [payload]

        def _body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                return self._chunked()
            length = self.headers.get("Content-Length")
            if length is None:
                raise _RefusedError(411, "Content-Length (or Transfer-Encoding: chunked) is required")
            if not length.strip().isdigit():
                raise _RefusedError(400, f"Content-Length {length!r} is not a number of bytes")
            if int(length) > max_body:
                raise _RefusedError(413, f"the body is {int(length)} bytes; at most {max_body} are accepted")
            body = self.rfile.read(int(length))
            if len(body) < int(length):
                raise _RefusedError(400, f"the body ended after {len(body)} of {int(length)} bytes")
            return body

        def _chunked(self) -> bytes:
            body = bytearray()
            while True:
                size_line = self.rfile.readline(1024).split(b";")[0].strip()
                try:
                    size = int(size_line, 16)
                except ValueError:
                    raise _RefusedError(400, f"malformed chunk size {size_line[:20]!r}") from None
                if size == 0:
                    while self.rfile.readline(1024).strip():  # trailers, up to the blank line
                        pass
                    return bytes(body)
                if len(body) + size > max_body:
                    raise _RefusedError(413, f"the chunked body exceeds {max_body} bytes")
                chunk = self.rfile.read(size)
                if len(chunk) < size or self.rfile.read(2) != b"\r\n":
                    raise _RefusedError(400, "a chunk ended early or without its CRLF")
                body += chunk

        def _inflated(self, body: bytes) -> bytes:
            encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
            if encoding in ("", "identity"):
                return body
            if encoding not in ("gzip", "x-gzip", "deflate"):
                raise _RefusedError(415, f"Content-Encoding {encoding!r} is not supported (gzip, deflate)")
            inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib framing, told by the header
            try:
                inflated = inflater.decompress(body, max_inflated + 1)
            except zlib.error as exc:
                raise _RefusedError(400, f"the {encoding} body is corrupt ({exc})") from None
            if len(inflated) > max_inflated or inflater.unconsumed_tail:
                raise _RefusedError(413, f"the body inflates beyond {max_inflated} bytes")
            if not inflater.eof:
                raise _RefusedError(400, f"the {encoding} body is truncated")
            return inflated

        def _answer(self, status: int, body: dict, *, close: bool = False, allow: str | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if allow:
                self.send_header("Allow", allow)
            if close:  # whatever the client still sends is not read: end the connection
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            return None

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
