"""The fallback resolver: the requested input partition, or the last known good one, flagged.

For each input of an agent it serves the requested partition if it exists and (for
quality-checked inputs) passed its input quality checks at exactly its current version.
Otherwise it serves the newest earlier partition that did, and says so: which partition was
requested, which was served, how many business days older it is, and why. Past the input's
maximum staleness the input is unusable, but still served for a baseline to report from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg
import numpy as np
import pandas as pd

from resources.asset_inputs import AssetInput
from resources.control_plane import ControlPlaneResource
from resources.partition_quality import Assertion, QualityRecord
from resources.warehouse import UNPARTITIONED, PartitionRecord, SqlWarehouseResource

_CANDIDATES = 20


@dataclass(frozen=True)
class ServedInput:
    """What an input resolved to."""

    input: AssetInput
    requested: str
    served: str | None
    frame: pd.DataFrame | None
    record: PartitionRecord | None
    age: int = 0
    usable: bool = True
    reason: str = ""
    assertions: tuple[Assertion, ...] = field(default_factory=tuple)

    @property
    def stale(self) -> bool:
        return self.served != self.requested

    @property
    def version(self) -> str | None:
        return self.record.version if self.record else None

    def describe(self) -> str:
        if not self.stale:
            return f"{self.input.name}: {self.requested} (fresh)"
        if self.served is None:
            return f"{self.input.name}: nothing servable for {self.requested} ({self.reason})"
        unusable = "" if self.usable else f", beyond the {self.input.max_staleness}-day limit"
        return (
            f"{self.input.name}: served {self.served} for {self.requested} "
            f"({self.age} business day{'s' if self.age != 1 else ''} old{unusable}; {self.reason})"
        )

    def to_json(self) -> dict:
        return {
            "input": self.input.asset,
            "requested": self.requested,
            "served": self.served,
            "version": self.version,
            "age_business_days": self.age,
            "stale": self.stale,
            "usable": self.usable,
            "reason": self.reason,
        }


def business_days_between(older: str, newer: str) -> int:
    return int(np.busday_count(np.datetime64(older[:10]), np.datetime64(newer[:10])))


class FallbackResource(dg.ConfigurableResource):
    """Serves each agent input from the requested partition or the last known good one.

    Examples:
        .. code-block:: python

            warehouse = SqlWarehouseResource(url=...)
            control = ControlPlaneResource(url=...)
            defs = dg.Definitions(
                assets=[...],
                resources={"fallback": FallbackResource(warehouse=warehouse, control_plane=control)},
            )
    """

    warehouse: SqlWarehouseResource
    control_plane: ControlPlaneResource

    def serve(self, spec: AssetInput, partition: str | None) -> ServedInput:
        if not spec.partitioned or partition is None:
            stored = self.warehouse.read_partition(spec.key, None)
            return ServedInput(spec, UNPARTITIONED, UNPARTITIONED, stored.frame, stored.record)
        record = self.warehouse.partition_record(spec.key, partition)
        if not spec.quality_checked:
            if record is not None:
                return self._read(spec, partition)
            return self._older(spec, partition, "requested partition missing", self._written_before(spec, partition))
        quality = self.control_plane.quality.verdict(spec.asset, partition)
        why = _why_not(record, quality)
        if not why:
            return self._read(spec, partition, assertions=quality.assertions)
        return self._older(spec, partition, why, self._good_before(spec, partition))

    def last_known_good(self, spec: AssetInput, partition: str) -> QualityRecord | None:
        """The newest partition before ``partition`` that passed its checks at its current version."""
        return next(iter(self._good_before(spec, partition)), None)

    # -- internals -------------------------------------------------------------------------

    def _good_before(self, spec: AssetInput, partition: str) -> list[QualityRecord]:
        """The newest passed partition whose checked version is still the stored one (usually the first)."""
        ledger = self.control_plane.quality
        for limit in (1, _CANDIDATES):
            for candidate in ledger.last_good(spec.asset, partition, before=True, limit=limit):
                record = self.warehouse.partition_record(spec.key, candidate.partition)
                if record is not None and record.version == candidate.version:
                    return [candidate]
        return []

    def _written_before(self, spec: AssetInput, partition: str) -> list[QualityRecord]:
        earlier = [r for r in self.warehouse.partition_records(spec.key) if r.partition < partition]
        if not earlier:
            return []
        last = earlier[-1]
        return [QualityRecord(spec.asset, last.partition, last.version, True, (), last.written_at)]

    def _older(self, spec: AssetInput, partition: str, why: str, candidates: list[QualityRecord]) -> ServedInput:
        if not candidates:
            return ServedInput(
                spec, partition, None, None, None, usable=False, reason=f"{why}; no good partition before it"
            )
        good = candidates[0]
        stored = self.warehouse.read_partition(spec.key, good.partition)
        age = business_days_between(good.partition, partition)
        return ServedInput(
            spec,
            partition,
            good.partition,
            stored.frame,
            stored.record,
            age=age,
            usable=age <= spec.max_staleness,
            reason=why,
            assertions=good.assertions,
        )

    def _read(self, spec: AssetInput, partition: str, assertions=()) -> ServedInput:
        stored = self.warehouse.read_partition(spec.key, partition)
        return ServedInput(spec, partition, partition, stored.frame, stored.record, assertions=tuple(assertions))


def _why_not(record: PartitionRecord | None, quality: QualityRecord | None) -> str:
    if record is None:
        return "requested partition missing"
    if quality is None:
        return "requested partition not quality-checked"
    if quality.version != record.version:
        return "requested partition rewritten since its quality check"
    if not quality.passed:
        return "requested partition failed " + ", ".join(quality.failed())
    return ""
