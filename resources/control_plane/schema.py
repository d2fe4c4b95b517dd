"""The control-plane tables: decisions, receipts and lineage, with the indexes their lookups use.

Defined once here with SQLAlchemy Core so the same DDL runs on SQLite and PostgreSQL.
``SCHEMA_VERSION`` is stored in ``foureyes_meta``; a store written by another schema version
is refused with a clear error instead of being read wrongly.
"""

from __future__ import annotations

import sqlalchemy as sa

SCHEMA_VERSION = "5"

metadata = sa.MetaData()

_TS = sa.DateTime(timezone=True)

meta = sa.Table(
    "foureyes_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("agent", sa.String(200), nullable=False),
    sa.Column("partition_key", sa.String(200), nullable=False),
    sa.Column("proposal_id", sa.String(64), nullable=False),
    sa.Column("proposals_version", sa.String(64), nullable=False),
    sa.Column("supervision_id", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("action", sa.String(200), nullable=False),
    sa.Column("proposal", sa.JSON, nullable=False),
    sa.Column("rationale", sa.Text, nullable=False),
    sa.Column("confidence", sa.Float),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("reasons", sa.JSON, nullable=False),
    sa.Column("tier", sa.String(16)),
    sa.Column("model", sa.String(200)),
    sa.Column("decided_at", _TS, nullable=False),
    sa.Index("ix_decisions_batch", "agent", "partition_key", "proposals_version", "decided_at"),
    sa.Index("ix_decisions_proposal", "proposal_id"),
    sa.Index("ix_decisions_supervision", "supervision_id", "verdict"),
)

receipts = sa.Table(
    "receipts",
    metadata,
    sa.Column("idempotency_key", sa.String(64), primary_key=True),
    sa.Column("agent", sa.String(200), nullable=False),
    sa.Column("partition_key", sa.String(200), nullable=False),
    sa.Column("proposal_id", sa.String(64), nullable=False),
    sa.Column("action", sa.String(200), nullable=False),
    sa.Column("target", sa.String(200), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("claimed_at", _TS, nullable=False),
    sa.Column("executed_at", _TS),
    sa.Column("detail", sa.JSON),
    sa.Index("ix_receipts_batch", "agent", "partition_key"),
)

lineage_events = sa.Table(
    "lineage_events",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("event_key", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("event_type", sa.String(16)),
    sa.Column("event_time", sa.String(40), nullable=False),
    sa.Column("job_namespace", sa.String(400), nullable=False),
    sa.Column("job_name", sa.String(400), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("stored_at", _TS, nullable=False),
    sa.Index("ix_lineage_events_run", "run_id"),
    sa.UniqueConstraint("event_key", name="uq_lineage_events_key"),
)

lineage_datasets = sa.Table(
    "lineage_datasets",
    metadata,
    sa.Column(
        "event_id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        sa.ForeignKey("lineage_events.id"),
        nullable=False,
    ),
    sa.Column("direction", sa.String(8), nullable=False),
    sa.Column("namespace", sa.String(400), nullable=False),
    sa.Column("name", sa.String(400), nullable=False),
    sa.Column("partition_key", sa.String(200)),
    sa.Column("version", sa.String(200)),
    sa.Index("ix_lineage_datasets_partition", "namespace", "name", "partition_key", "direction"),
    sa.Index("ix_lineage_datasets_event", "event_id"),
)

supervisions = sa.Table(
    "supervisions",
    metadata,
    sa.Column("supervision_id", sa.String(64), primary_key=True),
    sa.Column("agent", sa.String(200), nullable=False),
    sa.Column("partition_key", sa.String(200), nullable=False),
    sa.Column("proposals_version", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("blocked", sa.Boolean, nullable=False),
    sa.Column("block_reason", sa.Text, nullable=False),
    sa.Column("counts", sa.JSON, nullable=False),
    sa.Column("supervised_at", _TS, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Index("ix_supervisions_batch", "agent", "partition_key", "proposals_version", "supervised_at"),
)

approvals = sa.Table(
    "approvals",
    metadata,
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
    sa.Column("arguments_digest", sa.String(64)),
    sa.Column("revision", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_approvals_status", "status", "expires_at"),
    sa.Index("ix_approvals_batch", "agent", "partition_key", "proposals_version"),
    sa.Index("ix_approvals_decided", "decided_at"),
)

approval_votes = sa.Table(
    "approval_votes",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("approval_id", sa.String(64), sa.ForeignKey("approvals.approval_id"), nullable=False),
    sa.Column("approver", sa.String(200), nullable=False),
    sa.Column("approver_key", sa.String(200), nullable=False),
    sa.Column("os_user", sa.String(200)),
    sa.Column("authenticated_by", sa.String(200)),
    sa.Column("proposals_version", sa.String(64)),
    sa.Column("arguments_digest", sa.String(64)),
    sa.Column("decision", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("voted_at", _TS, nullable=False),
    sa.UniqueConstraint("approval_id", "approver_key", name="uq_approval_votes_approver"),
    sa.Index("ix_approval_votes_approval", "approval_id"),
)

agent_runs = sa.Table(
    "agent_runs",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("agent", sa.String(200), nullable=False),
    sa.Column("partition_key", sa.String(200), nullable=False),
    sa.Column("proposals_version", sa.String(64), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("tier", sa.String(16), nullable=False),
    sa.Column("tier_reason", sa.Text, nullable=False),
    sa.Column("inputs", sa.JSON, nullable=False),
    sa.Column("model", sa.String(200)),
    sa.Column("model_attempts", sa.JSON, nullable=False),
    sa.Column("prompt_hash", sa.String(64)),
    sa.Column("policy_version", sa.String(64)),
    sa.Column("created_at", _TS, nullable=False),
    sa.Index("ix_agent_runs_version", "agent", "partition_key", "proposals_version", "created_at"),
)

circuit_breakers = sa.Table(
    "circuit_breakers",
    metadata,
    sa.Column("backend", sa.String(200), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("opened_at", _TS),
    sa.Column("last_error", sa.Text),
    sa.Column("updated_at", _TS, nullable=False),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("idempotency_key", sa.String(64), primary_key=True),
    sa.Column("agent", sa.String(200), nullable=False),
    sa.Column("partition_key", sa.String(200), nullable=False),
    sa.Column("proposal_id", sa.String(64), nullable=False),
    sa.Column("proposals_version", sa.String(64), nullable=False),
    sa.Column("action", sa.String(200), nullable=False),
    sa.Column("target", sa.String(200), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("rationale", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", _TS, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("lease_until", _TS),
    sa.Column("run_id", sa.String(64)),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("delivered_at", _TS),
    sa.Index("ix_outbox_due", "status", "next_attempt_at"),
    sa.Index("ix_outbox_batch", "agent", "partition_key"),
)

heartbeats = sa.Table(
    "heartbeats",
    metadata,
    sa.Column("agent", sa.String(200), primary_key=True),
    sa.Column("partition_key", sa.String(200), primary_key=True),
    sa.Column("phase", sa.String(32), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("phase_since", _TS, nullable=False),
    sa.Column("beat_at", _TS, nullable=False),
    sa.Column("beat_every_s", sa.Float, nullable=False),
    sa.Column("stuck_after_s", sa.Float, nullable=False),
    sa.Column("outcome", sa.Text),
    sa.Index("ix_heartbeats_beat", "beat_at"),
)
tool_calls = sa.Table(
    "tool_calls",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("agent", sa.String(200), nullable=False),
    sa.Column("partition_key", sa.String(200), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("stage", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("tool", sa.String(200), nullable=False),
    sa.Column("parameters", sa.JSON, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("detail", sa.Text),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("tries", sa.Integer, nullable=False),
    sa.Column("proposals_version", sa.String(64)),
    sa.Column("proposal_id", sa.String(64)),
    sa.Column("called_at", _TS, nullable=False),
    sa.Index("ix_tool_calls_batch", "agent", "partition_key", "called_at"),
    sa.Index("ix_tool_calls_proposal", "proposal_id"),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("raised_at", _TS, nullable=False),
    sa.Index("ix_alerts_raised", "raised_at"),
)

principals = sa.Table(
    "principals",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("principal_key", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("os_user", sa.String(200)),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("disabled_at", _TS),
    sa.UniqueConstraint("principal_key", name="uq_principals_key"),
    sa.UniqueConstraint("os_user", name="uq_principals_os_user"),
)

principal_tokens = sa.Table(
    "principal_tokens",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column("token_id", sa.String(16), nullable=False),
    sa.Column("principal", sa.String(200), sa.ForeignKey("principals.name"), nullable=False),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("expires_at", _TS),
    sa.Column("revoked_at", _TS),
    sa.UniqueConstraint("token_id", name="uq_principal_tokens_id"),
    sa.Index("ix_principal_tokens_principal", "principal"),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("at", _TS, nullable=False),
    sa.Column("principal", sa.String(200), nullable=False),
    sa.Column("authenticated_by", sa.String(200), nullable=False),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("tool", sa.String(64), nullable=False),
    sa.Column("arguments", sa.JSON, nullable=False),
    sa.Column("arguments_digest", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
    sa.Column("previous_hash", sa.String(64), nullable=False),
    sa.Column("entry_hash", sa.String(64), nullable=False),
    sa.Index("ix_audit_log_at", "at"),
    sa.Index("ix_audit_log_principal", "principal", "at"),
)
