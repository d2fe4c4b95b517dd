"""`foureyes lineage serve` and `ingest` as an endpoint facing the internet: valid, bounded, answered, idempotent.

A real server process on loopback is sent what a careless or hostile client sends: events
that break the spec, bodies too large before or after decompression, lengths that are not
numbers, chunked bodies, wrong paths and methods. Every answer is a status code with a JSON
reason; nothing invalid is stored; what is stored validates against the official schemas.
"""

from __future__ import annotations

import gzip
import http.client
import json
import subprocess
import sys
import time
import uuid

import pytest

from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.settings import FoureyesSettings
from tests.conftest import ROOT, assert_valid_openlineage
from tests.helpers import cli, environment_without
from tests.servers import free_port

RUN_EVENT = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"


def _event(**overrides) -> dict:
    event = {
        "eventType": "COMPLETE",
        "eventTime": "2026-11-20T18:00:00.000Z",
        "run": {"runId": str(uuid.uuid4())},
        "job": {"namespace": "airflow", "name": "vendor_eod.publish_prices"},
        "inputs": [],
        "outputs": [{"namespace": "s3://vendor", "name": "closes"}],
        "producer": "https://airflow.example",
        "schemaURL": RUN_EVENT,
    }
    return event | overrides


@pytest.fixture(scope="module")
def receiver(tmp_path_factory):
    home = tmp_path_factory.mktemp("receiver")
    port = free_port()
    env_home = {"FOUREYES_HOME": str(home)}
    process = subprocess.Popen(
        [sys.executable, "-m", "foureyes.cli.main", "lineage", "serve", "--port", str(port), "--max-body-mb", "1",
         "--max-inflated-mb", "2", "--read-timeout-s", "2"],
        env={**_clean_env(), **env_home}, cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert "receiving OpenLineage events on" in process.stdout.readline()
    store = ControlPlaneResource(url=FoureyesSettings.from_env(env_home).control_url).lineage_store
    yield port, store, home
    process.terminate()
    process.wait(timeout=10)


def _clean_env() -> dict[str, str]:

    return environment_without(("FOUREYES_", "OPENLINEAGE"))


def _post(port: int, body: bytes | None, headers: dict[str, str], path: str = "/api/v1/lineage", method="POST"):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.putrequest(method, path, skip_accept_encoding=True)
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.endheaders()
    if body:
        connection.send(body)
    response = connection.getresponse()
    answer = response.read()
    connection.close()
    return response.status, json.loads(answer or b"{}")


def _json(event: object) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(event).encode()
    return body, {"Content-Length": str(len(body)), "Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("event", "problem"),
    [
        (_event(eventTime="yesterday"), "is not a 'date-time' at /eventTime"),
        (_event(eventTime="2026-11-20T18:00:00"), "is not a 'date-time' at /eventTime"),  # no time zone
        (_event(run={"runId": "not-a-uuid"}), "is not a 'uuid' at /run/runId"),
        (_event(run={"runId": "{{ run_id }}"}), "is not a 'uuid' at /run/runId"),
        (_event(producer="airflow"), "is not a 'uri' at /producer"),
        (_event(job={"namespace": "airflow"}), "'name' is a required property at /job"),
        (_event(eventType="FINISHED"), "'FINISHED' is not one of"),
        (
            _event(
                run={
                    "runId": str(uuid.uuid4()),
                    "facets": {"x": {"_producer": "https://a", "_schemaURL": "https://b/x"}},
                }
            ),
            "unknown facet schema 'https://b/x'",
        ),
        ([_event(), _event(eventTime="yesterday")], "event 1: "),  # one bad event: the batch stores none
        ("just a string", "an event must be a JSON object"),
    ],
    ids=["words", "no zone", "not a uuid", "template", "producer", "job name", "event type", "facet", "batch", "str"],
)
def test_an_event_that_breaks_the_spec_is_refused_with_its_problems(receiver, event, problem):
    port, store, _ = receiver
    before = len(store.events())
    status, answer = _post(port, *_json(event))
    assert status == 400 and any(problem in p for p in answer["problems"]), answer
    assert len(store.events()) == before


def test_a_valid_event_is_stored_once_however_often_it_is_sent(receiver):
    port, store, _ = receiver
    event = _event()
    assert _post(port, *_json(event)) == (201, {"stored": 1, "duplicates": 0})
    assert _post(port, *_json(event)) == (200, {"stored": 0, "duplicates": 1})  # a client's retry
    stored = [e.payload for e in store.events() if e.run_id == event["run"]["runId"]]
    assert stored == [event]
    assert_valid_openlineage(stored)


def test_a_gzip_body_is_accepted_and_a_chunked_one_too(receiver):
    port, _, _ = receiver
    zipped = gzip.compress(json.dumps(_event()).encode())
    status, _ = _post(port, zipped, {"Content-Length": str(len(zipped)), "Content-Encoding": "gzip"})
    assert status == 201
    body = json.dumps([_event(), _event()]).encode()
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:50], body[50:])) + b"0\r\n\r\n"
    assert _post(port, chunked, {"Transfer-Encoding": "chunked"})[0] == 201


@pytest.mark.parametrize(
    ("body", "headers", "status", "says"),
    [
        (b"{}", {"Content-Length": "abc"}, 400, "is not a number of bytes"),
        (b"{}", {"Content-Length": "-5"}, 400, "is not a number of bytes"),
        (None, {}, 411, "Content-Length (or Transfer-Encoding: chunked) is required"),
        (b"x" * 10, {"Content-Length": str(10 * 1024 * 1024)}, 413, "at most 1048576 are accepted"),
        (b"{not json", {"Content-Length": "9"}, 400, "the body is not JSON"),
        (b"[]", {"Content-Length": "2"}, 400, "an empty batch"),
        (b"5\r\nabc", {"Transfer-Encoding": "chunked"}, 408, "the body stopped arriving for 2s"),
        (b"{", {"Content-Length": "2"}, 408, "the body stopped arriving for 2s"),
        (b"zz\r\n", {"Transfer-Encoding": "chunked"}, 400, "malformed chunk size"),
        (b"{}", {"Content-Length": "2", "Content-Encoding": "br"}, 415, "'br' is not supported"),
        (b"notgzip", {"Content-Length": "7", "Content-Encoding": "gzip"}, 400, "the gzip body is corrupt"),
    ],
    ids=["length words", "length negative", "no length", "too long", "not json", "empty batch", "short chunk",
         "short body", "chunk size", "encoding", "corrupt gzip"],
)  # fmt: skip
def test_every_malformed_request_gets_a_4xx_and_stores_nothing(receiver, body, headers, status, says):
    port, store, _ = receiver
    before = len(store.events())
    got, answer = _post(port, body, headers)
    assert got == status and says in answer["error"], answer
    assert len(store.events()) == before


def test_a_body_that_inflates_past_the_bound_is_refused_before_it_is_held_in_memory(receiver):
    port, _, _ = receiver
    bomb = gzip.compress(b" " * (50 * 1024 * 1024))  # 50 MB of spaces in about 50 KB
    assert len(bomb) < 100_000
    started = time.perf_counter()
    status, answer = _post(port, bomb, {"Content-Length": str(len(bomb)), "Content-Encoding": "gzip"})
    assert status == 413 and "inflates beyond 2097152 bytes" in answer["error"]
    assert time.perf_counter() - started < 30


def test_wrong_paths_and_methods_are_answered(receiver):
    port, _, _ = receiver
    assert _post(port, *_json(_event()), path="/api/v2/events")[0] == 404
    assert _post(port, b"{}", {"Content-Length": "2"}, method="PUT")[0] == 405
    assert _post(port, None, {}, method="DELETE")[0] == 405
    assert _post(port, None, {}, path="/", method="GET") == (200, {"status": "ok", "endpoint": "/api/v1/lineage"})


def test_ingest_reports_every_problem_by_line_stores_none_of_a_bad_file_and_is_idempotent(tmp_path):
    good, bad = _event(), _event(eventTime="yesterday")
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join([json.dumps(good), json.dumps(bad), "{not json", ""]) + "\n")
    refused = cli("lineage", "ingest", str(events), home=tmp_path)
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert lines[0].startswith(f"{events}:2: event: 'yesterday' is not a 'date-time'")
    assert lines[1].startswith(f"{events}:3: not JSON")
    assert lines[-1] == f"Error: {events}: 2 problem(s), nothing stored (--skip-invalid stores the valid events)"
    store = ControlPlaneResource(url=FoureyesSettings.from_env({"FOUREYES_HOME": str(tmp_path)}).control_url)
    assert store.lineage_store.events() == []
    partial = cli("lineage", "ingest", "--skip-invalid", str(events), home=tmp_path)
    assert partial.returncode == 0 and "1 event(s) stored, 0 already stored, 2 problem(s) skipped" in partial.stdout
    again = cli("lineage", "ingest", "--skip-invalid", str(events), home=tmp_path)
    assert "0 event(s) stored, 1 already stored" in again.stdout
    assert [e.payload for e in store.lineage_store.events()] == [good]
