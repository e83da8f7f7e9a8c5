"""Runs, their per-epoch history and uploaded models, in one SQLite file in the data directory.

Every write is its own committed transaction (WAL journal), so a process killed at any moment leaves every
finished epoch and run readable. One connection shared behind a lock: writes are tiny and rare (one per epoch),
and it keeps training threads and request handlers from tripping over SQLite's locking.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

ACTIVE_STATES = ("queued", "running", "paused")
STORAGE_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error,)  # what a failed read or write of the store raises

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,               -- 'user' or 'default' (the run that trains the default model)
    config TEXT NOT NULL,             -- RunConfig as JSON
    state TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    epochs_done INTEGER NOT NULL DEFAULT 0,
    test_accuracy REAL,
    test_loss REAL,
    train_seconds REAL NOT NULL DEFAULT 0,
    parameters INTEGER NOT NULL,
    has_model INTEGER NOT NULL DEFAULT 0,
    extras TEXT                       -- latest epoch's bulky views: first-layer filters, misclassified digits
);
CREATE TABLE IF NOT EXISTS epochs (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    data TEXT NOT NULL,               -- the epoch message as JSON, histograms included
    PRIMARY KEY (run_id, epoch)
);
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at REAL NOT NULL,
    spec TEXT NOT NULL,
    test_accuracy REAL
);
"""

# Columns added after the first release: added to an existing database at start (old rows: no owner, shared).
MIGRATIONS = (
    ("runs", "owner", "TEXT"),  # the anonymous owner (server/owners.py); NULL: anyone may control it
    ("runs", "shared", "INTEGER NOT NULL DEFAULT 1"),  # others may watch it; 0: it is 404 to them
    ("runs", "stored_bytes", "INTEGER NOT NULL DEFAULT 0"),  # stored epoch JSON + model file, for the quota
    ("runs", "worker", "TEXT"),  # cluster mode: "host:pid" of the worker that holds it
    ("runs", "heartbeat_at", "REAL"),  # cluster mode: when that worker last said it is alive
    ("runs", "attempts", "INTEGER NOT NULL DEFAULT 0"),  # cluster mode: workers that have claimed it
    ("models", "owner", "TEXT"),
    ("models", "bytes", "INTEGER NOT NULL DEFAULT 0"),
)
INDEXES = """
CREATE INDEX IF NOT EXISTS runs_by_time ON runs(created_at, id);
CREATE INDEX IF NOT EXISTS runs_by_owner ON runs(owner, state);
CREATE INDEX IF NOT EXISTS models_by_owner ON models(owner);
"""

RUN_COLUMNS = (
    "id, name, kind, config, state, message, created_at, started_at, finished_at, epochs_done, "
    "test_accuracy, test_loss, train_seconds, parameters, has_model, owner, shared, worker, attempts"
)


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.read_only = False
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(SCHEMA)
            self._migrate()
        except sqlite3.OperationalError:
            if not path.is_file():
                raise
            # A read-only data directory (or medium): serve what is there; every write answers 507.
            uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
            self._db = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
            self.read_only = True
        self._db.row_factory = sqlite3.Row

    def _migrate(self) -> None:
        for table, column, declaration in MIGRATIONS:
            present = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in present:
                self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        self._db.executescript(INDEXES)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._lock:
            return self._db.execute(sql, args)

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._db.execute(sql, args).fetchall()]

    # ---- runs ------------------------------------------------------------------------------------

    def mark_interrupted(self) -> int:
        """At start-up: runs that were active when the previous process died."""
        cur = self._exec(
            "UPDATE runs SET state='interrupted', message='the server stopped while this run was active', "
            f"finished_at=? WHERE state IN {ACTIVE_STATES}",
            (time.time(),),
        )
        return cur.rowcount

    def create_run(
        self,
        run_id: str,
        name: str,
        kind: str,
        config: dict[str, Any],
        parameters: int,
        owner: str | None = None,
        shared: bool = True,
    ) -> None:
        self._exec(
            "INSERT INTO runs (id, name, kind, config, state, created_at, parameters, owner, shared) "
            "VALUES (?,?,?,?,?,?,?,?,?)",
            (run_id, name, kind, json.dumps(config), "queued", time.time(), parameters, owner, int(shared)),
        )

    def update_run(self, run_id: str, **fields: Any) -> None:
        if not fields:
            return
        assignments = ", ".join(f"{k}=?" for k in fields)  # keys come from our code, never from requests
        self._exec(f"UPDATE runs SET {assignments} WHERE id=?", (*fields.values(), run_id))

    def add_epoch(self, run_id: str, epoch: int, data: str, extras: str | None, **fields: Any) -> None:
        """One transaction: the epoch row and the run's summary move together."""
        assignments = ", ".join(f"{k}=?" for k in fields)
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO epochs (run_id, epoch, data) VALUES (?,?,?)",
                    (run_id, epoch, data),
                )
                self._db.execute(
                    "UPDATE runs SET extras=?, epochs_done=?, stored_bytes=stored_bytes+?"
                    f"{', ' if fields else ''}{assignments} WHERE id=?",
                    (extras, epoch, len(data), *fields.values(), run_id),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        rows = self._rows(f"SELECT {RUN_COLUMNS} FROM runs WHERE id=?", (run_id,))
        return _decode_run(rows[0]) if rows else None

    def list_runs(
        self,
        limit: int | None = None,
        before: tuple[float, str] | None = None,
        viewer: str | None = None,
        everything: bool = True,
    ) -> list[dict[str, Any]]:
        """Newest first. `before` (created_at, id) is the cursor: rows strictly older than it. Unless
        `everything`, only shared runs, runs without an owner and the viewer's own."""
        where: list[str] = []
        args: list[Any] = []
        if before is not None:
            where.append("(created_at < ? OR (created_at = ? AND id < ?))")
            args += [before[0], before[0], before[1]]
        if not everything:
            where.append("(shared = 1 OR owner IS NULL OR owner = ?)")
            args.append(viewer)
        sql = f"SELECT {RUN_COLUMNS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [_decode_run(r) for r in self._rows(sql, tuple(args))]

    def runs_with_models(self) -> list[dict[str, Any]]:
        """Runs that saved a model (for the model list): a narrow query, no configs decoded."""
        return self._rows(
            "SELECT id, name, kind, test_accuracy, owner, shared FROM runs WHERE has_model=1 ORDER BY created_at DESC"
        )

    def add_stored_bytes(self, run_id: str, size: int) -> None:
        self._exec("UPDATE runs SET stored_bytes=stored_bytes+? WHERE id=?", (size, run_id))

    def owner_usage(self, owner: str) -> dict[str, int]:
        """What one owner keeps: runs stored, runs queued, uploaded models, bytes (histories + model files)."""
        with self._lock:
            runs, queued, run_bytes = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(state='queued'), 0), COALESCE(SUM(stored_bytes), 0) "
                "FROM runs WHERE owner=?",
                (owner,),
            ).fetchone()
            models, model_bytes = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM models WHERE owner=?", (owner,)
            ).fetchone()
        return {"runs": runs, "queued": queued, "models": models, "bytes": run_bytes + model_bytes}

    def history(self, run_id: str) -> list[str]:
        """Epoch messages as stored JSON text, in order (sent to clients without re-encoding)."""
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT data FROM epochs WHERE run_id=? ORDER BY epoch", (run_id,))]

    def extras(self, run_id: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT extras FROM runs WHERE id=?", (run_id,)).fetchone()
        return row[0] if row else None

    def delete_run(self, run_id: str) -> bool:
        return self._exec("DELETE FROM runs WHERE id=?", (run_id,)).rowcount > 0

    # ---- uploaded models ---------------------------------------------------------------------------

    def add_model(
        self,
        model_id: str,
        name: str,
        spec: dict[str, Any],
        test_accuracy: float | None,
        owner: str | None = None,
        size: int = 0,
    ) -> None:
        self._exec(
            "INSERT INTO models (id, name, created_at, spec, test_accuracy, owner, bytes) VALUES (?,?,?,?,?,?,?)",
            (model_id, name, time.time(), json.dumps(spec), test_accuracy, owner, size),
        )

    def get_model(self, model_id: str) -> dict[str, Any] | None:
        rows = self._rows("SELECT id, name, owner FROM models WHERE id=?", (model_id,))
        return rows[0] if rows else None

    def delete_model(self, model_id: str) -> bool:
        return self._exec("DELETE FROM models WHERE id=?", (model_id,)).rowcount > 0

    def list_models(self) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT id, name, created_at, spec, test_accuracy, owner FROM models ORDER BY created_at DESC"
        )
        for r in rows:
            r["spec"] = json.loads(r["spec"])
        return rows


def _decode_run(row: dict[str, Any]) -> dict[str, Any]:
    row["config"] = json.loads(row["config"])
    row["has_model"] = bool(row["has_model"])
    row["shared"] = bool(row.get("shared", 1))
    return row
