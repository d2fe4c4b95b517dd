"""Lineage out through any standard OpenLineage transport, and lineage in from jobs outside Dagster."""

import json
import subprocess
import sys
import urllib.error
import urllib.request
import uuid

import pytest
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import base_subset_dataset
from openlineage.client.transport.http import HttpConfig, HttpTransport

from foureyes.examples.finance_desk.daily_run import run_business_day
from foureyes.examples.finance_desk.definitions import build_definitions
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.lineage.emitter import OpenLineageResource
from foureyes.resources.settings import FoureyesSettings
from tests.conftest import ROOT, assert_valid_openlineage
from tests.helpers import environment_without, home_instance
from tests.resources.test_lineage import _materialize, quotes, signal
from tests.servers import LineageReceiver, free_port


@pytest.fixture
def marquez():
    server = LineageReceiver().start()
    yield server
    server.stop()


def _configure_http(monkeypatch, url: str) -> None:
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "http")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__URL", url)


def test_the_http_transport_configured_the_standard_way_gets_every_event_and_so_does_the_store(
    tmp_path, monkeypatch, marquez
):
    _configure_http(monkeypatch, marquez.url)
    url = f"sqlite:///{tmp_path}/c.db"
    assert _materialize(url, OpenLineageResource(control_url=url), quotes, signal).success
    stored = [e.payload for e in ControlPlaneResource(url=url).lineage_store.events()]
    assert len(marquez.events) == len(stored) == 4
    assert [e["eventType"] for e in marquez.events] == ["START", "COMPLETE", "START", "COMPLETE"]
    assert_valid_openlineage(marquez.events)
    assert {e["run"]["runId"] for e in marquez.events} == {e["run"]["runId"] for e in stored}


def test_a_receiver_that_is_down_fails_no_run_and_the_store_keeps_every_event(tmp_path, monkeypatch, marquez):
    _configure_http(monkeypatch, marquez.url)
    marquez.stop()
    url = f"sqlite:///{tmp_path}/c.db"
    assert _materialize(url, OpenLineageResource(control_url=url), quotes, signal).success
    stored = [e.payload for e in ControlPlaneResource(url=url).lineage_store.events()]
    assert [e["eventType"] for e in stored] == ["START", "COMPLETE", "START", "COMPLETE"]
    assert_valid_openlineage(stored)


def test_external_mode_sends_only_to_the_configured_transport(tmp_path, monkeypatch, marquez):
    _configure_http(monkeypatch, marquez.url)
    url = f"sqlite:///{tmp_path}/c.db"
    assert _materialize(url, OpenLineageResource(control_url=url, mode="external"), quotes).success
    assert len(marquez.events) == 2
    assert ControlPlaneResource(url=url).lineage_store.events() == []


def test_an_openlineage_yml_composite_naming_the_store_is_used_as_it_is(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/c.db"
    log = tmp_path / "events.jsonl"
    config = tmp_path / "openlineage.yml"
    config.write_text(
        "transport:\n  type: composite\n  transports:\n"
        f"    store:\n      type: foureyes.resources.lineage.transport.ControlPlaneTransport\n      url: {url}\n"
        f"    file:\n      type: file\n      log_file_path: {log}\n      append: true\n"
    )
    monkeypatch.setenv("OPENLINEAGE_CONFIG", str(config))
    assert _materialize(url, OpenLineageResource(control_url=url), quotes).success
    assert len(ControlPlaneResource(url=url).lineage_store.events()) == 2  # once, not twice
    assert len(log.read_text().splitlines()) == 2


def test_external_mode_without_a_configured_transport_is_one_clear_warning(tmp_path, caplog, monkeypatch):
    import foureyes.resources.lineage.emitter

    monkeypatch.setattr(
        foureyes.resources.lineage.emitter, "_warned", set()
    )  # warned once per process: this test's process
    url = f"sqlite:///{tmp_path}/c.db"
    assert _materialize(url, OpenLineageResource(control_url=url, mode="external"), quotes).success
    assert "lineage mode 'external' needs a transport configured the OpenLineage way" in caplog.text


def _airflow_events(partition: str) -> list[RunEvent]:
    """The vendor's Airflow DAG: it publishes the price file our vendor_prices feed reads."""
    run = Run(runId=str(uuid.uuid4()))
    job = Job(namespace="airflow", name="vendor_eod.publish_prices")
    condition = base_subset_dataset.PartitionSubsetCondition(
        partitions=[base_subset_dataset.Partition(identifier=partition, dimensions={"date": partition})]
    )
    source = InputDataset(
        namespace="s3://vendor-raw",
        name="closes",
        inputFacets={"subset": base_subset_dataset.InputSubsetInputDatasetFacet(inputCondition=condition)},
    )
    target = OutputDataset(
        namespace="sftp://vendor.example",
        name="eod/prices",
        outputFacets={"subset": base_subset_dataset.OutputSubsetOutputDatasetFacet(outputCondition=condition)},
    )
    return [
        RunEvent(
            eventType=state,
            eventTime="2026-11-18T17:00:00.000Z",
            run=run,
            job=job,
            producer="https://airflow.example",
            inputs=[source],
            outputs=[target] if state == RunState.COMPLETE else [],
        )
        for state in (RunState.START, RunState.COMPLETE)
    ]


def _cli(home, *args, **kwargs):
    env = environment_without(("FOUREYES_", "OPENLINEAGE"))
    env["FOUREYES_HOME"] = str(home)
    return subprocess.Popen([sys.executable, "-m", "foureyes.cli.main", *args], env=env, cwd=ROOT, **kwargs)


def test_lineage_served_by_others_is_traced_by_its_own_names(tmp_path):
    settings = FoureyesSettings.from_env({"FOUREYES_HOME": str(tmp_path)})
    assert run_business_day(build_definitions(settings), "2026-11-18", home_instance(tmp_path)).success
    port = free_port()
    server = _cli(tmp_path, "lineage", "serve", "--port", str(port), stdout=subprocess.PIPE, text=True)
    try:
        assert "receiving OpenLineage events on" in server.stdout.readline()
        client = OpenLineageClient(transport=HttpTransport(HttpConfig(url=f"http://127.0.0.1:{port}")))
        for event in _airflow_events("2026-11-18"):
            client.emit(event)  # the standard client, as Airflow's integration would
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/lineage",
            data=b'{"eventType": "START"}',
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        answer = json.loads(refused.value.read().decode())
        assert (
            refused.value.code == 400
            and "event 0: event: 'eventTime' is a required property at /" in (answer["problems"])
        )
    finally:
        server.terminate()
        server.wait(timeout=10)
    traced = _cli(
        tmp_path,
        "trace",
        "--dataset",
        "sftp://vendor.example",
        "eod/prices",
        "-p",
        "2026-11-18",
        "--format",
        "json",
        stdout=subprocess.PIPE,
        text=True,
    )  # a dataset foureyes does not own, as the vendor's lineage names it
    root = json.loads(traced.communicate(timeout=120)[0])["trace"]
    assert (
        traced.returncode == 0 and root["job"] == "airflow/vendor_eod.publish_prices" and root["status"] == "COMPLETE"
    )
    assert [(i["namespace"], i["name"], i["partition"]) for i in root["inputs"]] == [
        ("s3://vendor-raw", "closes", "2026-11-18")
    ]


def test_lineage_ingest_imports_files_and_refuses_what_is_not_lineage(tmp_path):
    events = tmp_path / "events.jsonl"
    from openlineage.client.serde import Serde

    events.write_text("\n".join(json.dumps(Serde.to_dict(e)) for e in _airflow_events("2026-11-19")) + "\n")
    done = _cli(tmp_path, "lineage", "ingest", str(events), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = done.communicate(timeout=60)
    assert done.returncode == 0, err
    assert out.strip() == f"{events}: 2 event(s) stored, 0 already stored"
