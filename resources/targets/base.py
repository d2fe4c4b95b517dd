"""Executor targets: where approved actions land.

The contract is small. A target is a Dagster resource with a ``kind``, optionally the
``actions`` it carries out, and one method, ``execute(action)``; ``dataset`` names what it
writes, for lineage. The supervisor rejects any action the agent does not declare, and any
its target does not list, whatever the agent's schema allows.

At most once does not rest on the far side. A delivery is retried automatically only when
it certainly did not arrive (the connection was refused), or when the target
``deduplicates`` — acts once per idempotency key, however often it is sent. Any other
delivery that may have arrived without a confirmation (a timeout, a dropped connection, a
5xx, a crash before the receipt was written) is put *in doubt*, for a human to settle
(``foureyes outbox``), never sent again on its own.

``SqlBooksTarget`` writes actions into a table of a SQL database ("the books") whose primary
key is the idempotency key.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from dataclasses import dataclass
from typing import ClassVar

import dagster as dg
import sqlalchemy as sa
from pydantic import Field

from foureyes.resources.engine import engine_for, insert_ignoring_duplicates, write_transaction
from foureyes.resources.lineage.emitter import LineageDataset
from foureyes.resources.warehouse.schema_memory import SchemaMemory
from foureyes.resources.warehouse.store import SqlWarehouseResource


@dataclass(frozen=True)
class Action:
    """One approved action, as handed to a target."""

    idempotency_key: str
    agent: str
    partition: str
    proposal_id: str
    action: str
    payload: dict[str, object]
    rationale: str


@dataclass(frozen=True)
class TargetResult:
    """What the target did: ``executed`` now, or ``duplicate`` (it already had this key)."""

    status: str
    detail: dict[str, object]


class ActionTarget(dg.ConfigurableResource):
    """Base of executor targets. Subclasses set ``kind`` and implement ``execute`` and ``dataset``.

    ``execute`` raises ``TargetRefusedError`` for a refusal (never retried on its own) and
    ``TargetUnavailableError`` otherwise, saying whether the action may have been ``sent``.
    """

    kind: ClassVar[str] = "abstract"
    actions: list[str] | None = Field(
        default=None,
        description=(
            "The actions this target carries out; the supervisor rejects any other. None: those each agent "
            "sending here declares ('hold' is never sent)."
        ),
    )

    @property
    def deduplicates(self) -> bool:
        """Whether the far side acts once per idempotency key, so an unconfirmed delivery may be sent again."""
        return False

    def execute(self, action: Action) -> TargetResult:
        raise NotImplementedError

    def dataset(self) -> LineageDataset:
        raise NotImplementedError


class SqlBooksTarget(ActionTarget):
    """Books approved actions into a SQL table keyed by idempotency key.

    Examples:
        >>> import dagster as dg
        >>> import foureyes
        >>> books = foureyes.SqlBooksTarget(url="sqlite:///books.db", table="orders", actions=["buy", "sell"])
        >>> defs = dg.Definitions(resources={"order_books": books})
        >>> books.deduplicates
        True
    """

    kind: ClassVar[str] = "sql_books"
    url: str = Field(description="SQLAlchemy URL of the books database.")
    table: str = Field(default="books", description="Table the actions are written to.")

    @property
    def deduplicates(self) -> bool:
        return True  # the idempotency key is the table's primary key

    def execute(self, action: Action) -> TargetResult:
        books = _books_table(self.table)
        engine = engine_for(self.url)
        row = {
            "idempotency_key": action.idempotency_key,
            "agent": action.agent,
            "partition_key": action.partition,
            "proposal_id": action.proposal_id,
            "action": action.action,
            "payload": json.dumps(action.payload, sort_keys=True),
            "rationale": action.rationale,
            "booked_at": dt.datetime.now(dt.UTC),
        }
        store = engine.url.render_as_string()

        def book() -> bool:
            """Whether this delivery booked the action (RETURNING gives a row only for a new key;
            SQLAlchemy 2.1 does not keep an INSERT's rowcount on PostgreSQL)."""
            with write_transaction(engine) as conn:
                if _BOOKS.columns(store, self.table) is None:
                    books.create(conn, checkfirst=True)
                insert = insert_ignoring_duplicates(conn, books).values(**row)
                booked = conn.execute(insert.returning(books.c.idempotency_key)).first() is not None
            _BOOKS.remember(store, self.table)  # committed: the table exists
            return booked

        booked = _BOOKS.trusting(store, book)
        return TargetResult("executed" if booked else "duplicate", {"table": self.table, "booked": booked})

    def dataset(self) -> LineageDataset:
        name = SqlWarehouseResource(url=self.url).dataset_name(self.table)
        return LineageDataset(namespace=name.namespace, name=name.name)


def booked_actions(url: str, table: str) -> list[dict[str, object]]:
    """Every row of a books table, oldest first (for operators and tests)."""
    engine = engine_for(url)
    books = _books_table(table)
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(table):
            return []
        return [dict(r._mapping) for r in conn.execute(sa.select(books).order_by(books.c.booked_at))]


_BOOKS = SchemaMemory()


@functools.cache
def _books_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("idempotency_key", sa.String(64), primary_key=True),
        sa.Column("agent", sa.String(200), nullable=False),
        sa.Column("partition_key", sa.String(200), nullable=False),
        sa.Column("proposal_id", sa.String(64), nullable=False),
        sa.Column("action", sa.String(200), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("rationale", sa.Text, nullable=False),
        sa.Column("booked_at", sa.DateTime(timezone=True), nullable=False),
    )
