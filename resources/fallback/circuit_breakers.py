"""Circuit breakers for model backends, kept in the control plane so they hold across runs.

After ``threshold`` consecutive failures a backend's breaker opens: the chain skips it until
``cooldown`` has passed, then lets one call through (half-open); a success closes it again,
a failure re-opens it. Stored in the control plane, a breaker opened by one process or run
is respected by every other, so a dead model server is not hammered by each new partition.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from foureyes.resources.control_plane.schema import circuit_breakers
from foureyes.resources.engine import as_utc, keyed_insert, write_transaction

CLOSED, OPEN = "closed", "open"


@dataclass(frozen=True)
class BreakerState:
    backend: str
    state: str
    failures: int
    opened_at: dt.datetime | None
    last_error: str | None


class CircuitBreakers:
    def __init__(self, engine: sa.Engine, threshold: int = 3, cooldown: dt.timedelta = dt.timedelta(minutes=5)):
        self._engine = engine
        self.threshold = threshold
        self.cooldown = cooldown

    def allows(self, backend: str, now: dt.datetime | None = None) -> tuple[bool, str]:
        """Whether to call ``backend`` now, and if not, why."""
        state = self.state(backend)
        if state is None or state.state == CLOSED:
            return True, ""
        now = now or dt.datetime.now(dt.UTC)
        if state.opened_at is not None and now - state.opened_at >= self.cooldown:
            return True, "half-open: one trial call after the cooldown"
        until = (state.opened_at + self.cooldown) if state.opened_at else now
        return (
            False,
            f"circuit open after {state.failures} failures until {until:%H:%M:%S}Z ({state.last_error})",
        )

    def succeeded(self, backend: str) -> None:
        """Close the breaker; a healthy one (no row, or closed without failures) costs a read, not a write."""
        state = self.state(backend)
        if state is not None and (state.state != CLOSED or state.failures):
            closed = {"state": CLOSED, "failures": 0, "opened_at": None}
            self._write(backend, first=closed, then=closed, error=None)

    def failed(self, backend: str, error: str) -> None:
        """Count one more consecutive failure, in the store: runs failing on one backend at once all count."""
        now = dt.datetime.now(dt.UTC)
        failures = circuit_breakers.c.failures + 1
        opens, first_opens = failures >= self.threshold, self.threshold <= 1
        self._write(
            backend,
            first={"state": OPEN if first_opens else CLOSED, "failures": 1, "opened_at": now if first_opens else None},
            then={
                "state": sa.case((opens, OPEN), else_=CLOSED),
                "failures": failures,
                "opened_at": sa.case((opens, now), else_=None),
            },
            error=error,
        )

    def state(self, backend: str) -> BreakerState | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(circuit_breakers).where(circuit_breakers.c.backend == backend)).first()
        if row is None:
            return None
        return BreakerState(row.backend, row.state, row.failures, as_utc(row.opened_at), row.last_error)

    def _write(self, backend: str, *, first: dict[str, object], then: dict[str, object], error: str | None) -> None:
        """One statement: the breaker's first row (``first``), or its row moved on (``then``).

        Two runs of a backend that fails for both write its breaker at once; read, delete and
        insert would let both insert, and the second fails its step on the primary key.
        """
        changed = {"last_error": (error or "")[:500] or None, "updated_at": dt.datetime.now(dt.UTC)}
        with write_transaction(self._engine) as conn:
            conn.execute(
                keyed_insert(conn, circuit_breakers)
                .values(backend=backend, **first, **changed)
                .on_conflict_do_update(index_elements=[circuit_breakers.c.backend], set_={**then, **changed})
            )
