"""What a process remembers of a store's schema, so that writes skip catalog queries.

Tables are only ever created or widened by foureyes, so once a table (and its columns) is
seen committed, a long-lived process — a code server, the daemon — need not ask again. But
the store can change under it: a SQLite file deleted, a database recreated. The memory is
therefore only a hint. A statement that fails while something of its store was remembered
makes the process forget that store, and the caller's transaction (rolled back whole) runs
once more, checking the catalog as a fresh process would.
"""

import threading
from collections.abc import Callable, Mapping
from typing import TypeVar

import sqlalchemy as sa

# what a missing table raises on SQLite (OperationalError) and PostgreSQL (ProgrammingError)
_MISSING_TABLE_ERRORS = (sa.exc.OperationalError, sa.exc.ProgrammingError)
T = TypeVar("T")


class SchemaMemory:
    """Tables known to exist, with the columns known to exist in them, per store."""

    def __init__(self) -> None:
        self._tables: dict[tuple[str, str], dict[str, str]] = {}
        self._lock = threading.Lock()

    def columns(self, store: str, table: str) -> Mapping[str, str] | None:
        """The remembered columns (name -> kind) of ``table``, or None if it is not known to exist."""
        return self._tables.get((store, table))

    def remember(self, store: str, table: str, columns: Mapping[str, str] | None = None) -> None:
        """After a commit: ``table`` exists in ``store``, with at least ``columns``."""
        with self._lock:
            self._tables.setdefault((store, table), {}).update(columns or {})

    def forget(self, store: str) -> bool:
        """Forget everything about ``store``; whether anything was remembered."""
        with self._lock:
            stale = [key for key in self._tables if key[0] == store]
            for key in stale:
                del self._tables[key]
        return bool(stale)

    def trusting(self, store: str, transaction: Callable[[], T]) -> T:
        """Run ``transaction``; if it fails while ``store`` was remembered, forget it and run it once more."""
        try:
            return transaction()
        except _MISSING_TABLE_ERRORS:
            if not self.forget(store):
                raise
            return transaction()
