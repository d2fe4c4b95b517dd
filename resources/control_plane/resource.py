"""The control plane: where foureyes keeps what happened (decisions, receipts, lineage).

It lives in its own database, apart from the warehouse, so that the record of what agents
proposed and did survives any rewrite of the data, and can be shared by every code location.
The schema is created on first use (once per process and URL) and stamped with its version.
"""

from __future__ import annotations

import threading

import dagster as dg
import sqlalchemy as sa
from pydantic import Field

from foureyes.resources.control_plane import migration
from foureyes.resources.control_plane import schema as control_schema
from foureyes.resources.control_plane.agent_runs import AgentRunLog
from foureyes.resources.control_plane.agent_state import AgentStateBook
from foureyes.resources.control_plane.alerts import AlertBook
from foureyes.resources.control_plane.approvals import ApprovalBook
from foureyes.resources.control_plane.audit import AuditTrail
from foureyes.resources.control_plane.decisions import DecisionLog
from foureyes.resources.control_plane.outbox import Outbox
from foureyes.resources.control_plane.principal_book import PrincipalBook
from foureyes.resources.control_plane.receipts import ReceiptBook
from foureyes.resources.control_plane.tool_calls import ToolCallLog
from foureyes.resources.engine import engine_for, is_postgres, reaching, write_transaction
from foureyes.resources.errors import ControlPlaneError
from foureyes.resources.lineage.store import LineageStore
from foureyes.resources.redaction import redact_url

_ready: set[str] = set()
_ready_lock = threading.Lock()


def control_engine(url: str) -> sa.Engine:
    """The engine of a control-plane store whose schema is present and of our version."""
    engine = engine_for(url)
    key = str(engine.url)
    with _ready_lock:
        if key not in _ready:
            _create_schema(engine)
            _ready.add(key)
    return engine


def _create_schema(engine: sa.Engine) -> None:
    with reaching(engine, "control plane"), write_transaction(engine) as conn:
        if is_postgres(engine):
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(0x466F757265796573)))
        control_schema.metadata.create_all(conn, checkfirst=True)
        meta = control_schema.meta
        found = conn.execute(sa.select(meta.c.value).where(meta.c.key == "schema_version")).scalar()
        if found is None:
            conn.execute(meta.insert().values(key="schema_version", value=control_schema.SCHEMA_VERSION))
        elif found == migration.MIGRATES_FROM:
            migration.migrate(conn)
            conn.execute(
                meta.update().where(meta.c.key == "schema_version").values(value=control_schema.SCHEMA_VERSION)
            )
        elif found != control_schema.SCHEMA_VERSION:
            raise ControlPlaneError(
                f"control-plane store {redact_url(engine.url.render_as_string(hide_password=False))} has schema "
                f"version {found}, this foureyes expects {control_schema.SCHEMA_VERSION}; "
                "point FOUREYES_CONTROL_URL at a new store or migrate this one"
            )


class ControlPlaneResource(dg.ConfigurableResource):
    """The store of decisions, verdicts, action receipts and lineage events.

    Examples:
        >>> import dagster as dg
        >>> import sqlalchemy as sa
        >>> import foureyes
        >>> control_plane = foureyes.ControlPlaneResource(url="sqlite:///control.db")
        >>> control_plane.reach()  # creates the schema on first use
        >>> {"decisions", "receipts", "outbox"} <= set(sa.inspect(control_plane.engine).get_table_names())
        True
        >>> sorted(dg.Definitions(resources={"control_plane": control_plane}).resources)
        ['control_plane']
    """

    url: str = Field(description="SQLAlchemy URL of the control-plane database.")

    @property
    def engine(self) -> sa.Engine:
        return control_engine(self.url)

    def reach(self) -> None:
        """Open the store now (its schema created or checked): a store that is down fails here, in one line."""
        control_engine(self.url)

    @property
    def decision_log(self) -> DecisionLog:
        return DecisionLog(self.engine)

    @property
    def state(self) -> AgentStateBook:
        return AgentStateBook(self.engine)

    @property
    def tool_calls(self) -> ToolCallLog:
        return ToolCallLog(self.engine)

    @property
    def alerts(self) -> AlertBook:
        return AlertBook(self.engine)

    @property
    def agent_runs(self) -> AgentRunLog:
        return AgentRunLog(self.engine)

    @property
    def approvals(self) -> ApprovalBook:
        return ApprovalBook(self.engine)

    @property
    def principals(self) -> PrincipalBook:
        return PrincipalBook(self.engine)

    @property
    def audit(self) -> AuditTrail:
        return AuditTrail(self.engine)

    @property
    def outbox(self) -> Outbox:
        return Outbox(self.engine)

    @property
    def receipts(self) -> ReceiptBook:
        return ReceiptBook(self.engine)

    @property
    def lineage_store(self) -> LineageStore:
        return LineageStore(self.engine)
