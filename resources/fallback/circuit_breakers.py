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
from foureyes.resources.engine import as_utc, write_transaction

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
            self._write(backend, CLOSED, 0, None, None)

    def failed(self, backend: str, error: str) -> None:
        state = self.state(backend)
        failures = (state.failures if state else 0) + 1
        now = dt.datetime.now(dt.UTC)
        if failures >= self.threshold:
            self._write(backend, OPEN, failures, now, error)
        else:
            self._write(backend, CLOSED, failures, None, error)

    def state(self, backend: str) -> BreakerState | None:
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(circuit_breakers).where(circuit_breakers.c.backend == backend)).first()
        if row is None:
            return None
        return BreakerState(row.backend, row.state, row.failures, as_utc(row.opened_at), row.last_error)

    def _write(self, backend: str, state: str, failures: int, opened_at: dt.datetime | None, error: str | None) -> None:
        with write_transaction(self._engine) as conn:
            conn.execute(sa.delete(circuit_breakers).where(circuit_breakers.c.backend == backend))
            conn.execute(
                circuit_breakers.insert().values(
                    backend=backend,
                    state=state,
                    failures=failures,
                    opened_at=opened_at,
                    last_error=(error or "")[:500] or None,
                    updated_at=dt.datetime.now(dt.UTC),
                )
            )
