"""A control-plane store of schema version 4, opened by this foureyes: migrated in place, its approvals decidable."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from foureyes.resources.control_plane import schema
from foureyes.resources.control_plane.approvals import APPROVED, PENDING, arguments_digest
from foureyes.resources.control_plane.resource import ControlPlaneResource, _ready
from foureyes.resources.errors import ControlPlaneError
from tests.helpers import principal_of

_TS = sa.DateTime(timezone=True)
V5_ONLY = {"principals", "principal_tokens", "audit_log", "approvals", "approval_votes"}
PAYLOAD = {"proposal": {"amount": 5_000_000}, "rationale": "MTM moved"}
EXPIRES = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)


def _v4_metadata() -> sa.MetaData:
    """The tables as schema version 4 had them: version 5's, less its new ones, with the approvals of then."""
    v4 = sa.MetaData()
    for table in schema.metadata.sorted_tables:
        if table.name not in V5_ONLY:
            table.to_metadata(v4)
    sa.Table(  # `git show <v4>:resources/control_plane/schema.py`
        "approvals",
        v4,
        sa.Column("approval_id", sa.String(64), primary_key=True),
        sa.Column("agent", sa.String(200), nullable=False),
        sa.Column("partition_key", sa.String(200), nullable=False),
        sa.Column("proposal_id", sa.String(64), nullable=False),
        sa.Column("proposals_version", sa.String(64), nullable=False),
        sa.Column("policy", sa.String(200), nullable=False),
        sa.Column("required", sa.Integer, nullable=False),
        sa.Column("proposer", sa.String(200), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("action", sa.String(200), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_at", _TS, nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("decided_at", _TS),
        sa.Column("run_id", sa.String(64)),
        sa.Index("ix_approvals_status", "status", "expires_at"),
        sa.Index("ix_approvals_batch", "agent", "partition_key", "proposals_version"),
        sa.Index("ix_approvals_decided", "decided_at"),
    )
    sa.Table(
        "approval_votes",
        v4,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("approval_id", sa.String(64), sa.ForeignKey("approvals.approval_id"), nullable=False),
        sa.Column("approver", sa.String(200), nullable=False),
        sa.Column("approver_key", sa.String(200), nullable=False),
        sa.Column("os_user", sa.String(200)),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("voted_at", _TS, nullable=False),
        sa.UniqueConstraint("approval_id", "approver_key", name="uq_approval_votes_approver"),
        sa.Index("ix_approval_votes_approval", "approval_id"),
    )
    return v4


def _v4_store(url: str, version: str = "4") -> None:
    """A store as foureyes 4 left it: one approval of two, pending, with alice's vote (typed with --by)."""
    v4 = _v4_metadata()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        v4.create_all(conn)
        conn.execute(v4.tables["foureyes_meta"].insert().values(key="schema_version", value=version))
        conn.execute(
            v4.tables["approvals"]
            .insert()
            .values(
                approval_id="0123456789abcdef",
                agent="margin_calls",
                partition_key="2026-11-20",
                proposal_id="P1",
                proposals_version="v1",
                policy="large_margin_call",
                required=2,
                proposer="agent:margin_calls",
                summary="call for P1",
                action="margin_call",
                target="collateral_desk",
                payload=PAYLOAD,
                status=PENDING,
                requested_at=dt.datetime(2026, 11, 20, 18, 0, tzinfo=dt.UTC),
                expires_at=EXPIRES,
            )
        )
        conn.execute(
            v4.tables["approval_votes"]
            .insert()
            .values(
                approval_id="0123456789abcdef",
                approver="alice",
                approver_key="alice",
                os_user="ops01",
                decision="approve",
                reason="matches CSA",
                voted_at=dt.datetime(2026, 11, 20, 18, 5, tzinfo=dt.UTC),
            )
        )
    engine.dispose()


def _columns(control: ControlPlaneResource, table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(control.engine).get_columns(table)}


def test_a_version_4_store_is_migrated_in_place_and_its_pending_approval_decided(db_url):
    _v4_store(db_url)
    control = ControlPlaneResource(url=db_url)
    control.reach()
    with control.engine.connect() as conn:
        version = conn.execute(sa.select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")).scalar()
    assert version == schema.SCHEMA_VERSION == "5"
    assert {"arguments_digest", "revision"} <= _columns(control, "approvals")
    assert {"authenticated_by", "proposals_version", "arguments_digest"} <= _columns(control, "approval_votes")
    assert {"principals", "principal_tokens", "audit_log"} <= set(sa.inspect(control.engine).get_table_names())

    kept = control.approvals.get("0123456789abcdef")
    assert (kept.status, kept.revision, kept.proposal, kept.rationale) == (PENDING, 0, PAYLOAD["proposal"], "MTM moved")
    assert kept.arguments_digest == arguments_digest("margin_call", "collateral_desk", PAYLOAD)
    assert [(v.approver, v.os_user, v.authenticated_by) for v in kept.votes] == [("alice", "ops01", None)]

    alice = principal_of(control, "alice")  # alice's vote of version 4 is hers: sent again, it counts once
    again = control.approvals.decide(kept.approval_id, by=alice, decision="approve", reason="again")
    assert not again.counted and again.approval.status == PENDING
    bob = principal_of(control, "bob")
    granted = control.approvals.decide(
        kept.approval_id, by=bob, decision="approve", reason="agreed", expected_digest=kept.arguments_digest[:8]
    )
    assert granted.counted and granted.approval.status == APPROVED and granted.approval.approvers == ["alice", "bob"]
    assert granted.vote.authenticated_by.startswith("token ") and granted.vote.arguments_digest == kept.arguments_digest
    (queued,) = control.outbox.find()
    assert (queued.proposal_id, queued.payload, queued.rationale) == ("P1", PAYLOAD["proposal"], "MTM moved")


def test_a_migrated_store_opens_as_version_5_from_then_on(db_url):
    _v4_store(db_url)
    ControlPlaneResource(url=db_url).reach()
    _ready.clear()  # another process opening it: the schema is checked again, and is current
    control = ControlPlaneResource(url=db_url)
    control.reach()
    assert control.approvals.get("0123456789abcdef").status == PENDING


@pytest.mark.parametrize("version", ["3", "6"])
def test_a_store_of_another_version_is_refused_and_left_alone(db_url, version):
    _v4_store(db_url, version=version)
    with pytest.raises(ControlPlaneError, match=f"has schema version {version}, this foureyes expects 5"):
        ControlPlaneResource(url=db_url).reach()
    engine = sa.create_engine(db_url)
    try:
        assert "arguments_digest" not in {c["name"] for c in sa.inspect(engine).get_columns("approvals")}
        assert "audit_log" not in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()
