"""The trace: from one output partition back to the input partitions and versions it was built from.

It reads the lineage store (COMPLETE events indexed by dataset, partition and version), so
the answer is exactly what the producing step recorded as served — not the latest version
of each input, and not the whole input table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import dagster as dg

from resources.errors import LineageNotFoundError
from resources.lineage_store import INPUT, LineageStore, StoredEvent, dataset_refs
from resources.warehouse import UNPARTITIONED, SqlWarehouseResource


@dataclass(frozen=True)
class TraceInput:
    dataset: str
    namespace: str
    name: str
    partition: str | None
    version: str | None


@dataclass(frozen=True)
class Trace:
    asset: str
    partition: str
    namespace: str
    name: str
    version: str | None
    run_id: str
    job: str
    completed_at: str
    inputs: tuple[TraceInput, ...] = field(default_factory=tuple)

    def to_json(self) -> dict:
        return asdict(self)


def trace(store: LineageStore, warehouse: SqlWarehouseResource, asset: str, partition: str | None) -> Trace:
    """The inputs (dataset, partition, version) the latest write of ``asset[partition]`` read.

    Raises:
        LineageNotFoundError: no completed run ever wrote that partition.
    """
    key = dg.AssetKey.from_user_string(asset)
    dataset = warehouse.dataset_name(key)
    partition_key = partition or UNPARTITIONED
    writers = store.writers_of(dataset.namespace, dataset.name, partition_key)
    if not writers:
        raise LineageNotFoundError(
            f"no completed run wrote {asset} partition {partition_key} "
            f"(dataset {dataset.namespace}/{dataset.name}); materialise it first, or check the asset key"
        )
    event = writers[0]
    return Trace(
        asset=key.to_user_string(),
        partition=partition_key,
        namespace=dataset.namespace,
        name=dataset.name,
        version=_output_version(event, dataset.namespace, dataset.name),
        run_id=event.run_id,
        job=event.job_name,
        completed_at=event.event_time,
        inputs=tuple(
            TraceInput(_asset_of(r.name), r.namespace, r.name, r.partition, r.version)
            for r in dataset_refs(event.payload)
            if r.direction == INPUT
        ),
    )


def _output_version(event: StoredEvent, namespace: str, name: str) -> str | None:
    for ref in dataset_refs(event.payload):
        if ref.direction != INPUT and ref.namespace == namespace and ref.name == name:
            return ref.version
    return None


def _asset_of(dataset_name: str) -> str:
    """Warehouse tables are named after asset keys (``a__b`` is ``a/b``)."""
    return dataset_name.rsplit(".", 1)[-1].replace("__", "/")


def format_trace(result: Trace) -> str:
    """The trace as a short text tree."""
    lines = [
        f"{result.asset} [{result.partition}]  version {_short(result.version)}",
        f"  written by {result.job}, run {result.run_id[:8]}, completed {result.completed_at}",
        "  computed from:",
    ]
    width = max((len(i.dataset) for i in result.inputs), default=0)
    for item in result.inputs:
        part = item.partition if item.partition not in (None, UNPARTITIONED) else "(whole table)"
        lines.append(f"    {item.dataset:<{width}}  partition {part:<13}  version {_short(item.version)}")
    if not result.inputs:
        lines.append("    (no inputs recorded)")
    return "\n".join(lines)


def _short(version: str | None) -> str:
    return version[:12] if version else "-"
