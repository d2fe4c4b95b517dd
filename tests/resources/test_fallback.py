"""The last-known-good resolver on real SQLite and PostgreSQL."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from resources.asset_inputs import AssetInput
from resources.control_plane import ControlPlaneResource
from resources.engine import engine_for
from resources.fallback import FallbackResource, business_days_between
from resources.partition_quality import Assertion
from resources.warehouse import SqlWarehouseResource

PRICES = AssetInput("prices", quality_checked=True, max_staleness=2)
GOOD = [Assertion("no_missing_prices", True)]
BAD = [Assertion("no_missing_prices", False, "3 missing"), Assertion("freshness", True)]


@pytest.fixture
def fallback(db_url) -> FallbackResource:
    return FallbackResource(warehouse=SqlWarehouseResource(url=db_url), control_plane=ControlPlaneResource(url=db_url))


def _write(fallback: FallbackResource, day: str, checked: list[Assertion] | None, value: float = 1.0) -> str:
    record = fallback.warehouse.write_partition("prices", day, pd.DataFrame({"close": [value]}))
    if checked is not None:
        fallback.control_plane.quality.record("prices", day, record.version, checked)
    return record.version


def test_a_good_requested_partition_is_served_fresh(fallback):
    _write(fallback, "2026-11-20", GOOD)
    served = fallback.serve(PRICES, "2026-11-20")
    assert (served.served, served.stale, served.usable, served.age) == ("2026-11-20", False, True, 0)
    assert served.assertions[0].assertion == "no_missing_prices"


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("failed", "requested partition failed no_missing_prices"),
        ("missing", "requested partition missing"),
        ("unchecked", "requested partition not quality-checked"),
        ("rewritten", "requested partition rewritten since its quality check"),
    ],
)
def test_anything_but_a_good_partition_falls_back_to_the_last_good_one(fallback, setup, reason):
    _write(fallback, "2026-11-17", GOOD, value=17.0)
    _write(fallback, "2026-11-18", BAD)  # failed: never served
    if setup == "failed":
        _write(fallback, "2026-11-19", BAD)
    elif setup == "unchecked":
        _write(fallback, "2026-11-19", None)
    elif setup == "rewritten":
        _write(fallback, "2026-11-19", GOOD)
        fallback.warehouse.write_partition("prices", "2026-11-19", pd.DataFrame({"close": [0.0]}))
    served = fallback.serve(PRICES, "2026-11-19")
    assert (served.requested, served.served, served.age, served.stale, served.usable) == (
        "2026-11-19",
        "2026-11-17",
        2,
        True,
        True,
    )
    assert served.reason == reason
    assert served.frame["close"].tolist() == [17.0]
    assert served.describe() == f"prices: served 2026-11-17 for 2026-11-19 (2 business days old; {reason})"


def test_a_last_good_partition_rewritten_since_its_check_is_skipped(fallback):
    _write(fallback, "2026-11-16", GOOD, value=16.0)
    _write(fallback, "2026-11-17", GOOD)
    fallback.warehouse.write_partition("prices", "2026-11-17", pd.DataFrame({"close": [99.0]}))  # unchecked now
    served = fallback.serve(PRICES, "2026-11-18")
    assert served.served == "2026-11-16" and served.frame["close"].tolist() == [16.0]


def test_beyond_the_maximum_staleness_the_input_is_unusable_but_still_served(fallback):
    _write(fallback, "2026-11-13", GOOD)  # a Friday
    served = fallback.serve(PRICES, "2026-11-18")  # Wednesday: 3 business days later, limit 2
    assert (served.served, served.age, served.usable) == ("2026-11-13", 3, False)
    assert "beyond the 2-day limit" in served.describe()


def test_nothing_servable_is_said_plainly(fallback):
    served = fallback.serve(PRICES, "2026-11-18")
    assert (served.served, served.frame, served.usable) == (None, None, False)
    assert served.describe() == (
        "prices: nothing servable for 2026-11-18 (requested partition missing; no good partition before it)"
    )


def test_an_unchecked_input_serves_the_latest_written_partition(fallback):
    plain = AssetInput("prices")
    _write(fallback, "2026-11-17", None, value=17.0)
    assert fallback.serve(plain, "2026-11-17").stale is False
    later = fallback.serve(plain, "2026-11-19")
    assert (later.served, later.reason) == ("2026-11-17", "requested partition missing")


def test_business_days_skip_weekends():
    assert business_days_between("2026-11-20", "2026-11-23") == 1  # Friday to Monday
    assert business_days_between("2026-11-16", "2026-11-20") == 4


def test_the_last_good_lookup_is_one_indexed_query(fallback):
    for day in pd.bdate_range("2026-01-01", "2026-11-20").strftime("%Y-%m-%d"):
        fallback.control_plane.quality.record("prices", day, "v", GOOD if day < "2026-06-01" else BAD)
    quality = fallback.control_plane.quality
    quality.last_good("prices", "2026-11-20")  # connects (a first connection runs its own setup queries)
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        if not statement.startswith(("BEGIN", "COMMIT", "ROLLBACK")):  # transaction control is not a query
            statements.append(statement)

    sa.event.listen(sa.engine.Engine, "before_cursor_execute", count)
    try:
        found = quality.last_good("prices", "2026-11-20")
    finally:
        sa.event.remove(sa.engine.Engine, "before_cursor_execute", count)
    assert [r.partition for r in found] == ["2026-05-29"]
    assert len(statements) == 1, statements
    engine = engine_for(fallback.control_plane.url)
    if engine.dialect.name == "sqlite":  # and the database answers it from the index, not a scan of the ledger
        with engine.connect() as conn:
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statements[0]}", ("prices", 1, "2026-11-20", 1)).all()
        assert any("USING INDEX" in str(step) or "USING COVERING INDEX" in str(step) for step in plan), plan
