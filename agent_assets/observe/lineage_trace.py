"""The trace: from one output partition back to the input partitions, versions and runs that made it.

It walks the lineage store — every event kept whole, its datasets indexed by (namespace,
name, partition, version) — so each hop is two indexed lookups, and the cost of a trace
grows with the size of the answer, not of the store. Where no lineage event describes a
partition (an asset of the project's, stored by its own IO manager), the walk goes on
through Dagster's record: the materialisation read, the checks that judged it, and what its
step read in turn (Dagster tags every materialisation with the upstream ones it read). Each hop says which partition was
requested and which was served, the version read and whether it is still current, the
quality assertions of that partition, its staleness, and the run that produced it. Suspects
are marked: failed assertions, fallbacks, versions rewritten after the output read them,
failed latest attempts. The trace ends with a one-line root cause.

``downstream`` answers the opposite question: every output partition that consumed a given
input partition (the blast radius of a bad one).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import dagster as dg

from foureyes.resources.control_plane.resource import ControlPlaneResource
from foureyes.resources.errors import LineageNotFoundError
from foureyes.resources.fallback.check_record import DagsterRecords, RecordedPartition, UpstreamRead
from foureyes.resources.lineage.names import (
    DEFAULT_CODE_LOCATION,
    DatasetName,
    asset_key_of,
    dagster_dataset,
    dataset_of,
)
from foureyes.resources.lineage.store import INPUT, OUTPUT, LineageStore, StoredEvent, dataset_refs
from foureyes.resources.warehouse.store import UNPARTITIONED, SqlWarehouseResource


@dataclass
class Hop:
    """One dataset partition in a trace, and how the step above it saw it."""

    dataset: str
    namespace: str
    name: str
    partition: str | None
    requested: str | None
    version: str | None
    current_version: str | None = None
    assertions: list[dict] = field(default_factory=list)
    staleness: str = ""
    run_id: str | None = None
    dagster_run_id: str | None = None  # what to paste into the Dagster UI
    job: str | None = None
    status: str | None = None
    completed_at: str | None = None
    stored_in: str | None = None  # where its IO manager put it, as Dagster recorded (``duckdb db.public.t``)
    suspects: list[str] = field(default_factory=list)
    inputs: list[Hop] = field(default_factory=list)

    @property
    def label(self) -> str:
        partition = "whole table" if self.partition in (None, UNPARTITIONED) else self.partition
        return f"{self.dataset}[{partition}]"

    def failed_assertions(self) -> list[str]:
        """Checks that failed and count: blocking ones (a ``warn`` severity, or not blocking, only warns)."""
        return [a["assertion"] for a in self.assertions if not a.get("success", True) and not _only_warns(a)]

    def warnings(self) -> list[str]:
        return [a["assertion"] for a in self.assertions if not a.get("success", True) and _only_warns(a)]

    def walk(self, path: tuple[Hop, ...] = ()):
        """Every hop below (and including) this one, with the path from the root to it."""
        here = (*path, self)
        yield self, here
        for child in self.inputs:
            yield from child.walk(here)


@dataclass
class Trace:
    root: Hop
    root_cause: str

    def to_json(self) -> dict:
        return {"root_cause": self.root_cause, "trace": asdict(self.root)}


@dataclass(frozen=True)
class Impact:
    """An output partition that consumed (directly or not) the partition asked about."""

    dataset: str
    partition: str | None
    version: str | None
    job: str
    run_id: str
    depth: int
    via: str


def trace(
    control_plane: ControlPlaneResource,
    asset: str,
    partition: str | None = None,
    *,
    records: DagsterRecords | None = None,
    warehouse: SqlWarehouseResource | None = None,
    depth: int | None = None,
    version: str | None = None,
) -> Trace:
    """Walk back from ``asset[partition]`` (the version written last, or ``version``) to its sources.

    ``records`` (Dagster's record of the code location) lets the walk go through assets that
    emit no lineage of their own, and names each asset's dataset as its IO manager recorded it;
    without it, an asset is taken to be a table of foureyes' ``warehouse``.

    Raises:
        LineageNotFoundError: neither the lineage nor Dagster's record holds that partition (or version).
    """
    key = dg.AssetKey.from_user_string(asset)
    dataset = dataset_of_asset(key, partition, records, warehouse)
    return trace_dataset(
        control_plane.lineage_store,
        dataset.namespace,
        dataset.name,
        partition or UNPARTITIONED,
        records=records,
        depth=depth,
        version=version,
        label=asset,
    )


def dataset_of_asset(
    key: dg.AssetKey, partition: str | None, records: DagsterRecords | None, warehouse: SqlWarehouseResource | None
) -> DatasetName:
    """An asset's dataset: as its IO manager recorded it (Dagster's record), else a warehouse table."""
    if records is not None:
        recorded = records.partition(key, None if partition in (None, UNPARTITIONED) else partition)
        if recorded is not None:
            return dataset_of(key, recorded.metadata, records.code_location)
    if warehouse is not None:
        return warehouse.dataset_name(key)
    return dagster_dataset(key, records.code_location if records else DEFAULT_CODE_LOCATION)


def trace_dataset(
    store: LineageStore,
    namespace: str,
    name: str,
    partition: str | None,
    *,
    records: DagsterRecords | None = None,
    depth: int | None = None,
    version: str | None = None,
    label: str | None = None,
) -> Trace:
    """``trace`` for any dataset on record, ours or another producer's, named as OpenLineage names it."""
    label = label or f"{namespace}/{name}"
    writers = store.writers_of(namespace, name, partition)
    if writers and version is not None and not any(_output_version(w, namespace, name) == version for w in writers):
        raise LineageNotFoundError(f"no completed run wrote version {version[:12]} of {label} partition {partition}")
    walker = _Walker(store, records, depth)
    root = walker.hop(namespace, name, partition, partition, version, {}, level=0)
    if root.run_id is None:
        raise LineageNotFoundError(
            f"no completed run wrote {label} partition {partition} "
            f"(dataset {namespace}/{name}); materialise it first, or check the asset key"
        )
    return Trace(root, root_cause(root))


def downstream(
    control_plane: ControlPlaneResource,
    asset: str,
    partition: str | None,
    *,
    records: DagsterRecords | None = None,
    warehouse: SqlWarehouseResource | None = None,
    depth: int | None = None,
) -> list[Impact]:
    """Every output partition built, directly or through others, on ``asset[partition]``.

    Outputs of foureyes' steps are found in the lineage; with ``records``, so are the
    project's own assets that read it, in Dagster's record.
    """
    store = control_plane.lineage_store
    key = dg.AssetKey.from_user_string(asset)
    dataset = dataset_of_asset(key, partition, records, warehouse)
    start = (dataset.namespace, dataset.name, partition or UNPARTITIONED)
    seen = {start}
    frontier = [(start, _asset_of(dataset.namespace, dataset.name))]
    impacts: list[Impact] = []
    level = 0
    while frontier and (depth is None or level < depth):
        level += 1
        next_frontier = []
        for (namespace, name, part), via in frontier:
            found = [
                *_lineage_readers(store, namespace, name, part),
                *_dagster_readers(store, records, namespace, name, part),
            ]
            for ref_namespace, ref_name, ref_partition, ref_version, job, run_id in found:
                ref_key = (ref_namespace, ref_name, ref_partition)
                if ref_key in seen:
                    continue
                seen.add(ref_key)
                label = _asset_of(ref_namespace, ref_name)
                impacts.append(Impact(label, ref_partition, ref_version, job, run_id, level, via))
                next_frontier.append((ref_key, f"{via} -> {label}[{ref_partition}]"))
        frontier = next_frontier
    return impacts


def _lineage_readers(store: LineageStore, namespace: str, name: str, partition: str | None):
    for event in store.readers_of(namespace, name, partition):
        for ref in dataset_refs(event.payload):
            if ref.direction == OUTPUT:
                yield ref.namespace, ref.name, ref.partition, ref.version, event.job_name, event.run_id


def _dagster_readers(
    store: LineageStore, records: DagsterRecords | None, namespace: str, name: str, partition: str | None
):
    """The project's assets whose current materialisation read this partition's current one.

    A reader with lineage of its own (an agent's step) is left to it: Dagster tags the partition
    it declared, the lineage the one it was served (a fallback reads an older one).
    """
    key = _asset_key(namespace, name)
    if records is None or records.asset_graph is None or key is None or not records.asset_graph.has(key):
        return
    part = None if partition in (None, UNPARTITIONED) else partition
    read = records.partition(key, part)
    if read is None:
        return
    for child in sorted(records.asset_graph.get(key).child_keys):
        child_node = records.asset_graph.get(child)
        child_part = part if child_node.partitions_def is not None else None
        made = records.partition(child, child_part)
        if made is not None and any(u.asset_key == key and u.storage_id == read.storage_id for u in made.upstream):
            dataset = dataset_of(child, made.metadata, records.code_location)
            if store.writers_of(dataset.namespace, dataset.name, made.partition or UNPARTITIONED):
                continue
            yield (
                dataset.namespace,
                dataset.name,
                made.partition or UNPARTITIONED,
                made.data_version,
                (f"dagster/{made.job_name or '-'}"),
                made.run_id,
            )


def root_cause(root: Hop) -> str:
    """One line: the most upstream failed partition, else a fallback, else a superseded read."""
    hops = list(root.walk())
    failed = [(hop, path) for hop, path in hops if hop.failed_assertions() and hop is not root]
    if failed:
        hop, path = max(failed, key=lambda item: len(item[1]))
        route = " -> ".join(h.label for h in reversed(path[1:-1]))
        via = f" through {route}" if route else ""
        return (
            f"root cause: {hop.label} (version {short_version(hop.version)}) failed "
            f"{', '.join(hop.failed_assertions())}; it reached {root.label}{via}"
        )
    fallbacks = [hop for hop, _ in hops if hop.staleness]
    if fallbacks:
        hop = fallbacks[0]
        return f"degraded, not corrupted: {hop.dataset} {hop.staleness}"
    superseded = [hop for hop, _ in hops if hop.version and hop.current_version and hop.version != hop.current_version]
    if superseded:
        hop = superseded[0]
        return (
            f"built on a superseded version: {hop.label} was read at {short_version(hop.version)}, "
            f"now {short_version(hop.current_version)}"
        )
    failed_runs = [hop for hop, _ in hops if hop.status == "FAIL"]
    if failed_runs:
        return f"the latest attempt to rebuild {failed_runs[0].label} failed; the output rests on an earlier run"
    return f"no suspect: every input of {root.label} on record passed its checks and is current"


class _Walker:
    def __init__(self, store: LineageStore, records: DagsterRecords | None, depth: int | None):
        self.store = store
        self.records = records
        self.depth = depth
        self.visited: set[tuple] = set()

    def hop(self, namespace, name, partition, requested, version, read_facets: dict, level: int) -> Hop:
        hop = Hop(_asset_of(namespace, name), namespace, name, partition, requested, version)
        self._note_fallback(hop, read_facets)
        attempts = self.store.attempts_on(namespace, name, partition)  # one query: writers and failures
        writers = [e for e in attempts if e.event_type == "COMPLETE"]
        if not writers and self._from_dagster(hop, level):
            return hop
        return self._from_lineage(hop, attempts, writers, level)

    def _note_fallback(self, hop: Hop, read_facets: dict) -> None:
        fallback = read_facets.get("foureyes_fallback") or {}
        if fallback.get("stale"):
            age = f"{fallback.get('agePartitions')} {fallback.get('ageUnit') or 'partition'}(s) old"
            hop.staleness = (
                f"requested {fallback.get('requestedPartition')}, served {fallback.get('servedPartition')} "
                f"({age}: {fallback.get('reason')})"
            )
            hop.suspects.append(f"fallback: {fallback.get('reason')}")
        hop.assertions = list((read_facets.get("dataQualityAssertions") or {}).get("assertions") or [])

    def _from_lineage(self, hop: Hop, attempts: list[StoredEvent], writers: list[StoredEvent], level: int) -> Hop:
        namespace, name, partition, version = hop.namespace, hop.name, hop.partition, hop.version
        producer = None
        if writers:
            hop.current_version = _output_version(writers[0], namespace, name)
            producer = next((w for w in writers if version and _output_version(w, namespace, name) == version), None)
            producer = producer or (writers[0] if version is None else None)
            if producer is None:
                hop.suspects.append(f"version {short_version(version)} has no recorded writer")
            else:
                hop.version = hop.version or _output_version(producer, namespace, name)
                self._describe_producer(hop, producer, attempts)
        if not hop.assertions:
            hop.assertions = self._recorded_assertions(hop)
        self._judge(hop)
        if writers and (self.depth is None or level < self.depth) and producer is not None:
            key = (namespace, name, partition, hop.version)
            if key not in self.visited:
                self.visited.add(key)
                hop.inputs = [
                    self.hop(
                        ds["namespace"],
                        ds["name"],
                        _partition_of(ds),
                        _requested_of(ds),
                        _version_of(ds),
                        {**(ds.get("inputFacets") or {}), **(ds.get("facets") or {})},
                        level + 1,
                    )
                    for ds in producer.payload.get("inputs") or []
                ]
        return hop

    def _from_dagster(
        self, hop: Hop, level: int, *, by_pointer: bool = False, pointed: RecordedPartition | None = None
    ) -> bool:
        """The hop from Dagster's record, for a partition no lineage event describes; False if none holds it.

        ``by_pointer``: the hop is what a step's input pointer named, ``pointed`` (already read; None
        when Dagster no longer holds it).
        """
        key = _asset_key(hop.namespace, hop.name)
        if self.records is None or key is None:
            return False
        partition = None if hop.partition in (None, UNPARTITIONED) else hop.partition
        current = self.records.partition(key, partition)
        if by_pointer:
            read = pointed
        elif hop.version and current is not None and current.data_version != hop.version:
            read = self.records.with_version(key, partition, hop.version)
        else:
            read = current
        if read is None:
            if current is None:
                return False
            hop.suspects.append(f"version {short_version(hop.version)} is no longer on Dagster's record")
            read = current
        hop.version = hop.version or read.data_version
        hop.current_version = current.data_version if current else None
        hop.run_id = hop.dagster_run_id = read.run_id
        hop.job = f"dagster/{read.job_name or '-'}"
        hop.status = "COMPLETE"
        hop.completed_at = read.materialized_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        hop.stored_in = _stored_in(read.metadata)
        hop.assertions = hop.assertions or [c.to_json() for c in read.checks]
        self._judge(hop)
        seen = ("dagster", key.to_user_string(), read.storage_id)
        if (self.depth is None or level < self.depth) and seen not in self.visited:
            self.visited.add(seen)
            hop.inputs = [self._dagster_input(upstream, level + 1) for upstream in read.upstream]
        return True

    def _dagster_input(self, upstream: UpstreamRead, level: int) -> Hop:
        found = self.records.at(upstream.asset_key, upstream.storage_id)
        dataset = (
            dataset_of(upstream.asset_key, found.metadata, self.records.code_location)
            if found is not None
            else dagster_dataset(upstream.asset_key, self.records.code_location)
        )
        partition = found.partition if found is not None else None
        hop = Hop(
            _asset_of(dataset.namespace, dataset.name),
            dataset.namespace,
            dataset.name,
            partition or UNPARTITIONED,
            partition or UNPARTITIONED,
            found.data_version if found is not None else None,
        )
        if not self._from_dagster(hop, level, by_pointer=True, pointed=found):
            hop.suspects.append("no longer on Dagster's record")
        return hop

    def _judge(self, hop: Hop) -> None:
        if hop.failed_assertions():
            hop.suspects.append("failed " + ", ".join(hop.failed_assertions()))
        if hop.version and hop.current_version and hop.version != hop.current_version:
            read, now = short_version(hop.version), short_version(hop.current_version)
            hop.suspects.append(f"superseded: read {read}, now {now}")

    def _describe_producer(self, hop: Hop, producer: StoredEvent, attempts: list[StoredEvent]) -> None:
        hop.run_id = producer.run_id
        hop.dagster_run_id = _parent_run_id(producer.payload)
        hop.job = f"{producer.job_namespace}/{producer.job_name}"
        hop.completed_at = producer.event_time
        hop.status = attempts[0].event_type
        if hop.status == "FAIL":
            hop.suspects.append(f"latest attempt failed (run {attempts[0].run_id[:8]})")

    def _recorded_assertions(self, hop: Hop) -> list[dict]:
        """The checks Dagster recorded on the partition, when what it holds now is the version read."""
        key = _asset_key(hop.namespace, hop.name)
        if self.records is None or key is None:
            return []
        partition = None if hop.partition in (None, UNPARTITIONED) else hop.partition
        record = self.records.partition(key, partition)
        if record is None or (hop.version and record.data_version != hop.version):
            return []
        return [c.to_json() for c in record.checks]


def _parent_run_id(payload: dict) -> str | None:
    """The run that contains an OpenLineage run: for foureyes' steps, the Dagster run id."""
    parent = ((payload.get("run") or {}).get("facets") or {}).get("parent") or {}
    return (parent.get("run") or {}).get("runId")


def _only_warns(assertion: dict) -> bool:
    """A failed check that does not count against the partition: a non-blocking one (Dagster's record says
    so), or, from other producers' lineage, one of severity ``warn``."""
    if "blocking" in assertion:
        return not assertion["blocking"]
    return str(assertion.get("severity", "")).lower() == "warn"


def _output_version(event: StoredEvent, namespace: str, name: str) -> str | None:
    for ref in dataset_refs(event.payload):
        if ref.direction == OUTPUT and ref.namespace == namespace and ref.name == name:
            return ref.version
    return None


def _partition_of(ds: dict) -> str | None:
    refs = [r for r in dataset_refs({"inputs": [ds]}) if r.direction == INPUT]
    return refs[0].partition if refs else None


def _requested_of(ds: dict) -> str | None:
    fallback = (ds.get("inputFacets") or {}).get("foureyes_fallback") or {}
    return fallback.get("requestedPartition") or _partition_of(ds)


def _version_of(ds: dict) -> str | None:
    return ((ds.get("facets") or {}).get("version") or {}).get("datasetVersion")


def _stored_in(metadata: dict[str, object]) -> str | None:
    """The store Dagster's standard metadata names (``dagster/storage_kind``, ``dagster/table_name``)."""
    where = " ".join(str(metadata[k]) for k in ("dagster/storage_kind", "dagster/table_name") if metadata.get(k))
    return where or None


def _asset_of(namespace: str, name: str) -> str:
    """A dataset's label: the asset key of a warehouse table or a Dagster asset; namespace/name otherwise."""
    key = _asset_key(namespace, name)
    return key.to_user_string() if key is not None else f"{namespace}/{name}"


def _asset_key(namespace: str, name: str) -> dg.AssetKey | None:
    """Warehouse tables are named after asset keys (``a__b`` is ``a/b``); ``dagster://`` datasets are keys."""
    if namespace.startswith(("sqlite://", "postgres://")):
        return dg.AssetKey(name.rsplit(".", 1)[-1].split("__"))
    return asset_key_of(DatasetName(namespace, name))


def short_version(version: str | None) -> str:
    """The first 12 characters of a dataset version, as shown to people."""
    return version[:12] if version else "-"
