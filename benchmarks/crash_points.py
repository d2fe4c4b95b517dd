"""Where the reliability harness kills a run: named points in foureyes' own transactions.

A point is recognised from the SQL the run sends (SQLAlchemy's cursor and commit events, so
nothing in foureyes knows it is watched). When ``$FOUREYES_CRASH_POINT`` names one, the run
SIGKILLs itself the ``$FOUREYES_CRASH_AT``-th time it reaches it: a real kill, from the
kernel, at exactly that point, with no ``finally`` and no rollback. ``$FOUREYES_CRASH_TALLY``
instead writes, at exit, how often each point was reached, so the harness can draw the kill's
occurrence at random from the real range.

Points, by the fault they stand for:

* mid warehouse write: ``warehouse_delete`` (the partition's old rows deleted, uncommitted),
  ``warehouse_catalog`` (new rows in, the catalog row not yet written);
* mid supervision record: ``supervision_insert`` (the verdicts written, not the supervision),
  ``supervision_commit`` (everything written, the commit not yet sent);
* between outbox enqueue and delivery: ``before_lease`` (queued, the lease not taken),
  ``leased`` (the lease committed, nothing sent yet);
* after the target applied an action, before its receipt: ``before_receipt`` (confirmed, the
  receipt not yet written). The harness also kills from the tool server's side, the moment
  it has applied an action and before it answers.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import signal
from collections import Counter
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy import event

CONTROL_TABLES = re.compile(r"^(foureyes_|dagster_|outbox|receipts|decisions|supervisions|approvals)")
_DELETE = re.compile(r'^\s*DELETE FROM "?([A-Za-z_][A-Za-z0-9_]*)"? WHERE .*partition_key', re.S)
# Outbox.lease, not its settling (psycopg's statements cast each parameter: "%(status)s::VARCHAR")
_LEASE = re.compile(r"^\s*UPDATE outbox SET status=[^,]+, lease_until=[^,]+, run_id=")
_TOUCHED = "foureyes_crash/touched"


def _writes_catalog(statement: str) -> bool:
    return statement.lstrip().startswith(("INSERT INTO foureyes_partitions", "UPDATE foureyes_partitions"))


def _lease(statement: str) -> bool:
    return bool(_LEASE.match(statement))


def _starts(prefix: str) -> Callable[[str], bool]:
    return lambda statement: statement.lstrip().startswith(prefix)


def _warehouse_delete(statement: str) -> bool:
    deleted = _DELETE.match(statement)
    return bool(deleted and not CONTROL_TABLES.match(deleted.group(1)))


# point -> (event, matcher of the statement); "commit" points match the transaction's statements
BEFORE, AFTER, COMMIT = "before", "after", "commit"
POINTS: dict[str, tuple[str, Callable[[str], bool]]] = {
    "warehouse_delete": (AFTER, _warehouse_delete),
    "warehouse_catalog": (BEFORE, _writes_catalog),
    "supervision_insert": (BEFORE, _starts("INSERT INTO supervisions")),
    "supervision_commit": (COMMIT, _starts("INSERT INTO supervisions")),
    "before_lease": (BEFORE, _lease),
    "leased": (COMMIT, _lease),
    "before_receipt": (BEFORE, _starts("INSERT INTO receipts")),
}
FAULTS: dict[str, tuple[str, ...]] = {
    "mid warehouse write": ("warehouse_delete", "warehouse_catalog"),
    "mid supervision record": ("supervision_insert", "supervision_commit"),
    "between outbox enqueue and delivery": ("before_lease", "leased"),
    "applied by the target before its receipt": ("before_receipt", "tool_server_applied"),
}


def arm_from_environment() -> None:
    """Install the kill (or the tally) the harness asked for; nothing at all otherwise."""
    if tally := os.environ.get("FOUREYES_CRASH_TALLY"):
        _arm(_tallying(tally))
    elif point := os.environ.get("FOUREYES_CRASH_POINT"):
        if point not in POINTS:
            raise SystemExit(f"FOUREYES_CRASH_POINT={point!r} is not one of {', '.join(POINTS)}")
        _arm(_killing(point, int(os.environ.get("FOUREYES_CRASH_AT", "1"))))


def _killing(point: str, at: int) -> Callable[[str], None]:
    reached = Counter()

    def reach(name: str) -> None:
        if name == point:
            reached[name] += 1
            if reached[name] == at:
                os.kill(os.getpid(), signal.SIGKILL)

    return reach


def _tallying(path: str) -> Callable[[str], None]:
    reached = Counter()
    atexit.register(lambda: open(path, "w").write(json.dumps(reached)))  # noqa: SIM115 (at exit, once)
    return lambda name: reached.update([name])


def _arm(reach: Callable[[str], None]) -> None:
    def before(conn, cursor, statement, parameters, context, executemany) -> None:
        for name, (when, matches) in POINTS.items():
            if when == BEFORE and matches(statement):
                reach(name)
            if when == COMMIT and matches(statement):
                conn.info.setdefault(_TOUCHED, set()).add(name)

    def after(conn, cursor, statement, parameters, context, executemany) -> None:
        for name, (when, matches) in POINTS.items():
            if when == AFTER and matches(statement):
                reach(name)

    def commit(conn) -> None:
        for name in sorted(conn.info.pop(_TOUCHED, ())):
            reach(name)

    def rollback(conn) -> None:
        conn.info.pop(_TOUCHED, None)

    event.listen(sa.engine.Engine, "before_cursor_execute", before)
    event.listen(sa.engine.Engine, "after_cursor_execute", after)
    event.listen(sa.engine.Engine, "commit", commit)
    event.listen(sa.engine.Engine, "rollback", rollback)
