"""Applies server/migrations/postgresql/NNNN_name.sql in order, each once, recorded in ``schema_migrations``.

All of it runs in one transaction holding a transaction-level advisory lock: web replicas and workers that start
at the same moment queue behind the first, which applies what is missing; the others then find nothing to do.
A file that fails rolls everything back, so a database is never left half-migrated.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import psycopg
from psycopg.rows import tuple_row

# pg_advisory_xact_lock's key: any constant shared by every process of this project ("nnplay" in ASCII).
LOCK_KEY = 0x6E6E706C6179
FILE_NAME = re.compile(r"^(\d{4})_(\w+)\.sql$")


def migration_files() -> list[tuple[int, str, str]]:
    """(version, name, SQL) of every migration shipped with the package, in version order."""
    found = []
    for entry in (resources.files("server.migrations") / "postgresql").iterdir():
        match = FILE_NAME.match(entry.name)
        if match:
            found.append((int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found)


def migrate(connection: psycopg.Connection[Any]) -> list[int]:
    """Bring the database up to date; the versions applied now (empty when it already was)."""
    applied_now = []
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        cursor = connection.cursor(row_factory=tuple_row)
        applied = {row[0] for row in cursor.execute("SELECT version FROM schema_migrations").fetchall()}
        for version, name, sql in migration_files():
            if version not in applied:
                connection.execute(sql.encode())  # no parameters: the file may hold many statements
                connection.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
                applied_now.append(version)
    return applied_now
