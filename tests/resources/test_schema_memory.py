"""The schema a process remembers is a hint: a store recreated under a running process (a
code server, the daemon) must still take writes and give clear answers, never fail for good."""

import pandas as pd
import pytest
import sqlalchemy as sa

from foureyes.resources.engine import engine_for
from foureyes.resources.errors import PartitionNotFoundError
from foureyes.resources.targets.base import Action, SqlBooksTarget, booked_actions
from foureyes.resources.warehouse.schema_memory import SchemaMemory
from foureyes.resources.warehouse.store import CATALOG_TABLE, SqlWarehouseResource

FRAME = pd.DataFrame({"instrument_id": ["A", "B"], "price": [1.5, 2.5]})


def _drop(url: str, *tables: str) -> None:
    """What an operator does when they recreate the store: the tables go, the process stays."""
    with engine_for(url).begin() as conn:
        for table in tables:
            conn.exec_driver_sql(f'DROP TABLE "{table}"')


def test_a_warehouse_recreated_under_the_process_still_reads_clearly_and_writes(db_url):
    warehouse = SqlWarehouseResource(url=db_url)
    warehouse.write_partition("prices", "2026-11-19", FRAME)
    warehouse.read_partition("prices", "2026-11-19")  # the process now remembers both tables

    _drop(db_url, "prices", CATALOG_TABLE)

    with pytest.raises(PartitionNotFoundError, match="prices"):
        warehouse.read_partition("prices", "2026-11-19")
    assert warehouse.partition_record("prices", "2026-11-19") is None
    warehouse.write_partition("prices", "2026-11-20", FRAME)
    pd.testing.assert_frame_equal(warehouse.read_partition("prices", "2026-11-20").frame, FRAME)
    assert [r.partition for r in warehouse.partition_records("prices")] == ["2026-11-20"]


def test_books_dropped_under_the_process_are_recreated_on_the_next_delivery(db_url):
    books = SqlBooksTarget(url=db_url, table="orders", actions=["buy"])
    action = Action("k1", "rebalancing", "2026-11-20", "p1", "buy", {"qty": 10}, "drift")
    assert books.execute(action).status == "executed"
    assert books.execute(action).status == "duplicate"

    _drop(db_url, "orders")

    assert books.execute(action).status == "executed"
    assert [row["idempotency_key"] for row in booked_actions(db_url, "orders")] == ["k1"]


def test_a_failure_with_nothing_remembered_is_not_retried():
    memory, calls = SchemaMemory(), []

    def failing() -> None:
        calls.append(1)
        raise sa.exc.OperationalError("INSERT", {}, Exception("no such table: t"))

    with pytest.raises(sa.exc.OperationalError):
        memory.trusting("store", failing)
    assert len(calls) == 1

    memory.remember("store", "t", {"x": "float"})
    with pytest.raises(sa.exc.OperationalError):
        memory.trusting("store", failing)
    assert len(calls) == 3  # forgotten, then retried once, as a fresh process would
    assert memory.columns("store", "t") is None
