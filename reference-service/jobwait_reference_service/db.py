"""SQLite access shared by every API family of the reference service."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Database:
    """One SQLite file, one connection per thread, writes serialised.

    WAL mode lets readers run while a writer commits; ``transaction()`` takes a
    process-wide lock so read-modify-write sequences (idempotent submit, lock rules)
    are atomic without relying on SQLite's busy handling.

    :param path: The SQLite file; created when missing.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        self._write_lock = threading.RLock()
        # journal_mode cannot change inside a transaction: set it on its own, before any DDL.
        with self._write_lock:
            self.connection().execute("PRAGMA journal_mode=WAL")

    def connection(self) -> sqlite3.Connection:
        """Return this thread's connection (rows as ``sqlite3.Row``)."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run a block as one write transaction; rolled back on any exception."""
        with self._write_lock:
            conn = self.connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def migrate(self, ddl: str) -> None:
        """Create a family's tables and indexes (idempotent DDL)."""
        with self._write_lock:
            self.connection().executescript(ddl)
