"""The one seam between the run store and a database engine, so the same Store and Journal run on the embedded
SQLite file (the default) or on a shared PostgreSQL server (NNPLAY_DATABASE_URL, for cluster mode).

SQL is written once, with ``?`` placeholders, in the subset both engines speak (``INSERT ... ON CONFLICT``,
``CASE`` instead of boolean sums, bytes for blobs); each backend adapts the rest. Every statement outside
``transaction()`` commits on its own.
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from server.settings import Settings

Dialect = Literal["sqlite", "postgresql"]


class DatabaseError(Exception):
    """A storage failure of the PostgreSQL backend (SQLite's own sqlite3.Error is kept as it is)."""


class DatabaseUnavailable(DatabaseError):
    """The database server cannot be reached (or timed out); the next call tries again by itself."""

    def __init__(self, database: str, reason: str) -> None:
        super().__init__(f"the database {database} is unreachable: {reason}")
        self.database = database
        self.reason = reason


# What code that survives a storage failure catches: either backend's errors (and, with model files, the disk's).
STORAGE_ERRORS = (sqlite3.Error, DatabaseError)
FILE_OR_STORAGE_ERRORS = (OSError, sqlite3.Error, DatabaseError)


class Session(ABC):
    """Where statements run: the database itself (each statement commits alone) or one open transaction."""

    @abstractmethod
    def _run(self, sql: str, args: Sequence[Any], fetch: bool) -> tuple[int, list[dict[str, Any]]]:
        """Run one statement: its rowcount, and its rows as dicts when ``fetch``."""

    def execute(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run a statement; the number of rows it changed."""
        return self._run(sql, args, False)[0]

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return self._run(sql, args, True)[1]

    def scalar(self, sql: str, args: Sequence[Any] = ()) -> Any:
        """The first column of the first row; None when there is no row."""
        found = self.rows(sql, args)
        return next(iter(found[0].values())) if found else None


class Database(Session):
    dialect: Dialect
    read_only: bool = False
    name: str  # for messages: a path, or postgresql://host:port/dbname (never a password)

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Session]:
        """``with db.transaction() as tx: tx.execute(...)``: every statement in the block commits together,
        or none does (an exception rolls back and propagates)."""

    @abstractmethod
    def close(self) -> None: ...


def open_database(settings: Settings) -> Database:
    """PostgreSQL when NNPLAY_DATABASE_URL is set, else the SQLite file in the data directory. Either comes
    back with its schema up to date."""
    if settings.database_url is not None:
        from server.db_postgres import PostgresDatabase  # psycopg is imported only in this mode

        return PostgresDatabase(settings.database_url.get_secret_value())
    from server.db_sqlite import SqliteDatabase

    return SqliteDatabase(settings.db_path)
