"""Dagster's own record of a partition: its current materialisation, and the checks that judged it.

"Good" is never foureyes' opinion. A partition is judged by the asset checks Dagster
recorded against its *current* materialisation — a plain ``@asset_check``, a multi-asset
check, dagster-pandera, dbt tests, ours: whatever wrote them, in the materialising run or
in a later one. An evaluation that targeted an older materialisation of the partition
judges that one, not this.

Three sources are read: the evaluations recorded in the materialising run itself; those of
later runs of the same partition (a check re-run from the UI) — these two also find checks
that an in-process run cannot see; and, for a check the code location declares (when the
step can see its repository), its execution history, searched for the newest evaluation of
this materialisation (it also holds what those runs miss: an evaluation reported without a
run, or a re-run older than the ``LATER_RUNS`` newest runs of the partition). The newest
evaluation of each check wins. A blocking check declared but not evaluated on
the current materialisation is reported as missing: such a partition is *not checked*,
never *passing its checks*.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import dagster as dg

DATA_VERSION_TAG = "dagster/data_version"
INPUT_POINTER_TAG = "dagster/input_event_pointer/"  # + the upstream key: the storage id of what the step read
PARTITION_TAG = "dagster/partition"
HISTORY_PAGE = 50
LATER_RUNS = 20  # later runs of the partition searched for checks re-run on its materialisation
PASSED, FAILED_BLOCKING, NOT_CHECKED = "passed", "failed", "not checked"


@dataclass(frozen=True)
class CheckOutcome:
    """One check's latest verdict on one materialisation (the shape of an OpenLineage assertion)."""

    check: str
    passed: bool
    blocking: bool
    severity: str
    description: str = ""
    run_id: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "assertion": self.check,
            "success": self.passed,
            "blocking": self.blocking,
            "severity": self.severity,
            "description": self.description,
            "run_id": self.run_id,
        }


@dataclass(frozen=True)
class UpstreamRead:
    """One upstream materialisation a step read, as Dagster tags the materialisation it wrote.

    Its version is that materialisation's own: Dagster's ``input_data_version`` tag of a
    partitioned input is a hash over partitions, which names no partition's version.
    """

    asset_key: dg.AssetKey
    storage_id: int


@dataclass(frozen=True)
class RecordedPartition:
    """A partition as Dagster recorded it: which materialisation is current, and how it was judged."""

    asset_key: dg.AssetKey
    partition: str | None
    storage_id: int
    run_id: str
    materialized_at: dt.datetime
    data_version: str | None
    metadata: Mapping[str, object]
    checks: tuple[CheckOutcome, ...] = ()
    unchecked: tuple[str, ...] = ()  # blocking checks declared but not evaluated on this materialisation
    job_name: str | None = None
    upstream: tuple[UpstreamRead, ...] = ()  # what the materialising step read, as Dagster recorded it

    @property
    def failed_blocking(self) -> list[str]:
        return [c.check for c in self.checks if c.blocking and not c.passed]

    @property
    def verdict(self) -> str:
        """``failed`` (a blocking check failed), ``passed`` (checked, every blocking one passed) or ``not checked``."""
        if self.failed_blocking:
            return FAILED_BLOCKING
        if self.checks and not self.unchecked:
            return PASSED
        return NOT_CHECKED

    def describe_checks(self) -> str:
        if self.verdict == FAILED_BLOCKING:
            return "failed " + ", ".join(self.failed_blocking)
        if self.verdict == PASSED:
            warned = [c.check for c in self.checks if not c.passed]
            return "passed its checks" + (f" (warnings: {', '.join(warned)})" if warned else "")
        missing = f" ({', '.join(self.unchecked)} not run on it)" if self.unchecked else ""
        return "not checked" + missing


class DagsterRecords:
    """Dagster's record as the trace reads it: partitions of an instance, judged by the checks a graph declares.

    ``code_location`` names, as ``dagster://<it>``, the datasets of assets foureyes does not store.
    """

    def __init__(self, instance: dg.DagsterInstance, asset_graph=None, code_location: str = "foureyes"):
        self.instance = instance
        self.asset_graph = asset_graph
        self.code_location = code_location

    def partition(self, key: dg.AssetKey, partition: str | None) -> RecordedPartition | None:
        return current_record(self.instance, key, partition, self._declared(key))

    def at(self, key: dg.AssetKey, storage_id: int) -> RecordedPartition | None:
        """The materialisation stored under this id (what a step read), judged like any other."""
        found = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, storage_ids=[storage_id]), limit=1
        ).records
        return recorded(self.instance, key, found[0], self._declared(key)) if found else None

    def with_version(self, key: dg.AssetKey, partition: str | None, version: str) -> RecordedPartition | None:
        """The newest materialisation of ``key[partition]`` whose data version is ``version``."""
        found = self.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition is not None else None),
            limit=HISTORY_PAGE,
        ).records
        match = next((r for r in found if (r.asset_materialization.tags or {}).get(DATA_VERSION_TAG) == version), None)
        return recorded(self.instance, key, match, self._declared(key)) if match else None

    def _declared(self, key: dg.AssetKey) -> list[dg.AssetCheckSpec]:
        graph = self.asset_graph
        if graph is None or not graph.has(key):
            return []
        return [graph.get_check_spec(k) for k in graph.get(key).check_keys]


class RunCheckEvaluations:
    """The check evaluations of each run, read from Dagster once for as long as this object lives.

    A step judges several inputs that one run made (the day's ingestion), and each input's
    record reads the evaluations of that run and of the partition's later runs: without this,
    the same runs' evaluations were fetched and deserialised once per input. Scope it to one
    step (``InputServer``), never longer: a run's evaluations can still grow while it runs.
    """

    def __init__(self, instance: dg.DagsterInstance):
        self.instance = instance
        self._by_run: dict[str, list[tuple[float, dg.AssetCheckEvaluation, str]]] = {}

    def of_run(self, run_id: str) -> list[tuple[float, dg.AssetCheckEvaluation, str]]:
        """(timestamp, evaluation, run id) of every check evaluation the run recorded."""
        if run_id not in self._by_run:
            records = self.instance.get_records_for_run(
                run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, limit=1000
            ).records
            self._by_run[run_id] = [
                (r.event_log_entry.timestamp, r.event_log_entry.dagster_event.event_specific_data, r.run_id)
                for r in records
            ]
        return self._by_run[run_id]


def current_record(
    instance: dg.DagsterInstance,
    key: dg.AssetKey,
    partition: str | None,
    declared: Iterable[dg.AssetCheckSpec] = (),
    evaluations: RunCheckEvaluations | None = None,
) -> RecordedPartition | None:
    """The current materialisation of ``key[partition]`` and the checks that judged it; None if never made."""
    found = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition is not None else None),
        limit=1,
    ).records
    return recorded(instance, key, found[0], declared, evaluations) if found else None


def recorded(
    instance: dg.DagsterInstance,
    key: dg.AssetKey,
    record: dg.EventLogRecord,
    declared: Iterable[dg.AssetCheckSpec],
    evaluations: RunCheckEvaluations | None = None,
) -> RecordedPartition:
    """One materialisation of ``key`` as Dagster recorded it, with the checks that judged it."""
    declared = list(declared)
    materialization = record.asset_materialization
    tags = materialization.tags or {}
    outcomes = _outcomes(instance, key, record, declared, evaluations or RunCheckEvaluations(instance))
    blocking_declared = [s.key.name for s in declared if s.blocking]
    unchecked = tuple(name for name in blocking_declared if name not in outcomes)
    return RecordedPartition(
        asset_key=key,
        partition=record.partition_key,
        storage_id=record.storage_id,
        run_id=record.run_id,
        materialized_at=dt.datetime.fromtimestamp(record.timestamp, dt.UTC),
        data_version=tags.get(DATA_VERSION_TAG),
        metadata={k: v.value for k, v in materialization.metadata.items()},  # stored metadata: MetadataValues
        checks=tuple(outcomes[name] for name in sorted(outcomes)),
        unchecked=unchecked,
        job_name=record.event_log_entry.job_name,
        upstream=_upstream(tags),
    )


def _upstream(tags: Mapping[str, str]) -> tuple[UpstreamRead, ...]:
    reads = []
    for tag, pointer in sorted(tags.items()):
        if tag.startswith(INPUT_POINTER_TAG) and pointer.isdigit():
            name = tag.removeprefix(INPUT_POINTER_TAG)
            reads.append(UpstreamRead(dg.AssetKey.from_user_string(name), int(pointer)))
    return tuple(reads)


def _outcomes(
    instance: dg.DagsterInstance,
    key: dg.AssetKey,
    record: dg.EventLogRecord,
    declared: list[dg.AssetCheckSpec],
    evaluations: RunCheckEvaluations,
) -> dict[str, CheckOutcome]:
    """The latest evaluation of each check that targeted this materialisation, by check name."""
    found: dict[str, tuple[float, CheckOutcome]] = {}

    def keep(at: float, evaluation: dg.AssetCheckEvaluation, run_id: str) -> None:
        target = evaluation.target_materialization_data
        if evaluation.asset_key != key or target is None or target.storage_id != record.storage_id:
            return
        if evaluation.check_name not in found or found[evaluation.check_name][0] <= at:
            found[evaluation.check_name] = (at, _outcome(evaluation, run_id))

    runs = [record.run_id]
    if record.partition_key is not None:
        later = instance.get_run_records(
            filters=dg.RunsFilter(
                tags={PARTITION_TAG: record.partition_key},
                created_after=dt.datetime.fromtimestamp(record.timestamp, dt.UTC),
            ),
            limit=LATER_RUNS,
        )
        runs += [r.dagster_run.run_id for r in later if r.dagster_run.run_id != record.run_id]
    for run_id in runs:
        for at, evaluation, by_run in evaluations.of_run(run_id):
            keep(at, evaluation, by_run)
    for spec in declared:  # its history also holds what those runs do not: runless reports, runs past LATER_RUNS
        latest = _latest_for(instance, spec.key, record)
        if latest is not None:
            keep(*latest)
    return {name: outcome for name, (_, outcome) in found.items()}


def _latest_for(
    instance: dg.DagsterInstance, check: dg.AssetCheckKey, record: dg.EventLogRecord
) -> tuple[float, dg.AssetCheckEvaluation, str] | None:
    """The newest evaluation of one check that targeted this materialisation (its history, newest first)."""
    storage = instance.event_log_storage
    cursor = None
    while True:
        page = storage.get_asset_check_execution_history(check, limit=HISTORY_PAGE, cursor=cursor)
        for execution in page:
            event = execution.event
            if event is None or event.dagster_event is None:  # planned, never evaluated
                continue
            evaluation = event.dagster_event.event_specific_data
            if not isinstance(evaluation, dg.AssetCheckEvaluation):
                continue
            target = evaluation.target_materialization_data
            if target is not None and target.storage_id == record.storage_id:
                return event.timestamp, evaluation, execution.run_id
            if event.timestamp < record.timestamp:  # older than the materialisation: nothing further back judges it
                return None
        if len(page) < HISTORY_PAGE:
            return None
        cursor = page[-1].id


def _outcome(evaluation: dg.AssetCheckEvaluation, run_id: str) -> CheckOutcome:
    return CheckOutcome(
        check=evaluation.check_name,
        passed=evaluation.passed,
        blocking=bool(evaluation.blocking),
        severity=evaluation.severity.value.lower(),
        description=evaluation.description or "",
        run_id=run_id,
    )
