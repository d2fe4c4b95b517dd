"""The partition quality ledger: which input partitions passed their quality checks.

The input quality checks (asset checks on the market data) record here, per asset partition,
the version they judged, whether every assertion passed, and each assertion's outcome. The
last-known-good lookup is then one query on an index of (asset, passed, partition): the
newest partition at or before the requested one that passed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from resources.control_schema import partition_quality
from resources.engine import as_utc, single_statement_reads, write_transaction


@dataclass(frozen=True)
class Assertion:
    """One quality assertion's outcome (mirrors OpenLineage's dataQualityAssertions items)."""

    assertion: str
    success: bool
    detail: str = ""
    column: str | None = None

    def to_json(self) -> dict:
        return {
            "assertion": self.assertion,
            "success": self.success,
            "detail": self.detail,
            "column": self.column,
        }


@dataclass(frozen=True)
class QualityRecord:
    asset: str
    partition: str
    version: str
    passed: bool
    assertions: tuple[Assertion, ...]
    checked_at: dt.datetime

    def failed(self) -> list[str]:
        return [a.assertion for a in self.assertions if not a.success]


class QualityLedger:
    def __init__(self, engine: sa.Engine):
        self._engine = engine

    def record(
        self, asset: str, partition: str, version: str, assertions: list[Assertion], run_id: str | None = None
    ) -> QualityRecord:
        """Record the verdict on one partition version (replacing the verdict on an older version)."""
        now = dt.datetime.now(dt.UTC)
        passed = all(a.success for a in assertions)
        with write_transaction(self._engine) as conn:
            conn.execute(
                sa.delete(partition_quality).where(
                    partition_quality.c.asset == asset, partition_quality.c.partition_key == partition
                )
            )
            conn.execute(
                partition_quality.insert().values(
                    asset=asset,
                    partition_key=partition,
                    version=version,
                    passed=passed,
                    assertions=[a.to_json() for a in assertions],
                    run_id=run_id,
                    checked_at=now,
                )
            )
        return QualityRecord(asset, partition, version, passed, tuple(assertions), now)

    def verdict(self, asset: str, partition: str) -> QualityRecord | None:
        with single_statement_reads(self._engine).connect() as conn:
            row = conn.execute(
                sa.select(partition_quality).where(
                    partition_quality.c.asset == asset, partition_quality.c.partition_key == partition
                )
            ).first()
        return _from_row(row) if row else None

    def last_good(self, asset: str, at_or_before: str, *, before: bool = False, limit: int = 1) -> list[QualityRecord]:
        """The newest passed partitions at (or strictly before) a partition key: one indexed query.

        A prepared text statement: on this hot path SQLAlchemy's statement building costs more
        than the query itself.
        """
        with single_statement_reads(self._engine).connect() as conn:
            rows = conn.execute(
                _LAST_GOOD_BEFORE if before else _LAST_GOOD_AT,
                {"asset": asset, "partition": at_or_before, "n": limit},
            ).all()
        return [_from_row(r) for r in rows]


_LAST_GOOD = (
    "SELECT asset, partition_key, version, passed, assertions, checked_at FROM partition_quality "
    "WHERE asset = :asset AND passed = :yes AND partition_key {op} :partition "
    "ORDER BY partition_key DESC LIMIT :n"
)
_COLUMNS = {"passed": sa.Boolean(), "assertions": sa.JSON(), "checked_at": sa.DateTime(timezone=True)}
_LAST_GOOD_BEFORE = sa.text(_LAST_GOOD.format(op="<")).bindparams(yes=True).columns(**_COLUMNS)
_LAST_GOOD_AT = sa.text(_LAST_GOOD.format(op="<=")).bindparams(yes=True).columns(**_COLUMNS)


def _from_row(row: sa.Row) -> QualityRecord:
    return QualityRecord(
        asset=row.asset,
        partition=row.partition_key,
        version=row.version,
        passed=row.passed,
        assertions=tuple(Assertion(**a) for a in row.assertions),
        checked_at=as_utc(row.checked_at),
    )
