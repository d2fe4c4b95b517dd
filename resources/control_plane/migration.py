"""Bringing a control-plane store of the previous schema version up to this one, in place.

Version 5 added principals, their tokens and the audit trail (new tables, created like any
other), and bound approvals to what they approve: a digest of each approval's arguments and
a revision for the compare-and-swap, and on each vote how it was authenticated and what it
approved. The new columns are added, and every existing approval gets its digest from the
arguments it holds, so a pending approval of version 4 can still be decided. Nothing is
dropped or rewritten.
"""

from __future__ import annotations

import sqlalchemy as sa

from foureyes.resources.control_plane.approvals import arguments_digest
from foureyes.resources.control_plane.schema import approval_votes, approvals

MIGRATES_FROM = "4"
_ADDED = {
    approvals: ("arguments_digest", "revision"),
    approval_votes: ("authenticated_by", "proposals_version", "arguments_digest"),
}


def migrate(conn: sa.Connection) -> None:
    """Add version 5's columns to a version 4 store and digest its approvals (inside the caller's transaction)."""
    preparer = conn.dialect.identifier_preparer
    present = {table: {c["name"] for c in sa.inspect(conn).get_columns(table.name)} for table in _ADDED}
    for table, names in _ADDED.items():
        for name in names:
            if name not in present[table]:
                column = sa.schema.CreateColumn(table.c[name]).compile(dialect=conn.dialect)
                conn.exec_driver_sql(f"ALTER TABLE {preparer.format_table(table)} ADD COLUMN {column}")
    rows = conn.execute(
        sa.select(approvals.c.approval_id, approvals.c.action, approvals.c.target, approvals.c.payload).where(
            approvals.c.arguments_digest.is_(None)
        )
    ).all()
    for row in rows:
        conn.execute(
            approvals.update()
            .where(approvals.c.approval_id == row.approval_id)
            .values(arguments_digest=arguments_digest(row.action, row.target, row.payload))
        )
