"""The lineage store: OpenLineage events kept whole, plus an index of what each run read and wrote.

Each event is stored as received (its JSON payload), and every input and output dataset is
indexed by (namespace, name, partition, version). That index is what makes the trace exact
and fast: "which run wrote this partition, and which partitions and versions did it read"
is two indexed lookups, however many events the store holds.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa

from resources.control_schema import lineage_datasets, lineage_events
from resources.engine import write_transaction

INPUT, OUTPUT = "input", "output"


@dataclass(frozen=True)
class DatasetRef:
    """One dataset partition as a run saw it."""

    direction: str
    namespace: str
    name: str
    partition: str | None
    version: str | None


@dataclass(frozen=True)
class StoredEvent:
    id: int
    run_id: str
    event_type: str | None
    event_time: str
    job_namespace: str
    job_name: str
    payload: dict

    def datasets(self, direction: str) -> list[dict]:
        return list(self.payload.get("inputs" if direction == INPUT else "outputs") or [])


def dataset_refs(event: Mapping) -> list[DatasetRef]:
    """The (dataset, partition, version) rows an event contributes to the index."""
    refs: list[DatasetRef] = []
    for direction, key, facet_key in (
        (INPUT, "inputs", "inputFacets"),
        (OUTPUT, "outputs", "outputFacets"),
    ):
        for ds in event.get(key) or []:
            version = ((ds.get("facets") or {}).get("version") or {}).get("datasetVersion")
            partitions = _partitions(((ds.get(facet_key) or {}).get("subset") or {}), direction) or [None]
            refs.extend(
                DatasetRef(direction, ds["namespace"], ds["name"], partition, version)
                for partition in partitions
            )
    return refs


def _partitions(subset: Mapping, direction: str) -> list[str]:
    condition = subset.get("inputCondition" if direction == INPUT else "outputCondition") or {}
    if condition.get("type") != "partition":
        return []
    found = []
    for p in condition.get("partitions") or []:
        identifier = p.get("identifier")
        if identifier is None:
            dims = p.get("dimensions") or {}
            identifier = "|".join(str(v) for _, v in sorted(dims.items()))
        found.append(str(identifier))
    return found


class LineageStore:
    def __init__(self, engine: sa.Engine):
        self._engine = engine

    def add(self, event: Mapping) -> None:
        self.add_many([event])

    def add_many(self, events: Iterable[Mapping]) -> int:
        """Store events and index their datasets in one transaction."""
        batch = list(events)
        if not batch:
            return 0
        now = dt.datetime.now(dt.UTC)
        with write_transaction(self._engine) as conn:
            for event in batch:
                run = event.get("run") or {}
                job = event.get("job") or {}
                event_id = conn.execute(
                    lineage_events.insert().values(
                        run_id=str(run.get("runId", "")),
                        event_type=event.get("eventType"),
                        event_time=str(event.get("eventTime", "")),
                        job_namespace=str(job.get("namespace", "")),
                        job_name=str(job.get("name", "")),
                        payload=json.dumps(event, separators=(",", ":")),
                        stored_at=now,
                    )
                ).inserted_primary_key[0]
                refs = dataset_refs(event)
                if refs:
                    conn.execute(
                        lineage_datasets.insert(),
                        [
                            {
                                "event_id": event_id,
                                "direction": r.direction,
                                "namespace": r.namespace,
                                "name": r.name,
                                "partition_key": r.partition,
                                "version": r.version,
                            }
                            for r in refs
                        ],
                    )
        return len(batch)

    def writers_of(self, namespace: str, name: str, partition: str | None) -> list[StoredEvent]:
        """COMPLETE events whose outputs include this dataset partition, newest first."""
        d, e = lineage_datasets, lineage_events
        query = (
            sa.select(e)
            .join(d, d.c.event_id == e.c.id)
            .where(
                d.c.namespace == namespace,
                d.c.name == name,
                d.c.direction == OUTPUT,
                d.c.partition_key == partition if partition is not None else d.c.partition_key.is_(None),
                e.c.event_type == "COMPLETE",
            )
            .order_by(e.c.id.desc())
        )
        with self._engine.connect() as conn:
            return [_to_event(r) for r in conn.execute(query).all()]

    def events(self, run_id: str | None = None) -> list[StoredEvent]:
        """Stored events in arrival order (all of them, or one run's)."""
        query = sa.select(lineage_events).order_by(lineage_events.c.id)
        if run_id is not None:
            query = query.where(lineage_events.c.run_id == run_id)
        with self._engine.connect() as conn:
            return [_to_event(r) for r in conn.execute(query).all()]


def _to_event(row: sa.Row) -> StoredEvent:
    return StoredEvent(
        id=row.id,
        run_id=row.run_id,
        event_type=row.event_type,
        event_time=row.event_time,
        job_namespace=row.job_namespace,
        job_name=row.job_name,
        payload=json.loads(row.payload),
    )
