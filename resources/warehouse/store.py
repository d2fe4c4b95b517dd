"""The warehouse: one SQL table per asset, one transaction per partition write.

``SqlWarehouseResource`` is the API the agent machinery uses to read partitions with their
versions; ``PartitionedSqlIOManager`` lets ordinary Dagster assets store pandas frames in it.
Each table has a ``partition_key`` column and a ``_row`` column (the row's position, so a read
returns rows in written order). A catalog table, ``foureyes_partitions``, records each written
partition's version (content hash), row count and column dtypes, in the same transaction as
the rows: a crash leaves either the old partition and its catalog row, or the new ones.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import warnings
from dataclasses import dataclass

import dagster as dg
import pandas as pd
import sqlalchemy as sa
from pydantic import Field

from foureyes.resources.engine import (
    as_utc,
    engine_for,
    is_postgres,
    reaching,
    single_statement_reads,
    snapshot_reads,
    write_transaction,
)
from foureyes.resources.errors import ConfigurationError, PartitionNotFoundError, SchemaConflictError
from foureyes.resources.lineage.names import NAME_METADATA_KEY, NAMESPACE_METADATA_KEY, UNPARTITIONED, DatasetName
from foureyes.resources.warehouse.bulk_load import PARTITION_COLUMN, ROW_COLUMN, insert_partition, select_partition
from foureyes.resources.warehouse.columns import SQL_TYPES, StoredColumn, kind_of_sql_type, stored_columns
from foureyes.resources.warehouse.schema_memory import SchemaMemory
from foureyes.resources.warehouse.versions import dataset_version

CATALOG_TABLE = "foureyes_partitions"
VERSION_METADATA_KEY = "foureyes/dataset_version"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True)
class PartitionRecord:
    """What the catalog knows about one written partition."""

    table: str
    partition: str
    version: str
    row_count: int
    columns: tuple[StoredColumn, ...]
    written_at: dt.datetime
    run_id: str | None


@dataclass(frozen=True)
class StoredPartition:
    frame: pd.DataFrame
    record: PartitionRecord


def table_name(asset_key: dg.AssetKey | str) -> str:
    """The table an asset is stored in: its key's path joined by ``__``."""
    key = dg.AssetKey.from_coercible(asset_key)
    name = "__".join(key.path)
    if not _IDENTIFIER.match(name):
        raise ConfigurationError(
            f"asset key {key.to_user_string()!r} gives table name {name!r}, which is not a plain "
            "SQL identifier (letters, digits, underscores, at most 63 characters)"
        )
    return name


class SqlWarehouseResource(dg.ConfigurableResource):
    """A SQLAlchemy database holding partitioned asset tables, with versioned partitions.

    Examples:
        >>> import dagster as dg
        >>> import pandas as pd
        >>> import foureyes
        >>> warehouse = foureyes.SqlWarehouseResource(url="sqlite:///warehouse.db")
        >>> record = warehouse.write_partition("prices", "2024-01-02", pd.DataFrame({"close": [101.5, 99.0]}))
        >>> record.table, record.partition, record.row_count
        ('prices', '2024-01-02', 2)
        >>> warehouse.read_partition("prices", "2024-01-02").frame["close"].tolist()
        [101.5, 99.0]
        >>> io_manager = foureyes.PartitionedSqlIOManager(warehouse=warehouse)
        >>> sorted(dg.Definitions(resources={"warehouse": warehouse, "io_manager": io_manager}).resources)
        ['io_manager', 'warehouse']
    """

    url: str = Field(description="SQLAlchemy URL, e.g. sqlite:////abs/warehouse.db or postgresql+psycopg://...")
    db_schema: str | None = Field(
        default=None,
        description="Database schema for the asset tables (PostgreSQL); None for the default.",
    )

    def reach(self) -> None:
        """Connect now: a warehouse that is down fails here, in one line naming it."""
        with reaching(self.engine, "warehouse"), self.engine.connect():
            pass

    @property
    def engine(self) -> sa.Engine:
        return engine_for(self.url)

    def write_partition(
        self,
        asset_key: dg.AssetKey | str,
        partition: str | None,
        frame: pd.DataFrame,
        *,
        version: str | None = None,
        run_id: str | None = None,
    ) -> PartitionRecord:
        """Replace one partition with ``frame`` in a single transaction and record its version."""
        table = table_name(asset_key)
        partition = partition or UNPARTITIONED
        frame = frame.reset_index(drop=True)
        check_column_names(table, frame)
        columns = stored_columns(frame)
        record = PartitionRecord(
            table=table,
            partition=partition,
            version=version or dataset_version(frame),
            row_count=len(frame),
            columns=tuple(columns),
            written_at=dt.datetime.now(dt.UTC),
            run_id=run_id,
        )
        _SCHEMA.trusting(self._store, lambda: self._write(record, frame))
        return record

    def _write(self, record: PartitionRecord, frame: pd.DataFrame) -> None:
        columns = list(record.columns)
        with write_transaction(self.engine) as conn:
            self._ensure_catalog(conn)
            if is_postgres(self.engine):
                conn.execute(
                    sa.select(
                        sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(f"{record.table}/{record.partition}", 0))
                    )
                )
            sql_table = self._ensure_table(conn, record.table, columns)
            conn.execute(sa.delete(sql_table).where(sql_table.c[PARTITION_COLUMN] == record.partition))
            insert_partition(conn, sql_table, record.partition, frame, columns)
            self._record(conn, record)
        # committed: the catalog and the table exist with these columns
        _SCHEMA.remember(self._store, CATALOG_TABLE)
        _SCHEMA.remember(self._store, record.table, {c.name: c.kind for c in columns})

    def read_partition(self, asset_key: dg.AssetKey | str, partition: str | None) -> StoredPartition:
        """Return exactly the written partition, with its dtypes and catalog record.

        Raises:
            PartitionNotFoundError: the partition was never written.
        """
        table = table_name(asset_key)
        partition = partition or UNPARTITIONED

        def read() -> StoredPartition:
            with snapshot_reads(self.engine).connect() as conn:  # the catalog row and the rows agree
                record = self._lookup(conn, table, partition)
                if record is None:
                    raise self._not_found(conn, asset_key, partition)
                frame = select_partition(conn, self._table(table, record.columns), partition, list(record.columns))
            return StoredPartition(frame=frame, record=record)

        return _SCHEMA.trusting(self._store, read)

    def partition_record(self, asset_key: dg.AssetKey | str, partition: str | None) -> PartitionRecord | None:
        def lookup() -> PartitionRecord | None:
            with single_statement_reads(self.engine).connect() as conn:
                return self._lookup(conn, table_name(asset_key), partition or UNPARTITIONED)

        return _SCHEMA.trusting(self._store, lookup)

    def require_record(self, asset_key: dg.AssetKey | str, partition: str | None) -> PartitionRecord:
        """The catalog record (version, shape) of a written partition, without reading its rows.

        Raises:
            PartitionNotFoundError: the partition was never written.
        """
        partition = partition or UNPARTITIONED

        def lookup() -> PartitionRecord:
            with single_statement_reads(self.engine).connect() as conn:
                record = self._lookup(conn, table_name(asset_key), partition)
                if record is None:
                    raise self._not_found(conn, asset_key, partition)
            return record

        return _SCHEMA.trusting(self._store, lookup)

    def _not_found(self, conn: sa.Connection, asset_key: dg.AssetKey | str, partition: str) -> PartitionNotFoundError:
        return PartitionNotFoundError(
            dg.AssetKey.from_coercible(asset_key).to_user_string(),
            partition,
            [r.partition for r in self._records(conn, table_name(asset_key))],
            self.dataset_name(asset_key).namespace,
        )

    def partition_records(self, asset_key: dg.AssetKey | str) -> list[PartitionRecord]:
        """Every written partition of an asset, in partition-key order."""

        def records() -> list[PartitionRecord]:
            with single_statement_reads(self.engine).connect() as conn:
                return self._records(conn, table_name(asset_key))

        return _SCHEMA.trusting(self._store, records)

    def dataset_name(self, asset_key: dg.AssetKey | str) -> DatasetName:
        """The asset's table named per the OpenLineage naming spec."""
        url = self.engine.url
        table = table_name(asset_key)
        if url.get_backend_name() == "sqlite":
            return DatasetName(namespace=f"sqlite://{url.database}", name=table)
        if url.get_backend_name() == "postgresql":
            schema = self.db_schema or "public"
            return DatasetName(
                namespace=f"postgres://{url.host or 'localhost'}:{url.port or 5432}",
                name=f"{url.database}.{schema}.{table}",
            )
        return DatasetName(namespace=f"{url.get_backend_name()}://{url.host or ''}", name=table)

    # -- internals -------------------------------------------------------------------------

    def _catalog(self) -> sa.Table:
        return _catalog_table(self.db_schema)

    @property
    def _store(self) -> str:
        """This warehouse's key in the process's schema memory."""
        return f"{self.engine.url.render_as_string()}#{self.db_schema or ''}"

    def _ensure_catalog(self, conn: sa.Connection) -> None:
        if _SCHEMA.columns(self._store, CATALOG_TABLE) is not None:
            return
        self._one_creator(conn, CATALOG_TABLE)
        if self.db_schema and is_postgres(self.engine):
            conn.execute(sa.schema.CreateSchema(self.db_schema, if_not_exists=True))
        self._catalog().create(conn, checkfirst=True)

    def _one_creator(self, conn: sa.Connection, table: str) -> None:
        """On PostgreSQL, one transaction at a time creates or widens ``table``, until it commits.

        Two first writes racing (parallel steps of a fresh store, partitions of a new asset)
        would otherwise both find no table and both CREATE it: the second fails on the
        catalog's unique type name. SQLite serialises writers already.
        """
        if is_postgres(self.engine):
            key = f"foureyes-ddl:{self.db_schema or ''}.{table}"
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtextextended(key, 0))))

    def _table(self, name: str, columns: tuple[StoredColumn, ...] | list[StoredColumn]) -> sa.Table:
        return _asset_table(self.db_schema, name, tuple(columns))

    def _ensure_table(self, conn: sa.Connection, name: str, columns: list[StoredColumn]) -> sa.Table:
        """Create the table, or add the frame's new columns; refuse a column whose kind changed.

        Columns known to exist are remembered per process (``SchemaMemory``), so a write of a
        known shape skips the two catalog queries.
        """
        known = _SCHEMA.columns(self._store, name) or {}
        if all(known.get(c.name) == c.kind for c in columns):
            return self._table(name, columns)
        return self._reconcile_table(conn, name, columns)

    def _reconcile_table(self, conn: sa.Connection, name: str, columns: list[StoredColumn]) -> sa.Table:
        self._one_creator(conn, name)
        inspector = sa.inspect(conn)
        if not inspector.has_table(name, schema=self.db_schema):
            table = self._table(name, columns)
            table.create(conn)
            return table
        existing = {c["name"]: c["type"] for c in inspector.get_columns(name, schema=self.db_schema)}
        for column in columns:
            if column.name not in existing:
                preparer = conn.dialect.identifier_preparer
                conn.exec_driver_sql(
                    f"ALTER TABLE {preparer.format_table(self._table(name, []))} "
                    f"ADD COLUMN {preparer.quote(column.name)} "
                    f"{SQL_TYPES[column.kind].compile(dialect=conn.dialect)}"
                )
            elif kind_of_sql_type(existing[column.name]) != column.kind:
                raise SchemaConflictError(
                    f"table '{name}' stores column '{column.name}' as "
                    f"{kind_of_sql_type(existing[column.name])}, but the new partition has "
                    f"{column.kind} values (dtype {column.dtype}); rename the column or migrate the table"
                )
        return self._table(name, columns)

    def _record(self, conn: sa.Connection, record: PartitionRecord) -> None:
        catalog = self._catalog()
        conn.execute(
            sa.delete(catalog).where(catalog.c.table_name == record.table, catalog.c.partition_key == record.partition)
        )
        conn.execute(
            catalog.insert().values(
                table_name=record.table,
                partition_key=record.partition,
                version=record.version,
                row_count=record.row_count,
                columns=json.dumps([c.to_json() for c in record.columns]),
                written_at=record.written_at,
                run_id=record.run_id,
            )
        )

    def _has_catalog(self, conn: sa.Connection) -> bool:
        """Once seen, the catalog is remembered instead of asked for on each read."""
        if _SCHEMA.columns(self._store, CATALOG_TABLE) is not None:
            return True
        if not sa.inspect(conn).has_table(CATALOG_TABLE, schema=self.db_schema):
            return False
        _SCHEMA.remember(self._store, CATALOG_TABLE)
        return True

    def _lookup(self, conn: sa.Connection, table: str, partition: str) -> PartitionRecord | None:
        if not self._has_catalog(conn):
            return None
        row = conn.execute(_catalog_lookup(self.db_schema), {"t": table, "p": partition}).first()
        return _to_record(row) if row else None

    def _records(self, conn: sa.Connection, table: str) -> list[PartitionRecord]:
        catalog = self._catalog()
        if not self._has_catalog(conn):
            return []
        rows = conn.execute(
            sa.select(catalog).where(catalog.c.table_name == table).order_by(catalog.c.partition_key)
        ).all()
        return [_to_record(r) for r in rows]


_SCHEMA = SchemaMemory()


@functools.cache
def _asset_table(schema: str | None, name: str, columns: tuple[StoredColumn, ...]) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(schema=schema),
        sa.Column(PARTITION_COLUMN, sa.Text, nullable=False),
        sa.Column(ROW_COLUMN, sa.BigInteger, nullable=False),
        *(sa.Column(c.name, SQL_TYPES[c.kind]) for c in columns),
        sa.Index(f"ix_{name}_partition", PARTITION_COLUMN, ROW_COLUMN),
    )


@functools.cache
def _catalog_table(schema: str | None) -> sa.Table:
    return sa.Table(
        CATALOG_TABLE,
        sa.MetaData(schema=schema),
        sa.Column("table_name", sa.Text, primary_key=True),
        sa.Column("partition_key", sa.Text, primary_key=True),
        sa.Column("version", sa.Text, nullable=False),
        sa.Column("row_count", sa.BigInteger, nullable=False),
        sa.Column("columns", sa.Text, nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.Text),
    )


@functools.cache
def _catalog_lookup(schema: str | None) -> sa.TextClause:
    """The one-row catalog lookup as a prepared text statement (the fallback resolver's hot path)."""
    qualified = f'"{schema}".{CATALOG_TABLE}' if schema else CATALOG_TABLE
    return sa.text(
        f"SELECT table_name, partition_key, version, row_count, columns, written_at, run_id FROM {qualified} "
        "WHERE table_name = :t AND partition_key = :p"
    ).columns(written_at=sa.DateTime(timezone=True))


def _to_record(row: sa.Row) -> PartitionRecord:
    return PartitionRecord(
        table=row.table_name,
        partition=row.partition_key,
        version=row.version,
        row_count=row.row_count,
        columns=tuple(StoredColumn.from_json(c) for c in json.loads(row.columns)),
        written_at=as_utc(row.written_at),
        run_id=row.run_id,
    )


def check_column_names(table: str, frame: pd.DataFrame) -> None:
    """Refuse column names the warehouse cannot store: its own, or two that differ only by case."""
    clash = {PARTITION_COLUMN, ROW_COLUMN} & {str(c) for c in frame.columns}
    if clash:
        raise SchemaConflictError(
            f"cannot store a frame with column(s) {sorted(clash)} in table '{table}': "
            f"'{PARTITION_COLUMN}' and '{ROW_COLUMN}' are reserved by the warehouse"
        )
    folded = pd.Index([str(c).lower() for c in frame.columns])
    if folded.duplicated().any():
        dupes = sorted({str(c) for c, d in zip(frame.columns, folded.duplicated(keep=False), strict=True) if d})
        raise SchemaConflictError(
            f"cannot store a frame with column names {dupes} in table '{table}': SQL column "
            "names are compared without case, so they would collide"
        )


def column_schema(frame: pd.DataFrame) -> dg.TableSchema:
    """The Dagster ``dagster/column_schema`` of a frame: names and pandas dtypes."""
    return dg.TableSchema(columns=[dg.TableColumn(name=str(n), type=str(t)) for n, t in frame.dtypes.items()])


def table_metadata(frame: pd.DataFrame) -> dict[str, object]:
    """Row count and column schema, as Dagster's standard metadata keys."""
    return {"dagster/row_count": len(frame), "dagster/column_schema": column_schema(frame)}


def versioned_output(frame: pd.DataFrame, version: str | None = None, **metadata: object) -> dg.Output:
    """Wrap a frame so Dagster's data version is its content hash (the one the warehouse records).

    Then a partition rewritten with the same content keeps its version, and the trace calls a
    read superseded only when what it read really changed. The output also carries
    ``dagster/row_count`` and ``dagster/column_schema``.

    Examples:
        >>> import dagster as dg
        >>> import pandas as pd
        >>> import foureyes
        >>> @dg.asset
        ... def prices() -> dg.Output:
        ...     return foureyes.versioned_output(pd.DataFrame({"close": [101.5]}), source="vendor")
        >>> foureyes.versioned_output(pd.DataFrame({"close": [101.5]})).data_version.value[:12]
        '8b7a38adb77f'

    Dagster takes the data version from the ``Output``, before any IO manager runs, so the
    hash is computed here once and handed to the IO manager through the output metadata.
    """
    version = version or dataset_version(frame)
    with warnings.catch_warnings():  # Output(data_version=...) is marked beta in Dagster 1.13
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.Output(
            frame,
            data_version=dg.DataVersion(version),
            metadata={VERSION_METADATA_KEY: version, **table_metadata(frame), **metadata},
        )


class PartitionedSqlIOManager(dg.ConfigurableIOManager):
    """Stores each asset partition as rows of the asset's table in the warehouse.

    Writing a partition replaces that partition only, in one transaction. Reading returns
    exactly that partition with its dtypes, and a partition that was never written is an
    error naming the asset and partition, never an empty frame.

    Examples:
        >>> import dagster as dg
        >>> import pandas as pd
        >>> import foureyes
        >>> @dg.asset
        ... def prices() -> pd.DataFrame:
        ...     return pd.DataFrame({"close": [101.5]})
        >>> warehouse = foureyes.SqlWarehouseResource(url="sqlite:///warehouse.db")
        >>> io_manager = foureyes.PartitionedSqlIOManager(warehouse=warehouse)
        >>> dg.materialize([prices], resources={"io_manager": io_manager}).success
        True
        >>> warehouse.read_partition("prices", None).frame["close"].tolist()
        [101.5]
    """

    warehouse: SqlWarehouseResource

    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame | None) -> None:
        if obj is None:
            return
        if not isinstance(obj, pd.DataFrame):
            raise TypeError(
                f"PartitionedSqlIOManager stores pandas DataFrames; asset "
                f"{context.asset_key.to_user_string()} returned {type(obj).__name__}"
            )
        version = context.output_metadata.get(VERSION_METADATA_KEY)
        record = self.warehouse.write_partition(
            context.asset_key,
            _partition_of(context),
            obj,
            version=getattr(version, "value", version),
            run_id=context.run_id,
        )
        dataset = self.warehouse.dataset_name(context.asset_key)
        extra: dict[str, object] = {
            "dagster/storage_kind": sa.engine.make_url(self.warehouse.url).get_backend_name(),
            "dagster/table_name": record.table,
            NAMESPACE_METADATA_KEY: dataset.namespace,
            NAME_METADATA_KEY: dataset.name,
        }
        if not version:  # a plain frame, not a versioned_output: describe it here
            extra |= {VERSION_METADATA_KEY: record.version, **table_metadata(obj)}
        context.add_output_metadata(extra)

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        return self.warehouse.read_partition(context.asset_key, _partition_of(context)).frame


def _partition_of(context: dg.InputContext | dg.OutputContext) -> str | None:
    if not context.has_asset_partitions:
        return None
    keys = context.asset_partition_keys
    if len(keys) != 1:
        raise ConfigurationError(
            f"PartitionedSqlIOManager stores one partition per step; {context.asset_key.to_user_string()} "
            f"was asked for {len(keys)} partitions ({keys[0]} .. {keys[-1]}); "
            "run a backfill with one run per partition"
        )
    return keys[0]
