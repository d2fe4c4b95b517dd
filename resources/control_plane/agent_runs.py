"""What each agent run was working with: its tier, the inputs it was served, the model that answered.

The proposals step writes one record per proposals version; the supervisor stamps every
decision with its tier and model from it, and operators read it to see why a partition ran
degraded ("market_prices served from 2026-11-17: the 18th failed no_outliers").
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import sqlalchemy as sa

from foureyes.resources.control_plane.schema import agent_runs
from foureyes.resources.engine import as_utc, write_transaction

FULL, CONSTRAINED, PASS_THROUGH = "FULL", "CONSTRAINED", "PASS_THROUGH"
TIERS = (FULL, CONSTRAINED, PASS_THROUGH)  # best to worst


@dataclass(frozen=True)
class AgentRunRecord:
    agent: str
    partition: str
    proposals_version: str
    tier: str
    tier_reason: str
    inputs: list[dict]
    model: str | None = None
    model_attempts: list[dict] = field(default_factory=list)
    prompt_hash: str | None = None
    policy_version: str | None = None
    run_id: str | None = None
    created_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


class AgentRunLog:
    def __init__(self, engine: sa.Engine):
        self._engine = engine

    def record(self, run: AgentRunRecord) -> None:
        with write_transaction(self._engine) as conn:
            conn.execute(
                agent_runs.insert().values(
                    agent=run.agent,
                    partition_key=run.partition,
                    proposals_version=run.proposals_version,
                    run_id=run.run_id,
                    tier=run.tier,
                    tier_reason=run.tier_reason,
                    inputs=run.inputs,
                    model=run.model,
                    model_attempts=run.model_attempts,
                    prompt_hash=run.prompt_hash,
                    policy_version=run.policy_version,
                    created_at=run.created_at,
                )
            )

    def latest(
        self, agent: str, partition: str | None = None, proposals_version: str | None = None
    ) -> AgentRunRecord | None:
        """The newest run of an agent (for a partition, and a proposals version, if given)."""
        query = sa.select(agent_runs).where(agent_runs.c.agent == agent)
        if partition is not None:
            query = query.where(agent_runs.c.partition_key == partition)
        if proposals_version is not None:
            query = query.where(agent_runs.c.proposals_version == proposals_version)
        with self._engine.connect() as conn:
            row = conn.execute(query.order_by(agent_runs.c.created_at.desc(), agent_runs.c.id.desc()).limit(1)).first()
        return _from_row(row) if row else None


def _from_row(row: sa.Row) -> AgentRunRecord:
    return AgentRunRecord(
        agent=row.agent,
        partition=row.partition_key,
        proposals_version=row.proposals_version,
        tier=row.tier,
        tier_reason=row.tier_reason,
        inputs=row.inputs,
        model=row.model,
        model_attempts=row.model_attempts,
        prompt_hash=row.prompt_hash,
        policy_version=row.policy_version,
        run_id=row.run_id,
        created_at=as_utc(row.created_at),
    )
