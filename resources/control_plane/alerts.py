"""Alerts raised by the operations sensors and the executor: a stuck agent, a failed run, an action in doubt.

They are kept in the control plane so that ``foureyes status`` shows what went wrong overnight
next to what every agent is doing now, whatever else the Dagster instance notifies.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from foureyes.resources.control_plane.schema import alerts
from foureyes.resources.engine import as_utc, write_transaction
from foureyes.resources.redaction import scrub

STUCK_AGENT, RUN_FAILED, ACTION_IN_DOUBT = "stuck_agent", "run_failed", "action_in_doubt"


@dataclass(frozen=True)
class Alert:
    kind: str
    subject: str
    message: str
    run_id: str | None
    raised_at: dt.datetime

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "message": self.message,
            "run_id": self.run_id,
            "raised_at": self.raised_at.isoformat(),
        }


class AlertBook:
    def __init__(self, engine: sa.Engine):
        self._engine = engine

    def raise_alert(self, kind: str, subject: str, message: str, run_id: str | None = None) -> Alert:
        alert = Alert(kind, subject, scrub(message)[:4000], run_id, dt.datetime.now(dt.UTC))
        with write_transaction(self._engine) as conn:
            conn.execute(
                alerts.insert().values(
                    kind=alert.kind,
                    subject=alert.subject,
                    run_id=alert.run_id,
                    message=alert.message,
                    raised_at=alert.raised_at,
                )
            )
        return alert

    def recent(self, since: dt.timedelta = dt.timedelta(hours=24), limit: int = 20) -> list[Alert]:
        """The newest alerts raised within ``since``, newest first."""
        cutoff = dt.datetime.now(dt.UTC) - since
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(alerts).where(alerts.c.raised_at >= cutoff).order_by(alerts.c.id.desc()).limit(limit)
            ).all()
        return [Alert(r.kind, r.subject, r.message, r.run_id, as_utc(r.raised_at)) for r in rows]
