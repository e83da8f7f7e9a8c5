"""The embedded backend: one SQLite file in the data directory, the default.

Every write is its own committed transaction (WAL journal), so a process killed at any moment leaves every
finished epoch and run readable. One connection shared behind a lock: writes are tiny and rare (one per epoch),
and it keeps training threads and request handlers from tripping over SQLite's locking. A data directory that
cannot be written is opened read-only: everything is served, every write fails with sqlite3.Error (507).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from server.database import Database, Session
from server.migrations import sqlite as schema


class _Statements(Session):
    """Statements on a connection whose lock the caller already holds (inside a transaction)."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def _run(self, sql: str, args: Sequence[Any], fetch: bool) -> tuple[int, list[dict[str, Any]]]:
        cursor = self._connection.execute(sql, tuple(args))
        found = [dict(row) for row in cursor.fetchall()] if fetch else []
        return cursor.rowcount, found


class SqliteDatabase(Database):
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.read_only = False
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            schema.migrate(self._db)
        except sqlite3.OperationalError:
            if not path.is_file():
                raise
            # A read-only data directory (or medium): serve what is there; every write answers 507.
            uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
            self.read_only = True
        self._db.row_factory = sqlite3.Row
        self._statements = _Statements(self._db)

    def _run(self, sql: str, args: Sequence[Any], fetch: bool) -> tuple[int, list[dict[str, Any]]]:
        with self._lock:
            return self._statements._run(sql, args, fetch)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield self._statements
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self._db.close()
