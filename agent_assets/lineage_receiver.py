"""Receiving lineage from others: an OpenLineage endpoint and a file importer for the store.

Upstream jobs outside Dagster — Spark, Airflow, dbt with their OpenLineage integrations —
point their http transport at ``foureyes lineage serve`` (it answers ``POST /api/v1/lineage``
like Marquez), or their events are imported with ``foureyes lineage ingest FILE``. Their runs
then sit in the same store as ours, indexed the same way, and the trace walks through them.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from resources.errors import FoureyesError
from resources.lineage_store import LineageStore

LINEAGE_PATH = "/api/v1/lineage"
BATCH = 1000


class InvalidLineageError(FoureyesError):
    """An event that is not an OpenLineage run, dataset or job event."""


def check_event(event: object) -> dict:
    """The structural minimum of an OpenLineage event, so that it can be indexed and traced."""
    if not isinstance(event, dict):
        raise InvalidLineageError(f"an event must be a JSON object, not {type(event).__name__}")
    missing = [k for k in ("eventTime", "producer") if not event.get(k)]
    if "run" in event:
        if not (event.get("run") or {}).get("runId"):
            missing.append("run.runId")
        job = event.get("job") or {}
        missing += [f"job.{k}" for k in ("namespace", "name") if not job.get(k)]
    elif "dataset" not in event and "job" not in event:
        missing.append("run, dataset or job")
    for side in ("inputs", "outputs"):
        for i, ds in enumerate(event.get(side) or []):
            if not isinstance(ds, dict) or not ds.get("namespace") or not ds.get("name"):
                missing.append(f"{side}[{i}].namespace/name")
    if missing:
        raise InvalidLineageError(f"not an OpenLineage event: missing {', '.join(missing)}")
    return event


def read_events(path: Path) -> Iterator[dict]:
    """Events from a file: JSON lines, a JSON array, or a single JSON object."""
    text = path.read_text().strip()
    if not text:
        return
    if text[0] == "[":
        yield from json.loads(text)
        return
    try:
        yield json.loads(text)
    except json.JSONDecodeError:
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InvalidLineageError(f"{path}:{number}: not JSON ({exc.msg})") from None


def ingest(store: LineageStore, events: Iterable[object]) -> int:
    """Check and store events in batches; returns how many were stored."""
    stored, batch = 0, []
    for event in events:
        batch.append(check_event(event))
        if len(batch) >= BATCH:
            stored += store.add_many(batch)
            batch = []
    return stored + store.add_many(batch)


def make_server(store: LineageStore, host: str = "127.0.0.1", port: int = 5000) -> ThreadingHTTPServer:
    """An HTTP server answering ``POST /api/v1/lineage`` (201 on success) and ``GET /`` (health)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer(200, {"status": "ok", "endpoint": LINEAGE_PATH})

        def do_POST(self) -> None:
            if self.path.split("?")[0].rstrip("/") != LINEAGE_PATH:
                self._answer(404, {"error": f"POST lineage to {LINEAGE_PATH}"})
                return
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                if self.headers.get("Content-Encoding", "").lower() == "gzip":
                    body = gzip.decompress(body)
                payload = json.loads(body)
                events = payload if isinstance(payload, list) else [payload]
                count = ingest(store, events)
            except (ValueError, OSError, InvalidLineageError) as exc:
                self._answer(400, {"error": str(exc)})
                return
            self._answer(201, {"stored": count})

        def _answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:
            return None

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
