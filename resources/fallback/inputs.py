"""Serving inputs: the requested partition, or the last known good one, loaded through its own IO manager.

For each input of an agent (or of its supervisor) the resolver looks at Dagster's record
(``foureyes.resources.fallback.check_record``): the requested partition is served if it is materialised and
no blocking check failed on its current materialisation, whatever wrote the check.
Otherwise the newest earlier partition that qualifies is served, and the record says so:
which partition was requested, which was served, how many partitions older it is, and why.
Past the input's maximum staleness the input is unusable, but still served, for a baseline
to report from.

The partition is loaded through the IO manager of the asset that stores it (DuckDB, files,
a warehouse: whatever the code location says), so an agent reads any asset of its code
location. Its version is Dagster's data version of that materialisation, or a content hash
of the frame served. A record says "passed its checks" only when checks ran on exactly what
was served and passed; otherwise "not checked".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field

from foureyes.resources.asset_inputs import AssetInput
from foureyes.resources.errors import InputDataError
from foureyes.resources.fallback.check_record import (
    FAILED_BLOCKING,
    NOT_CHECKED,
    PASSED,
    CheckOutcome,
    RecordedPartition,
    RunCheckEvaluations,
    current_record,
)
from foureyes.resources.lineage.names import UNPARTITIONED, DatasetName, code_location_of, dataset_of
from foureyes.resources.warehouse.versions import dataset_version

# How Dagster's own asset value loader types a loaded input: ``Any``, so that an IO manager with
# several (or typed) handlers — DuckDB's, Snowflake's — loads its default type, as it does in a
# code location. Typed ``object``, such an IO manager finds no handler and fails.
ANY_INPUT = dg.DagsterType(type_check_fn=lambda _context, _value: True, name="Any", typing_type=Any)


@dataclass(frozen=True)
class ServedInput:
    """What an input resolved to, and everything the record needs to say about it."""

    input: AssetInput
    requested: str
    served: str | None
    frame: pd.DataFrame | None
    version: str | None = None
    dataset: DatasetName | None = None
    age: int = 0
    usable: bool = True
    reason: str = ""
    checks: tuple[CheckOutcome, ...] = field(default_factory=tuple)
    check_status: str = NOT_CHECKED
    unit: str = "partition"  # what one step of ``age`` is: a business day, a day, an hour...

    @property
    def stale(self) -> bool:
        return self.served != self.requested

    @property
    def passed_checks(self) -> bool:
        return self.check_status == PASSED

    def describe(self) -> str:
        if not self.stale:
            return f"{self.input.name}: {self.requested} (fresh, {self.check_status})"
        if self.served is None:
            return f"{self.input.name}: nothing servable for {self.requested} ({self.reason})"
        unusable = "" if self.usable else f", beyond the {self.input.max_staleness}-{self.unit} limit"
        return (
            f"{self.input.name}: served {self.served} for {self.requested} "
            f"({self.age} {self.unit}{'s' if self.age != 1 else ''} old{unusable}; {self.reason})"
        )

    def to_json(self) -> dict:
        return {
            "input": self.input.asset,
            "requested": self.requested,
            "served": self.served,
            "version": self.version,
            "dataset": f"{self.dataset.namespace}/{self.dataset.name}" if self.dataset else None,
            "age": self.age,
            "age_unit": self.unit,
            "stale": self.stale,
            "usable": self.usable,
            "reason": self.reason,
            "checks": self.check_status,
            "assertions": [c.to_json() for c in self.checks],
        }


class FallbackResource(dg.ConfigurableResource):
    """Serves each agent input from the requested partition or the last known good one.

    Examples:
        >>> import dagster as dg
        >>> import foureyes
        >>> fallback = foureyes.FallbackResource(look_back=20)
        >>> fallback.look_back, fallback.code_location
        (20, None)
        >>> sorted(dg.Definitions(resources={"fallback": fallback}).resources)
        ['fallback']
    """

    look_back: int = Field(default=60, description="How many earlier partitions to search for a good one.")
    code_location: str | None = Field(
        default=None,
        description="Names datasets of assets stored outside foureyes' warehouse, dagster://<it>; default: the run's.",
    )

    @contextmanager
    def server(self, context: dg.OpExecutionContext) -> Iterator[InputServer]:
        """Serve inputs inside one step; the IO managers it opens are closed when the step is done."""
        with ExitStack() as stack:
            location = self.code_location or code_location_of(context.run)
            yield InputServer(context, self.look_back, location, stack)


@dataclass(frozen=True)
class Resolution:
    """Which partition of an input to serve, judged from Dagster's record, and why (before anything is loaded)."""

    requested: str
    served: str | None
    record: RecordedPartition | None
    age: int = 0
    reason: str = ""
    unit: str = "partition"


class LastKnownGood:
    """Finds the partition to serve: the requested one if it qualifies, else the newest earlier one that does.

    ``evaluations`` shares the runs' check evaluations between lookups; only for lookups that
    judge one moment of the record (one step), as ``InputServer`` does.
    """

    def __init__(
        self,
        instance: dg.DagsterInstance,
        asset_graph,
        look_back: int = 60,
        evaluations: RunCheckEvaluations | None = None,
    ):
        self.instance = instance
        self.graph = asset_graph
        self.look_back = look_back
        self.evaluations = evaluations

    def resolve(self, spec: AssetInput, partition: str | None) -> Resolution:
        node = self.node(spec.key)
        declared = [self.graph.get_check_spec(k) for k in node.check_keys]
        if node.partitions_def is None:
            record = current_record(self.instance, spec.key, None, declared, self.evaluations)
            why = _why_not(record, spec)
            if why:
                return Resolution(UNPARTITIONED, None, None, reason=f"{why}; nothing older")
            return Resolution(UNPARTITIONED, UNPARTITIONED, record)
        if partition is None:
            raise InputDataError(f"{spec.asset} is partitioned, but the step has no partition to ask it for")
        candidates = self._newest_first(node.partitions_def, partition, spec)
        materialized: set[str] | None = None  # read once the requested partition is not the one served
        unit = partition_unit(node.partitions_def)
        why = ""
        for age, candidate in enumerate(candidates):
            if age == 1:
                materialized = self.instance.get_materialized_partitions(spec.key)
            made = materialized is None or candidate in materialized
            record = current_record(self.instance, spec.key, candidate, declared, self.evaluations) if made else None
            problem = _why_not(record, spec)
            if age == 0:
                why = problem and f"requested partition {problem}"
            if not problem:
                return Resolution(partition, candidate, record, age, why, unit)
        return Resolution(partition, None, None, reason=f"{why}; no good partition before it", unit=unit)

    def _newest_first(self, partitions_def: dg.PartitionsDefinition, partition: str, spec: AssetInput) -> Iterator[str]:
        """The requested partition, then (only as far as asked for) the ``look_back`` ones before it."""
        if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):  # walk back: never list a calendar
            if not partitions_def.has_partition_key(partition):
                raise InputDataError(f"{partition!r} is not a partition of {spec.asset}")
            return self._earlier_windows(partitions_def, partition)
        keys = partitions_def.get_partition_keys(dynamic_partitions_store=self.instance)
        if partition not in keys:
            raise InputDataError(f"{partition!r} is not a partition of {spec.asset} (it has {len(keys)} partitions)")
        position = keys.index(partition)
        return iter(reversed(keys[max(0, position - self.look_back) : position + 1]))

    def _earlier_windows(self, partitions_def: dg.TimeWindowPartitionsDefinition, partition: str) -> Iterator[str]:
        yield partition
        window = partitions_def.time_window_for_partition_key(partition)
        for _ in range(self.look_back):
            window = partitions_def.get_prev_partition_window(window.start)
            if window is None:
                return
            yield window.start.strftime(partitions_def.fmt)

    def node(self, key: dg.AssetKey):
        if not self.graph.has(key):
            raise InputDataError(f"{key.to_user_string()} is not an asset of this code location")
        return self.graph.get(key)


class InputServer:
    """Resolves and loads input partitions for one step, through the code location's IO managers.

    Within the step each partition is loaded once, and each run's check evaluations read once:
    the agent is served its inputs, and its proposals are judged on the same partitions before
    they are stored. A later read gets a copy of the partition as it was loaded, whatever an
    earlier reader (the agent) did to its own.
    """

    def __init__(self, context: dg.OpExecutionContext, look_back: int, code_location: str, stack: ExitStack):
        self._context = context
        self._instance = context.instance
        self._code_location = code_location
        self._stack = stack
        self._repository = _repository_of(context)
        graph = self._repository.asset_graph if self._repository else context.job_def.asset_layer.asset_graph
        self._judge = LastKnownGood(self._instance, graph, look_back, RunCheckEvaluations(self._instance))
        self._loader = None
        self._loaded: dict[tuple[dg.AssetKey, str | None], pd.DataFrame] = {}

    def serve(self, spec: AssetInput, partition: str | None) -> ServedInput:
        """The requested partition of an input, or the last known good one, loaded and described."""
        found = self._judge.resolve(spec, partition)
        if found.record is None:  # nothing served: a served partition always has its record
            return ServedInput(spec, found.requested, None, None, usable=False, reason=found.reason, unit=found.unit)
        frame = self._load(spec.key, None if found.served == UNPARTITIONED else found.served)
        return ServedInput(
            spec,
            found.requested,
            found.served,
            frame,
            version=found.record.data_version or dataset_version(frame),
            dataset=dataset_of(spec.key, found.record.metadata, self._code_location),
            age=found.age,
            usable=found.age <= spec.max_staleness,
            reason=found.reason,
            checks=found.record.checks,
            check_status=found.record.verdict if spec.judged else NOT_CHECKED,
            unit=found.unit,
        )

    def load(self, spec: AssetInput, partition: str | None) -> pd.DataFrame:
        """One partition of an input exactly as named (the supervisor reads what the agent was served)."""
        node = self._judge.node(spec.key)
        return self._load(spec.key, partition if node.partitions_def is not None else None)

    # -- internals -------------------------------------------------------------------------

    def _load(self, key: dg.AssetKey, partition: str | None) -> pd.DataFrame:
        """A partition loaded once per step (``_loaded`` keeps it as loaded), copied for every later reader."""
        kept = self._loaded.get((key, partition))
        if kept is not None:
            return kept.copy()
        frame = self._read(key, partition)
        if isinstance(frame, pd.DataFrame):
            self._loaded[(key, partition)] = frame.copy()
        return frame

    def _read(self, key: dg.AssetKey, partition: str | None) -> pd.DataFrame:
        """Through the asset's own IO manager: the code location's loader, or (in process) the step's resource."""
        if self._repository is not None:
            if self._loader is None:
                self._loader = self._stack.enter_context(self._repository.get_asset_value_loader(self._instance))
            return self._loader.load_asset_value(key, partition_key=partition)
        node = self._judge.node(key)
        io_manager = getattr(self._context.resources, node.io_manager_key, None)
        if io_manager is None:
            raise InputDataError(
                f"cannot load {key.to_user_string()} in this in-process run: its IO manager "
                f"'{node.io_manager_key}' is not a resource of the step (run it through the dagster CLI or daemon)"
            )
        return io_manager.load_input(self._input_context(key, partition, node))

    def _input_context(self, key: dg.AssetKey, partition: str | None, node) -> dg.InputContext:
        """The context an IO manager loads with, holding the step's own resources, log and instance.

        Not ``build_input_context``/``build_output_context``: given no built resources, each
        context builds an empty set inside a new ephemeral Dagster instance (in-memory storages,
        migrations stamped: ~0.1-0.2 s apiece, two per load), which was most of an agent step.
        """
        resources = self._context.resources
        upstream = dg.build_output_context(
            asset_key=key, definition_metadata=dict(node.metadata), resources=resources, instance=self._instance
        )
        partitions_def = node.partitions_def
        return dg.InputContext(
            asset_key=key,
            partition_key=partition,
            asset_partitions_def=partitions_def,
            asset_partitions_subset=(
                partitions_def.subset_with_partition_keys([partition])
                if partitions_def is not None and partition is not None
                else None
            ),
            upstream_output=upstream,
            dagster_type=ANY_INPUT,
            resources=resources,
            log_manager=self._context.log,
            instance=self._instance,
        )


def _repository_of(context: dg.OpExecutionContext):
    """The step's code location when it has one (CLI, daemon, webserver runs); None in process."""
    try:
        return context.repository_def
    except dg.DagsterInvariantViolationError:
        return None
    except Exception:  # dagster raises a CheckError when no repository was set on the step
        return None


_CRON_UNITS = (  # (minute, hour, day of month, month, day of week) patterns, * matching anything fixed
    (("#", "#", "*", "*", "1-5"), "business day"),
    (("#", "#", "*", "*", "*"), "day"),
    (("#", "*", "*", "*", "*"), "hour"),
    (("#", "#", "*", "*", "#"), "week"),
    (("#", "#", "#", "*", "*"), "month"),
)


def partition_unit(partitions_def: dg.PartitionsDefinition | None) -> str:
    """What one partition of a time-window definition spans (``business day`` for weekday crons)."""
    cron = getattr(partitions_def, "cron_schedule", None)
    fields = cron.split() if isinstance(cron, str) else []
    for pattern, unit in _CRON_UNITS:
        if len(fields) == 5 and all(f == p or (p == "#" and f.isdigit()) for f, p in zip(fields, pattern, strict=True)):
            return unit
    return "partition"


def _why_not(record: RecordedPartition | None, spec: AssetInput) -> str:
    if record is None:
        return "missing"
    if spec.judged and record.verdict == FAILED_BLOCKING:
        return record.describe_checks()
    return ""
