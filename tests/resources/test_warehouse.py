"""The warehouse on real SQLite and PostgreSQL: exact round trips, atomic partition writes."""

import datetime as dt
import multiprocessing
import os
import signal
import time

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.pandas import column, data_frames, range_indexes

from foureyes.resources.errors import PartitionNotFoundError, SchemaConflictError, UnsupportedDtypeError
from foureyes.resources.warehouse import bulk_load
from foureyes.resources.warehouse.store import PartitionedSqlIOManager, SqlWarehouseResource, versioned_output
from foureyes.resources.warehouse.versions import dataset_version


def _every_dtype() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "i": np.arange(5, dtype="int64"),
            "small": np.arange(5, dtype="int16"),
            "f": [1.5, np.nan, 0.1 + 0.2, -0.0, 1e300],
            "f32": np.array([1.25, 2.5, np.nan, 4.0, 5.0], dtype="float32"),
            "b": [True, False, True, True, False],
            "s": ["a", None, "", 'x,y"z\n\t\\', "\\N"],
            "t": pd.to_datetime(
                [
                    "2026-11-20 10:00:00.123456",
                    None,
                    "2026-01-01 00:00:00",
                    "2026-01-02 00:00:00",
                    "2026-01-03 00:00:00",
                ],
                format="ISO8601",
            ),
            "tz": pd.to_datetime(["2026-11-20 10:00"] * 5).tz_localize("Europe/London"),
            "nullable_int": pd.array([1, None, 3, 4, 2**40], dtype="Int64"),
            "nullable_bool": pd.array([True, None, False, True, None], dtype="boolean"),
            "string": pd.array(["a", None, "c", "d", "e"], dtype="string"),
            "cat": pd.Categorical(["u", "v", "u", "v", "u"]),
            "d": [
                dt.date(2026, 1, 1),
                None,
                dt.date(2026, 1, 3),
                dt.date(2026, 1, 4),
                dt.date(2026, 1, 5),
            ],
        }
    )


def test_round_trip_keeps_values_dtypes_and_version(db_url):
    warehouse = SqlWarehouseResource(url=db_url)
    frame = _every_dtype()
    record = warehouse.write_partition("prices", "2026-11-20", frame)
    stored = warehouse.read_partition("prices", "2026-11-20")
    pd.testing.assert_frame_equal(stored.frame, frame)
    assert stored.record.version == record.version == dataset_version(stored.frame)
    assert stored.record.row_count == 5


def _edge_values() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "n": pd.array([2**62 + 1, None, -(2**62) - 1], dtype="Int64"),
            "t": pd.to_datetime(["1900-03-04 05:06:07.000001", None, "2250-12-31 23:59:59.999999"], format="ISO8601"),
            "tz": pd.to_datetime(["1969-12-31 23:59:59.5", "2026-03-29 01:30", None], format="ISO8601")
            .tz_localize("UTC")
            .tz_convert("America/New_York"),
        }
    )


def test_big_nullable_ints_and_far_times_round_trip_exactly(db_url):
    warehouse = SqlWarehouseResource(url=db_url)
    warehouse.write_partition("edges", "p", _edge_values())
    pd.testing.assert_frame_equal(warehouse.read_partition("edges", "p").frame, _edge_values())


def test_times_read_exactly_from_postgresql_before_14(pg_url, monkeypatch):
    monkeypatch.setattr(bulk_load, "_NUMERIC_EXTRACT_SINCE", (10_000,))  # EXTRACT gave a float
    warehouse = SqlWarehouseResource(url=pg_url)
    warehouse.write_partition("edges", "p", _edge_values())
    pd.testing.assert_frame_equal(warehouse.read_partition("edges", "p").frame, _edge_values())


def test_rows_written_in_chunks_and_batches_keep_their_order(db_url, monkeypatch):
    monkeypatch.setattr(bulk_load, "_CHUNK_ROWS", 100)  # 3 chunks, each ending with a short batch
    warehouse = SqlWarehouseResource(url=db_url)
    narrow = pd.DataFrame({"i": np.arange(250), "s": [f"r{i}" for i in range(250)]})
    wide = pd.DataFrame({f"c{j}": np.arange(23) * j for j in range(120)})  # fewer rows per INSERT
    for name, frame in (("narrow", narrow), ("wide", wide)):
        warehouse.write_partition(name, "p", frame)
        pd.testing.assert_frame_equal(warehouse.read_partition(name, "p").frame, frame)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    frame=data_frames(
        columns=[
            column("n", dtype="int64"),
            column("x", dtype="float64"),
            column("flag", dtype="bool"),
            column(
                "label",
                elements=st.one_of(
                    st.none(),
                    st.text(
                        st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
                        max_size=8,
                    ),
                ),
            ),
        ],
        index=range_indexes(min_size=0, max_size=30),
    )
)
def test_any_frame_round_trips(db_url, frame):
    frame = frame.astype({"label": object})
    warehouse = SqlWarehouseResource(url=db_url)
    record = warehouse.write_partition("fuzz", "p", frame)
    back = warehouse.read_partition("fuzz", "p").frame
    pd.testing.assert_frame_equal(back, frame.reset_index(drop=True), check_index_type=False)
    assert dataset_version(back) == record.version


def test_writing_a_partition_replaces_only_that_partition(db_url):
    warehouse = SqlWarehouseResource(url=db_url)
    warehouse.write_partition("positions", "2026-11-19", pd.DataFrame({"q": [1, 2, 3]}))
    warehouse.write_partition("positions", "2026-11-20", pd.DataFrame({"q": [4, 5]}))
    warehouse.write_partition("positions", "2026-11-20", pd.DataFrame({"q": [6]}))
    assert warehouse.read_partition("positions", "2026-11-19").frame["q"].tolist() == [1, 2, 3]
    assert warehouse.read_partition("positions", "2026-11-20").frame["q"].tolist() == [6]
    assert [r.partition for r in warehouse.partition_records("positions")] == [
        "2026-11-19",
        "2026-11-20",
    ]


def test_reading_a_missing_partition_names_asset_and_partition(db_url):
    warehouse = SqlWarehouseResource(url=db_url)
    with pytest.raises(
        PartitionNotFoundError,
        match=r"asset 'market_prices' has no partition '2026-11-21'.*no partition of it was ever written",
    ):
        warehouse.read_partition("market_prices", "2026-11-21")
    warehouse.write_partition("market_prices", "2026-11-20", pd.DataFrame({"close": [1.0]}))
    with pytest.raises(PartitionNotFoundError, match=r"'2026-11-21'.*written partitions \(1\): 2026-11-20"):
        warehouse.read_partition("market_prices", "2026-11-21")


def test_an_error_inside_the_write_transaction_keeps_the_old_partition(db_url, monkeypatch):
    warehouse = SqlWarehouseResource(url=db_url)
    old = pd.DataFrame({"close": [1.0, 2.0, 3.0]})
    record = warehouse.write_partition("prices", "2026-11-20", old)
    real_insert = bulk_load.insert_partition

    def insert_then_crash(conn, table, partition, frame, columns):
        real_insert(conn, table, partition, frame, columns)  # the new rows are in, uncommitted
        raise RuntimeError("power cut")

    monkeypatch.setattr("foureyes.resources.warehouse.store.insert_partition", insert_then_crash)
    with pytest.raises(RuntimeError, match="power cut"):
        warehouse.write_partition("prices", "2026-11-20", pd.DataFrame({"close": [9.0] * 10}))
    stored = warehouse.read_partition("prices", "2026-11-20")
    pd.testing.assert_frame_equal(stored.frame, old)
    assert stored.record.version == record.version


def _write_forever(url: str, started) -> None:
    warehouse = SqlWarehouseResource(url=url)
    big = pd.DataFrame({"close": np.arange(3_000_000, dtype="float64"), "id": np.arange(3_000_000)})

    real_insert = bulk_load.insert_partition

    def announce(conn, table, partition, frame, columns):
        started.set()
        real_insert(conn, table, partition, frame, columns)

    import foureyes.resources.warehouse.store as module

    module.insert_partition = announce
    warehouse.write_partition("prices", "2026-11-20", big)


def test_a_process_killed_mid_write_leaves_the_old_partition(db_url):
    warehouse = SqlWarehouseResource(url=db_url)
    old = pd.DataFrame({"close": [1.0, 2.0], "id": [1, 2]})
    warehouse.write_partition("prices", "2026-11-20", old)
    started = multiprocessing.get_context("spawn").Event()
    writer = multiprocessing.get_context("spawn").Process(target=_write_forever, args=(db_url, started))
    writer.start()
    assert started.wait(120), "the writer never started inserting"
    time.sleep(0.5)
    os.kill(writer.pid, signal.SIGKILL)
    writer.join()
    pd.testing.assert_frame_equal(warehouse.read_partition("prices", "2026-11-20").frame, old)


def test_new_columns_are_added_and_old_partitions_read_as_written(db_url):
    warehouse = SqlWarehouseResource(url=db_url)
    warehouse.write_partition("prices", "d1", pd.DataFrame({"close": [1.0]}))
    warehouse.write_partition("prices", "d2", pd.DataFrame({"close_px": [2.0], "px_source": ["v2"]}))
    assert list(warehouse.read_partition("prices", "d1").frame.columns) == ["close"]
    assert list(warehouse.read_partition("prices", "d2").frame.columns) == ["close_px", "px_source"]


def test_a_column_whose_kind_changes_is_refused(db_url):
    warehouse = SqlWarehouseResource(url=db_url)
    warehouse.write_partition("prices", "d1", pd.DataFrame({"close": [1.0]}))
    with pytest.raises(SchemaConflictError, match="stores column 'close' as float, but the new partition has text"):
        warehouse.write_partition("prices", "d2", pd.DataFrame({"close": ["1.0"]}))


@pytest.mark.parametrize(
    ("frame", "error", "match"),
    [
        (pd.DataFrame({"partition_key": [1]}), SchemaConflictError, "reserved by the warehouse"),
        (
            pd.DataFrame({"Close": [1], "close": [2]}),
            SchemaConflictError,
            r"\['Close', 'close'\].*collide",
        ),
        (
            pd.DataFrame({"when": pd.to_timedelta([1], unit="s")}),
            UnsupportedDtypeError,
            "column 'when' has dtype timedelta64",
        ),
        (
            pd.DataFrame({"blob": [{"a": 1}]}),
            UnsupportedDtypeError,
            "column 'blob' holds Python objects of type dict",
        ),
        (
            pd.DataFrame({"note": ["ok", "a\x00b"]}),
            UnsupportedDtypeError,
            r"column 'note' has text containing NUL.*1 row",
        ),
    ],
)
def test_frames_the_warehouse_cannot_store_faithfully_are_refused(tmp_path, frame, error, match):
    warehouse = SqlWarehouseResource(url=f"sqlite:///{tmp_path}/w.db")
    with pytest.raises(error, match=match):
        warehouse.write_partition("t", "p", frame)


def test_io_manager_materialisation_carries_version_row_count_and_schema(db_url):
    partitions = dg.StaticPartitionsDefinition(["a", "b"])

    @dg.asset(partitions_def=partitions)
    def quotes(context: dg.AssetExecutionContext):
        return versioned_output(pd.DataFrame({"px": [1.0, 2.0], "sym": [context.partition_key, "z"]}))

    @dg.asset(partitions_def=partitions)
    def doubled(quotes: pd.DataFrame) -> pd.DataFrame:
        return quotes.assign(px=quotes["px"] * 2)

    warehouse = SqlWarehouseResource(url=db_url)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [quotes, doubled],
        partition_key="b",
        instance=instance,
        resources={"io_manager": PartitionedSqlIOManager(warehouse=warehouse)},
    )
    assert result.success
    mats = {m.asset_key.to_user_string(): m for m in result.asset_materializations_for_node("quotes")}
    meta = mats["quotes"].metadata
    stored = warehouse.read_partition("quotes", "b")
    assert meta["dagster/row_count"].value == 2
    assert [c.name for c in meta["dagster/column_schema"].value.columns] == ["px", "sym"]
    assert meta["foureyes/dataset_version"].value == stored.record.version
    record = instance.get_latest_materialization_event(dg.AssetKey("quotes")).asset_materialization
    assert record.tags["dagster/data_version"] == stored.record.version
    assert warehouse.read_partition("doubled", "b").frame["px"].tolist() == [2.0, 4.0]


def test_io_manager_refuses_to_load_a_partition_that_was_never_written(tmp_path):
    partitions = dg.StaticPartitionsDefinition(["a", "b"])

    @dg.asset(partitions_def=partitions)
    def upstream() -> pd.DataFrame:
        return pd.DataFrame({"x": [1]})

    @dg.asset(partitions_def=partitions)
    def downstream(upstream: pd.DataFrame) -> pd.DataFrame:
        return upstream

    io = PartitionedSqlIOManager(warehouse=SqlWarehouseResource(url=f"sqlite:///{tmp_path}/w.db"))
    dg.materialize([upstream], partition_key="a", resources={"io_manager": io})
    result = dg.materialize(
        [downstream, upstream.to_source_asset()],
        partition_key="b",
        resources={"io_manager": io},
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "asset 'upstream' has no partition 'b'" in str(failure.event_specific_data.error)


def _first_write(url: str, table: str, partition: str, go, failures) -> None:
    create = sa.Table.create

    def slow_create(self, bind, checkfirst=False):  # a busy catalog: the window two creators race in
        time.sleep(0.3)
        create(self, bind, checkfirst=checkfirst)

    sa.Table.create = slow_create
    go.wait(60)
    try:
        SqlWarehouseResource(url=url).write_partition(table, partition, pd.DataFrame({"x": [1.0], "p": [partition]}))
    except Exception as exc:  # reported to the test, which names it
        failures.put(f"{table}/{partition}: {type(exc).__name__}: {exc}"[:300])


def test_first_writes_racing_on_a_fresh_store_all_land(pg_url):
    """Parallel steps on a fresh PostgreSQL store: one creates each table, none fails (a new store, new assets)."""
    spawn = multiprocessing.get_context("spawn")
    go, failures = spawn.Event(), spawn.Queue()
    writes = [(table, f"d{i}") for table in ("servicer_file", "vendor_prices", "positions") for i in range(2)]
    writers = [spawn.Process(target=_first_write, args=(pg_url, t, p, go, failures)) for t, p in writes]
    for writer in writers:
        writer.start()
    time.sleep(3)  # every process imported and waiting
    go.set()
    for writer in writers:
        writer.join(120)
    found = []
    while not failures.empty():
        found.append(failures.get())
    assert found == []
    warehouse = SqlWarehouseResource(url=pg_url)
    assert all(warehouse.read_partition(t, p).frame["p"].tolist() == [p] for t, p in writes)
