"""Lineage-aware reads and outputs for foureyes assets.

Every foureyes asset opens its step's lineage run, reads its inputs through
``read_recorded`` (so the exact partition and version served land in the COMPLETE event),
and names its outputs as warehouse datasets. Asset bodies call these three functions and
nothing else of the lineage machinery.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import dagster as dg
from openlineage.client.facet_v2 import column_lineage_dataset, data_quality_assertions_dataset

from foureyes.resources.fallback.inputs import ServedInput
from foureyes.resources.lineage.emitter import LineageDataset, OpenLineageResource, StepLineage
from foureyes.resources.lineage.facets import FallbackInputDatasetFacet
from foureyes.resources.warehouse.store import UNPARTITIONED, PartitionRecord, SqlWarehouseResource, StoredPartition


def warehouse_dataset(
    warehouse: SqlWarehouseResource,
    key: dg.AssetKey,
    partition: str | None,
    version: str | None = None,
) -> LineageDataset:
    name = warehouse.dataset_name(key)
    return LineageDataset(name.namespace, name.name, partition or UNPARTITIONED, version)


def open_step(
    context: dg.AssetExecutionContext,
    lineage: OpenLineageResource,
    warehouse: SqlWarehouseResource,
    extra_outputs: Sequence[LineageDataset] = (),
    column_lineage: Mapping[str, Sequence[tuple[dg.AssetKey, str]]] | None = None,
) -> StepLineage | None:
    """Send START for this asset step; its output is the asset's partition in the warehouse.

    ``column_lineage`` maps an output column to the (input asset, column) pairs it derives
    from, for the ``columnLineage`` facet.
    """
    partitioned = context.assets_def.partitions_def is not None  # an unpartitioned asset in a partitioned run
    partition = context.partition_key if partitioned and context.has_partition_key else None
    output = warehouse_dataset(warehouse, context.assets_def.key, partition)
    if column_lineage:
        output = replace(output, facets={"columnLineage": _column_lineage(warehouse, column_lineage)})
    return lineage.begin_step(context, [output, *extra_outputs])


def _column_lineage(
    warehouse: SqlWarehouseResource, derived: Mapping[str, Sequence[tuple[dg.AssetKey, str]]]
) -> column_lineage_dataset.ColumnLineageDatasetFacet:
    fields = {}
    for column, sources in derived.items():
        inputs = []
        for key, field in sources:
            name = warehouse.dataset_name(key)
            inputs.append(column_lineage_dataset.InputField(namespace=name.namespace, name=name.name, field=field))
        fields[column] = column_lineage_dataset.Fields(inputFields=inputs)
    return column_lineage_dataset.ColumnLineageDatasetFacet(fields=fields)


def read_recorded(
    step: StepLineage | None,
    warehouse: SqlWarehouseResource,
    key: dg.AssetKey,
    partition: str | None,
) -> StoredPartition:
    """Read one input partition and record exactly what was served."""
    stored = warehouse.read_partition(key, partition)
    if step is not None:
        step.read(warehouse_dataset(warehouse, key, stored.record.partition, stored.record.version))
    return stored


def recorded_version(
    step: StepLineage | None,
    warehouse: SqlWarehouseResource,
    key: dg.AssetKey,
    partition: str | None,
) -> PartitionRecord:
    """The catalog record (version) of an input partition, read without its rows, and recorded as read."""
    record = warehouse.require_record(key, partition)
    if step is not None:
        step.read(warehouse_dataset(warehouse, key, record.partition, record.version))
    return record


def record_served(step: StepLineage | None, served: ServedInput) -> None:
    """Record an input as it was served: dataset, partition, version, staleness, and the checks that judged it."""
    if step is None or served.dataset is None:
        return
    facets: dict[str, object] = {
        "foureyes_fallback": FallbackInputDatasetFacet(
            requestedPartition=served.requested,
            servedPartition=served.served,
            agePartitions=served.age,
            ageUnit=served.unit,
            stale=served.stale,
            usable=served.usable,
            reason=served.reason,
            checkStatus=served.check_status,
        )
    }
    if served.checks:
        facets["dataQualityAssertions"] = data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
            assertions=[
                data_quality_assertions_dataset.Assertion(
                    assertion=c.check,
                    success=c.passed,
                    severity="error" if c.blocking else "warn",
                    description=c.description or None,
                )
                for c in served.checks
            ]
        )
    dataset = served.dataset
    step.read(LineageDataset(dataset.namespace, dataset.name, served.served, served.version, input_facets=facets))
