"""OpenLineage from inside steps: valid events with partitions and versions, never a failed asset."""

import logging
import uuid

import dagster as dg
import pandas as pd
import pytest
from openlineage.client.event_v2 import Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import base_subset_dataset
from openlineage.client.serde import Serde

from foureyes.observe.step_lineage import open_step, read_recorded
from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.lineage.emitter import LINEAGE_HOOKS, OpenLineageResource
from foureyes.resources.lineage.store import INPUT, OUTPUT, dataset_refs
from foureyes.resources.warehouse.store import PartitionedSqlIOManager, SqlWarehouseResource, versioned_output
from tests.conftest import assert_valid_openlineage

DAYS = dg.DailyPartitionsDefinition(start_date="2026-11-01")


@dg.asset(partitions_def=DAYS, hooks=LINEAGE_HOOKS)
def quotes(context: dg.AssetExecutionContext, warehouse: SqlWarehouseResource, lineage: OpenLineageResource):
    open_step(context, lineage, warehouse)
    return versioned_output(pd.DataFrame({"px": [1.0, 2.0, 3.0]}))


@dg.asset(partitions_def=DAYS, deps=[quotes], hooks=LINEAGE_HOOKS)
def signal(context: dg.AssetExecutionContext, warehouse: SqlWarehouseResource, lineage: OpenLineageResource):
    step = open_step(context, lineage, warehouse)
    frame = read_recorded(step, warehouse, quotes.key, context.partition_key).frame
    if frame["px"].sum() > 100:
        raise ValueError("prices out of range")
    return versioned_output(frame.assign(z=frame["px"] / frame["px"].mean()))


def _materialize(db_url, lineage: OpenLineageResource, *assets, partition="2026-11-20"):
    warehouse = SqlWarehouseResource(url=db_url)
    return dg.materialize(
        list(assets),
        partition_key=partition,
        resources={
            "warehouse": warehouse,
            "lineage": lineage,
            "io_manager": PartitionedSqlIOManager(warehouse=warehouse),
        },
        raise_on_error=False,
    )


def test_complete_events_carry_partitions_versions_statistics_and_schema(db_url):
    lineage = OpenLineageResource(control_url=db_url, namespace="risk")
    assert _materialize(db_url, lineage, quotes, signal).success
    events = [e.payload for e in ControlPlaneResource(url=db_url).lineage_store.events()]
    assert_valid_openlineage(events)
    assert [(e["job"]["name"], e["eventType"]) for e in events] == [
        ("foureyes.quotes", "START"),
        ("foureyes.quotes", "COMPLETE"),
        ("foureyes.signal", "START"),
        ("foureyes.signal", "COMPLETE"),
    ]
    complete = events[3]
    warehouse = SqlWarehouseResource(url=db_url)
    assert complete["job"]["namespace"] == "risk"
    facets = complete["run"]["facets"]
    assert facets["nominalTime"] == {
        **facets["nominalTime"],
        "nominalStartTime": "2026-11-20T00:00:00.000Z",
        "nominalEndTime": "2026-11-21T00:00:00.000Z",
    }
    assert facets["processing_engine"]["name"] == "Dagster"
    assert facets["parent"]["run"]["runId"] == events[0]["run"]["facets"]["parent"]["run"]["runId"]
    output = complete["outputs"][0]
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == 3
    assert [f["name"] for f in output["facets"]["schema"]["fields"]] == ["px", "z"]
    refs = dataset_refs(complete)
    assert {(r.direction, r.name.rsplit(".", 1)[-1], r.partition, r.version) for r in refs} == {
        (INPUT, "quotes", "2026-11-20", warehouse.partition_record("quotes", "2026-11-20").version),
        (
            OUTPUT,
            "signal",
            "2026-11-20",
            warehouse.partition_record("signal", "2026-11-20").version,
        ),
    }
    assert events[0]["run"]["runId"] != events[2]["run"]["runId"]


def test_a_failing_step_sends_fail_with_its_inputs(db_url):
    lineage = OpenLineageResource(control_url=db_url)

    @dg.asset(partitions_def=DAYS, name="quotes", hooks=LINEAGE_HOOKS)
    def big_quotes(
        context: dg.AssetExecutionContext,
        warehouse: SqlWarehouseResource,
        lineage: OpenLineageResource,
    ):
        open_step(context, lineage, warehouse)
        return versioned_output(pd.DataFrame({"px": [500.0]}))

    _materialize(db_url, lineage, big_quotes)
    assert not _materialize(db_url, lineage, signal, big_quotes.to_source_asset()).success
    events = [e.payload for e in ControlPlaneResource(url=db_url).lineage_store.events()]
    assert_valid_openlineage(events)
    fail = events[-1]
    assert fail["eventType"] == "FAIL" and fail["job"]["name"] == "foureyes.signal"
    assert "ValueError: prices out of range" in fail["run"]["facets"]["errorMessage"]["message"]
    assert [i["name"].rsplit(".", 1)[-1] for i in fail["inputs"]] == ["quotes"]


def test_an_unusable_lineage_store_never_fails_the_asset(tmp_path, caplog, monkeypatch):
    import foureyes.resources.lineage.emitter

    monkeypatch.setattr(
        foureyes.resources.lineage.emitter, "_warned", set()
    )  # warned once per process: this test's process
    lineage = OpenLineageResource(control_url="sqlite:////proc/no/such/dir/control.db")
    with caplog.at_level(logging.WARNING, logger="foureyes.lineage"):
        result = _materialize(f"sqlite:///{tmp_path}/w.db", lineage, quotes)
    assert result.success
    assert "OpenLineage is unavailable, steps run without it" in caplog.text


def test_disabled_lineage_emits_nothing(db_url):
    assert _materialize(db_url, OpenLineageResource(control_url=db_url, enabled=False), quotes).success
    assert ControlPlaneResource(url=db_url).lineage_store.events() == []


@pytest.mark.parametrize(
    ("subset", "expected"),
    [
        (
            {
                "inputCondition": {
                    "type": "partition",
                    "partitions": [{"identifier": "2026-11-20", "dimensions": {}}],
                }
            },
            ["2026-11-20"],
        ),
        (
            {
                "inputCondition": {
                    "type": "partition",
                    "partitions": [{"dimensions": {"region": "eu", "date": "2026-11-20"}}],
                }
            },
            ["2026-11-20|eu"],
        ),
        ({"inputCondition": {"type": "location", "locations": ["s3://x"]}}, [None]),
    ],
)
def test_partitions_of_events_from_other_producers_are_indexed(subset, expected):
    event = {"inputs": [{"namespace": "s3://bucket", "name": "raw", "inputFacets": {"subset": subset}}]}
    assert [r.partition for r in dataset_refs(event)] == expected


def _completed(job: str, partition: str | None) -> dict:
    """A COMPLETE event writing dbt's daily_pnl: one partition of it, or (None) naming none."""
    facets = {}
    if partition is not None:
        condition = base_subset_dataset.PartitionSubsetCondition(
            partitions=[base_subset_dataset.Partition(identifier=partition, dimensions={"partition_key": partition})]
        )
        facets["subset"] = base_subset_dataset.OutputSubsetOutputDatasetFacet(outputCondition=condition)
    event = RunEvent(
        eventType=RunState.COMPLETE,
        eventTime="2026-11-20T18:00:00.000Z",
        run=Run(runId=str(uuid.uuid4())),
        job=Job(namespace="elsewhere", name=job),
        producer="https://example.org/elsewhere",
        outputs=[OutputDataset(namespace="dbt", name="daily_pnl", outputFacets=facets)],
    )
    return Serde.to_dict(event)


@pytest.mark.parametrize("asked_as", [None, "__all__"])
def test_the_whole_of_a_dataset_is_found_however_its_writer_named_it(db_url, asked_as):
    """An outside job names no partition; foureyes names the whole dataset ``__all__``: both are the whole."""
    store = ControlPlaneResource(url=db_url).lineage_store
    events = [_completed("theirs", None), _completed("ours", "__all__"), _completed("a_day", "2026-11-20")]
    assert_valid_openlineage(events)
    for event in events:
        store.add(event)
    found = store.writers_of("dbt", "daily_pnl", asked_as)
    assert sorted(e.payload["job"]["name"] for e in found) == ["ours", "theirs"]  # not the day's partition
    assert [e.payload["job"]["name"] for e in store.writers_of("dbt", "daily_pnl", "2026-11-20")] == ["a_day"]
