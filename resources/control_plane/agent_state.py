"""Live agent state: what each agent is doing, since when, and whether it is stuck.

Every step of an agent (propose, supervise, execute) reports its phase for its partition and,
while in it, beats from a background thread. Two ways to be STUCK, both seen by
``foureyes status`` and the ``foureyes_stuck_agents`` sensor:

* the heartbeat stopped (older than four beats): the process died, froze, or lost the store;
* the phase has lasted longer than the agent's ``stuck_after``: alive, but hung on something
  (a model that never answers, a lock), which a heartbeat alone would never show.

One row per agent and partition, so a backfill running ten partitions at once reports ten.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import sqlalchemy as sa

from foureyes.resources.control_plane.schema import heartbeats
from foureyes.resources.engine import as_utc, keyed_insert, write_transaction
from foureyes.resources.redaction import scrub

IDLE, LOADING, PROPOSING, SUPERVISING, EXECUTING = "idle", "loading_inputs", "proposing", "supervising", "executing"
PHASES = (IDLE, LOADING, PROPOSING, SUPERVISING, EXECUTING)
DEFAULT_STUCK_AFTER = dt.timedelta(minutes=30)
DEFAULT_BEAT_EVERY = dt.timedelta(seconds=15)
MISSED_BEATS = 4  # a heartbeat older than this many intervals is a dead one


@dataclass(frozen=True)
class Liveness:
    """How an agent shows it is alive: a beat every ``beat_every``; no phase longer than ``stuck_after``."""

    stuck_after: dt.timedelta = DEFAULT_STUCK_AFTER
    beat_every: dt.timedelta = DEFAULT_BEAT_EVERY


DEFAULT_LIVENESS = Liveness()
SILENT, OVERDUE = "silent", "overdue"


@dataclass(frozen=True)
class Stuck:
    """Why an agent partition is stuck: ``silent`` (its process is gone) or ``overdue`` (alive, hung)."""

    kind: str
    reason: str

    def __str__(self) -> str:
        return self.reason


@dataclass(frozen=True)
class AgentState:
    """One agent partition's phase, as last reported."""

    agent: str
    partition: str
    phase: str
    run_id: str | None
    phase_since: dt.datetime
    beat_at: dt.datetime
    liveness: Liveness
    outcome: str | None

    @property
    def active(self) -> bool:
        return self.phase != IDLE

    def stuck(self, now: dt.datetime | None = None) -> Stuck | None:
        """Why this agent partition is stuck, or None when it is idle or making progress."""
        if not self.active:
            return None
        now = now or dt.datetime.now(dt.UTC)
        silent, every = now - self.beat_at, self.liveness.beat_every
        if silent > every * MISSED_BEATS:
            return Stuck(SILENT, f"no heartbeat for {duration(silent)} (beats every {duration(every)})")
        in_phase, limit = now - self.phase_since, self.liveness.stuck_after
        if in_phase > limit:
            return Stuck(OVERDUE, f"{self.phase} for {duration(in_phase)} (limit {duration(limit)})")
        return None


class PhaseTracker:
    """Moves one agent partition from phase to phase; a background thread keeps it beating."""

    def __init__(self, book: AgentStateBook, agent: str, partition: str, run_id: str | None, liveness: Liveness):
        self._book, self._agent, self._partition, self._run_id = book, agent, partition, run_id
        self._liveness = liveness

    def enter(self, phase: str) -> None:
        self._book.report(self._agent, self._partition, phase, run_id=self._run_id, liveness=self._liveness)


class AgentStateBook:
    def __init__(self, engine: sa.Engine):
        self._engine = engine

    @contextmanager
    def tracking(
        self,
        agent: str,
        partition: str,
        first_phase: str,
        *,
        run_id: str | None,
        liveness: Liveness = DEFAULT_LIVENESS,
    ) -> Iterator[PhaseTracker]:
        """Report ``first_phase`` now, beat while inside, and go idle with the outcome on the way out."""
        tracker = PhaseTracker(self, agent, partition, run_id, liveness)
        tracker.enter(first_phase)
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(liveness.beat_every.total_seconds()):
                try:
                    self.beat(agent, partition)
                except Exception:  # a store that blips must not kill the agent: a missed beat shows it
                    continue

        beater = threading.Thread(target=beat, name=f"heartbeat-{agent}-{partition}", daemon=True)
        beater.start()
        outcome = "ok"
        try:
            yield tracker
        except BaseException as exc:
            outcome = f"failed: {type(exc).__name__}: {scrub(exc)[:300]}"
            raise
        finally:
            stop.set()
            beater.join()
            self.report(agent, partition, IDLE, run_id=run_id, liveness=liveness, outcome=outcome)

    def report(
        self,
        agent: str,
        partition: str,
        phase: str,
        *,
        run_id: str | None,
        liveness: Liveness = DEFAULT_LIVENESS,
        outcome: str | None = None,
    ) -> None:
        if phase not in PHASES:
            raise ValueError(f"phase {phase!r} is not one of {PHASES}")
        now = dt.datetime.now(dt.UTC)
        row = {
            "phase": phase,
            "run_id": run_id,
            "phase_since": now,
            "beat_at": now,
            "beat_every_s": liveness.beat_every.total_seconds(),
            "stuck_after_s": liveness.stuck_after.total_seconds(),
            "outcome": outcome,
        }
        with write_transaction(self._engine) as conn:
            conn.execute(
                keyed_insert(conn, heartbeats)  # the first reports of two runs of one partition race
                .values(agent=agent, partition_key=partition, **row)
                .on_conflict_do_update(index_elements=[heartbeats.c.agent, heartbeats.c.partition_key], set_=row)
            )

    def beat(self, agent: str, partition: str) -> None:
        with write_transaction(self._engine) as conn:
            conn.execute(
                heartbeats.update()
                .where(heartbeats.c.agent == agent, heartbeats.c.partition_key == partition)
                .values(beat_at=dt.datetime.now(dt.UTC))
            )

    def settle(self, state: AgentState, outcome: str) -> None:
        """Mark an abandoned phase idle (its run ended without saying so), if nothing reported since."""
        with write_transaction(self._engine) as conn:
            conn.execute(
                heartbeats.update()
                .where(
                    heartbeats.c.agent == state.agent,
                    heartbeats.c.partition_key == state.partition,
                    heartbeats.c.phase == state.phase,
                    heartbeats.c.run_id == state.run_id,
                )
                .values(phase=IDLE, phase_since=dt.datetime.now(dt.UTC), outcome=outcome[:2000])
            )

    def states(self, agent: str | None = None) -> list[AgentState]:
        """Every agent partition's state, most recently changed first."""
        query = sa.select(heartbeats).order_by(heartbeats.c.phase_since.desc())
        if agent is not None:
            query = query.where(heartbeats.c.agent == agent)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            AgentState(
                agent=r.agent,
                partition=r.partition_key,
                phase=r.phase,
                run_id=r.run_id,
                phase_since=as_utc(r.phase_since),
                beat_at=as_utc(r.beat_at),
                liveness=Liveness(dt.timedelta(seconds=r.stuck_after_s), dt.timedelta(seconds=r.beat_every_s)),
                outcome=r.outcome,
            )
            for r in rows
        ]


def duration(delta: dt.timedelta) -> str:
    """A short human duration: 45s, 12m, 3h05m, 2d04h."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s" if seconds < 600 else f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"
