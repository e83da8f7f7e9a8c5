"""The shared backend for cluster mode: PostgreSQL through psycopg 3 (NNPLAY_DATABASE_URL).

Connections are autocommit (each statement commits alone, as in the SQLite backend), time out after
CONNECT_TIMEOUT seconds when connecting and STATEMENT_TIMEOUT_MS per statement, and sit in a tiny pool so
request threads and training threads do not queue behind one another. The server may go away at any moment:
then every call raises DatabaseUnavailable (503 to a client) and drops its connection, and the next call opens
a fresh one, so when the server is back the process simply carries on. An idle connection the server closed
meanwhile (a restart) is noticed before use, without a round trip, and replaced.
"""

from __future__ import annotations

import contextlib
import logging
import select
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from server.database import Database, DatabaseError, DatabaseUnavailable, Session
from server.migrations.postgres_runner import migrate

log = logging.getLogger("nnplay")

CONNECT_TIMEOUT = 3  # seconds
STATEMENT_TIMEOUT_MS = 10_000
POOL_SIZE = 4  # connections open at most; more callers wait for one
CHECKOUT_TIMEOUT = CONNECT_TIMEOUT + STATEMENT_TIMEOUT_MS / 1000 + 5  # seconds a caller waits for a free one

Connection = psycopg.Connection[dict[str, Any]]


def display_name(url: str) -> str:
    """postgresql://host:port/dbname: what messages and logs may show (no user, no password)."""
    params = conninfo_to_dict(url)
    host = params.get("host") or "localhost"
    port = params.get("port") or "5432"
    dbname = params.get("dbname") or params.get("user") or ""
    return f"postgresql://{host}:{port}/{dbname}"


def placeholders(sql: str) -> str:
    """Our portable SQL's ``?`` as psycopg's ``%s`` (a literal ``%`` doubled). Our statements never hold a
    ``?`` or ``%`` inside a string literal."""
    return sql.replace("%", "%%").replace("?", "%s")


class _Statements(Session):
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def _run(self, sql: str, args: Sequence[Any], fetch: bool) -> tuple[int, list[dict[str, Any]]]:
        with self._connection.cursor() as cursor:
            cursor.execute(placeholders(sql).encode(), tuple(args))
            return cursor.rowcount, (cursor.fetchall() if fetch else [])


class PostgresDatabase(Database):
    dialect = "postgresql"

    def __init__(self, url: str, pool_size: int = POOL_SIZE) -> None:
        self._url = url
        self._password = str(conninfo_to_dict(url).get("password") or "")
        self.name = display_name(url)
        self._idle: list[Connection] = []
        self._idle_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(pool_size)
        self._migrate_lock = threading.Lock()
        self._migrated = False
        self._closed = False
        try:
            with self._connection():  # connects and brings the schema up to date now...
                pass
        except DatabaseUnavailable as exc:  # ...or at the first call that reaches the server
            log.warning("%s; the schema is checked once it answers", exc)

    # ---- Database ---------------------------------------------------------------------------------

    def _run(self, sql: str, args: Sequence[Any], fetch: bool) -> tuple[int, list[dict[str, Any]]]:
        with self._connection() as connection:
            return _Statements(connection)._run(sql, args, fetch)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        with self._connection() as connection, connection.transaction():
            yield _Statements(connection)

    def close(self) -> None:
        self._closed = True
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    # ---- connections ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _connection(self) -> Iterator[Connection]:
        """A live connection for one statement or transaction; psycopg's errors come out as ours."""
        if not self._slots.acquire(timeout=CHECKOUT_TIMEOUT):
            raise DatabaseUnavailable(self.name, f"all {POOL_SIZE} connections stayed busy")
        try:
            connection = self._checkout()
            try:
                yield connection
            except psycopg.Error as exc:
                raise self._translated(exc) from exc
            finally:
                self._checkin(connection)
        finally:
            self._slots.release()

    def _checkout(self) -> Connection:
        with self._idle_lock:
            while self._idle:
                connection = self._idle.pop()
                if _alive(connection):
                    return connection
                connection.close()
        return self._connect()

    def _checkin(self, connection: Connection) -> None:
        reusable = (
            not self._closed
            and not connection.broken
            and not connection.closed
            and connection.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        )
        if not reusable:
            connection.close()
            return
        with self._idle_lock:
            self._idle.append(connection)

    def _connect(self) -> Connection:
        try:
            connection = psycopg.connect(
                self._url,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT,
                options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
                row_factory=dict_row,
            )
        except psycopg.Error as exc:
            raise self._translated(exc) from exc
        if not self._migrated:
            try:
                with self._migrate_lock:
                    if not self._migrated:
                        applied = migrate(connection)
                        if applied:
                            log.info("%s: applied schema migrations %s", self.name, applied)
                        self._migrated = True
            except psycopg.Error as exc:
                connection.close()
                raise self._translated(exc) from exc
        return connection

    def _translated(self, exc: psycopg.Error) -> DatabaseError:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if self._password:
            reason = reason.replace(self._password, "***")
        if isinstance(exc, psycopg.OperationalError):  # unreachable, shut down, timed out: try again later
            return DatabaseUnavailable(self.name, reason)
        return DatabaseError(f"{self.name}: {reason}")


def _alive(connection: Connection) -> bool:
    """False when the server closed this idle connection (it would answer nothing but an error): an idle
    autocommit connection has nothing to read unless the server hung up on it."""
    if connection.closed or connection.broken:
        return False
    try:
        readable, _, _ = select.select([connection.pgconn.socket], [], [], 0)
    except (OSError, ValueError, psycopg.Error):
        return False
    return not readable
