"""The lineage store: OpenLineage events kept whole, plus an index of what each run read and wrote.

Each event is stored as received (its JSON payload), once: its key is a hash of its
canonical JSON, so the same event posted twice or a file ingested again is not stored
again. Every input and output dataset is indexed by (namespace, name, partition, version).
That index is what makes the trace exact and fast: "which run wrote this partition, and
which partitions and versions did it read" is two indexed lookups, however many events the
store holds.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import sqlalchemy as sa

from foureyes.resources.control_plane.schema import lineage_datasets, lineage_events
from foureyes.resources.engine import (
    insert_rows,
    relaxed_writes,
    single_statement_reads,
    sqlite_timestamp,
    write_transaction,
)
from foureyes.resources.lineage.names import UNPARTITIONED

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


def _partition_is(column: sa.ColumnElement, partition: str | None) -> sa.ColumnElement[bool]:
    """Rows of ``partition``; for the whole dataset (None or ``UNPARTITIONED``) both of its spellings.

    foureyes' own events name the whole of an unpartitioned dataset ``UNPARTITIONED``; an event
    from elsewhere that names no partition is indexed with none (NULL). Either is the whole.
    """
    if partition in (None, UNPARTITIONED):
        return sa.or_(column == UNPARTITIONED, column.is_(None))
    return column == partition


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
                DatasetRef(direction, ds["namespace"], ds["name"], partition, version) for partition in partitions
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


def event_key(event: Mapping) -> str:
    """The identity of an event: a hash of its canonical JSON (key order and spacing do not count)."""
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class LineageStore:
    def __init__(self, engine: sa.Engine):
        self._engine = engine

    def add(self, event: Mapping) -> None:
        """One event: the path every emitted event takes, so it goes straight to the driver.

        On PostgreSQL it is a single statement (one round trip); on SQLite one short write
        transaction on the raw sqlite3 connection. An event already stored is left as it is.
        """
        dialect = self._engine.dialect
        if dialect.name == "sqlite":
            self._add_sqlite(event)
            return
        if dialect.name != "postgresql" or dialect.driver != "psycopg":
            self.add_many([event])
            return
        row = _event_row(event, dt.datetime.now(dt.UTC))
        refs = dataset_refs(event)
        params = [row[c] for c in _EVENT_COLUMNS]
        for r in refs:
            params += [r.direction, r.namespace, r.name, r.partition, r.version]
        raw = relaxed_writes(self._engine).raw_connection()
        try:
            with raw.cursor() as cursor:
                cursor.execute(_insert_one_sql(len(refs)), params)
        finally:
            raw.close()

    def _add_sqlite(self, event: Mapping) -> None:
        row = _event_row(event, dt.datetime.now(dt.UTC))
        row["stored_at"] = sqlite_timestamp(row["stored_at"])
        raw = self._engine.raw_connection()
        try:
            cursor = raw.driver_connection.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                cursor.execute(_SQLITE_EVENT, [row[c] for c in _EVENT_COLUMNS])
                if cursor.rowcount == 1:  # 0: the same event is already stored
                    event_id = cursor.lastrowid
                    cursor.executemany(
                        _SQLITE_DATASET,
                        [
                            (event_id, r.direction, r.namespace, r.name, r.partition, r.version)
                            for r in dataset_refs(event)
                        ],
                    )
                cursor.execute("COMMIT")
            except BaseException:
                cursor.execute("ROLLBACK")
                raise
        finally:
            raw.close()

    def add_many(self, events: Iterable[Mapping]) -> int:
        """Store events and index their datasets: a few statements per batch, whatever its size.

        Returns how many were new: an event already stored (or twice in the batch) is skipped.
        Event ids are allocated up front (a sequence range on PostgreSQL; under SQLite's write
        lock, the next rowids), so events and their dataset rows go in by bulk insert. On
        PostgreSQL the commit does not wait for the WAL flush (``synchronous_commit = off``):
        a server crash may lose the last fraction of a second of lineage — never a decision, an
        approval, an outbox entry or a receipt, which keep full durability.
        """
        batch = {event_key(e): e for e in events}
        if not batch:
            return 0
        try:
            return self._add_new(batch)
        except sa.exc.IntegrityError:  # another writer stored some of them meanwhile: skip those too
            return self._add_new(batch)

    def _add_new(self, batch: dict[str, Mapping]) -> int:
        now = dt.datetime.now(dt.UTC)
        with write_transaction(self._engine) as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")
            known = set()
            keys = list(batch)
            for start in range(0, len(keys), _KEY_LOOKUP):
                chunk = keys[start : start + _KEY_LOOKUP]
                known |= set(
                    conn.execute(
                        sa.select(lineage_events.c.event_key).where(lineage_events.c.event_key.in_(chunk))
                    ).scalars()
                )
            new = [(k, e) for k, e in batch.items() if k not in known]
            if not new:
                return 0
            ids = _allocate_ids(conn, len(new))
            event_rows, dataset_rows = [], []
            for event_id, (key, event) in zip(ids, new, strict=True):
                event_rows.append({"id": event_id, **_event_row(event, now, key)})
                dataset_rows += [
                    {
                        "event_id": event_id,
                        "direction": r.direction,
                        "namespace": r.namespace,
                        "name": r.name,
                        "partition_key": r.partition,
                        "version": r.version,
                    }
                    for r in dataset_refs(event)
                ]
            insert_rows(conn, lineage_events, event_rows)
            insert_rows(conn, lineage_datasets, dataset_rows)
        return len(new)

    def writers_of(self, namespace: str, name: str, partition: str | None) -> list[StoredEvent]:
        """COMPLETE events whose outputs include this dataset partition, newest first."""
        return self._touching(namespace, name, partition, OUTPUT, ("COMPLETE",), newest_first=True)

    def readers_of(self, namespace: str, name: str, partition: str | None) -> list[StoredEvent]:
        """COMPLETE events whose inputs include this dataset partition, oldest first."""
        return self._touching(namespace, name, partition, INPUT, ("COMPLETE",), newest_first=False)

    def attempts_on(self, namespace: str, name: str, partition: str | None) -> list[StoredEvent]:
        """Every COMPLETE or FAIL event naming this partition as an output, newest first."""
        return self._touching(namespace, name, partition, OUTPUT, ("COMPLETE", "FAIL"), newest_first=True)

    def _touching(
        self,
        namespace: str,
        name: str,
        partition: str | None,
        direction: str,
        types: tuple[str, ...],
        newest_first: bool,
    ) -> list[StoredEvent]:
        d, e = lineage_datasets, lineage_events
        order = e.c.id.desc() if newest_first else e.c.id
        query = (
            sa.select(e)
            .join(d, d.c.event_id == e.c.id)
            .where(
                d.c.namespace == namespace,
                d.c.name == name,
                d.c.direction == direction,
                _partition_is(d.c.partition_key, partition),
                e.c.event_type.in_(types),
            )
            .order_by(order)
        )
        with single_statement_reads(self._engine).connect() as conn:
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


def _allocate_ids(conn: sa.Connection, count: int) -> list[int]:
    """``count`` new event ids, inside the caller's write transaction."""
    if conn.dialect.name == "postgresql":
        return list(
            conn.exec_driver_sql(
                "SELECT nextval(pg_get_serial_sequence('lineage_events', 'id')) FROM generate_series(1, %(n)s)",
                {"n": count},
            ).scalars()
        )
    start = conn.execute(sa.select(sa.func.coalesce(sa.func.max(lineage_events.c.id), 0))).scalar_one()
    return list(range(start + 1, start + count + 1))


_EVENT_COLUMNS = (
    "event_key",
    "run_id",
    "event_type",
    "event_time",
    "job_namespace",
    "job_name",
    "payload",
    "stored_at",
)
_KEY_LOOKUP = 500  # keys per existence query


def _event_row(event: Mapping, now: dt.datetime, key: str | None = None) -> dict[str, object]:
    run = event.get("run") or {}
    job = event.get("job") or {}
    return {
        "event_key": key or event_key(event),
        "run_id": str(run.get("runId", "")),
        "event_type": event.get("eventType"),
        "event_time": str(event.get("eventTime", "")),
        "job_namespace": str(job.get("namespace", "")),
        "job_name": str(job.get("name", "")),
        "payload": json.dumps(event, separators=(",", ":")),
        "stored_at": now,
    }


_SQLITE_EVENT = (
    f"INSERT OR IGNORE INTO lineage_events ({', '.join(_EVENT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _EVENT_COLUMNS)})"
)
_SQLITE_DATASET = (
    "INSERT INTO lineage_datasets (event_id, direction, namespace, name, partition_key, version) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


@functools.cache
def _insert_one_sql(datasets: int) -> str:
    """One statement storing an event and its dataset rows (PostgreSQL: a data-modifying CTE)."""
    event = (
        f"INSERT INTO lineage_events ({', '.join(_EVENT_COLUMNS)}) "
        f"VALUES ({', '.join('%s' for _ in _EVENT_COLUMNS)}) ON CONFLICT (event_key) DO NOTHING RETURNING id"
    )
    if not datasets:
        return event
    values = ", ".join("(%s, %s, %s, %s, %s)" for _ in range(datasets))
    return (
        f"WITH e AS ({event}) "
        "INSERT INTO lineage_datasets (event_id, direction, namespace, name, partition_key, version) "
        "SELECT e.id, d.direction, d.namespace, d.name, d.partition_key, d.version FROM e CROSS JOIN "
        f"(VALUES {values}) AS d(direction, namespace, name, partition_key, version)"
    )
