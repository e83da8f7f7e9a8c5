"""Runs, their per-epoch history and uploaded models: the one place that knows the run tables.

The rows live in whichever database server/database.py opened: the SQLite file in the data directory (the
default) or PostgreSQL (cluster mode). The SQL here is written once for both.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from server.database import Database, open_database

if TYPE_CHECKING:
    from server.settings import Settings

ACTIVE_STATES = ("queued", "running", "paused")

RUN_COLUMNS = (
    "id, name, kind, config, state, message, created_at, started_at, finished_at, epochs_done, "
    "test_accuracy, test_loss, train_seconds, parameters, has_model, owner, shared, worker, attempts, lost_workers"
)


class Store:
    def __init__(self, db: Database | Path) -> None:
        """A Database, or the path of a SQLite file (opened, and its schema brought up to date)."""
        if isinstance(db, Path):
            from server.db_sqlite import SqliteDatabase

            db = SqliteDatabase(db)
        self.db = db

    @classmethod
    def open(cls, settings: Settings) -> Store:
        """The store the settings name: PostgreSQL with a database_url, else the data directory's SQLite file."""
        return cls(open_database(settings))

    @property
    def dialect(self) -> str:
        return self.db.dialect

    @property
    def read_only(self) -> bool:
        return self.db.read_only

    def close(self) -> None:
        self.db.close()

    # ---- runs ------------------------------------------------------------------------------------

    def mark_interrupted(self, run_ids: Sequence[str] | None = None) -> int:
        """Active runs that the process stopped with: at start-up, every one (embedded mode: the previous
        process died with them); at shutdown, `run_ids` only when the database is shared."""
        sql = (
            "UPDATE runs SET state='interrupted', message='the server stopped while this run was active', "
            "finished_at=? WHERE state IN (?,?,?)"
        )
        args: list[Any] = [time.time(), *ACTIVE_STATES]
        if run_ids is not None:
            if not run_ids:
                return 0
            sql += f" AND id IN ({','.join('?' * len(run_ids))})"
            args += run_ids
        return self.db.execute(sql, args)

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
        self.db.execute(
            "INSERT INTO runs (id, name, kind, config, state, created_at, parameters, owner, shared) "
            "VALUES (?,?,?,?,?,?,?,?,?)",
            (run_id, name, kind, json.dumps(config), "queued", time.time(), parameters, owner, int(shared)),
        )

    def update_run(self, run_id: str, **fields: Any) -> None:
        if not fields:
            return
        assignments = ", ".join(f"{k}=?" for k in fields)  # keys come from our code, never from requests
        self.db.execute(f"UPDATE runs SET {assignments} WHERE id=?", (*fields.values(), run_id))

    def add_epoch(self, run_id: str, epoch: int, data: str, extras: str | None, **fields: Any) -> None:
        """One transaction: the epoch row and the run's summary move together."""
        assignments = ", ".join(f"{k}=?" for k in fields)
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO epochs (run_id, epoch, data) VALUES (?,?,?) "
                "ON CONFLICT (run_id, epoch) DO UPDATE SET data=excluded.data",
                (run_id, epoch, data),
            )
            tx.execute(
                "UPDATE runs SET extras=?, epochs_done=?, stored_bytes=stored_bytes+?"
                f"{', ' if fields else ''}{assignments} WHERE id=?",
                (extras, epoch, len(data), *fields.values(), run_id),
            )

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        rows = self.db.rows(f"SELECT {RUN_COLUMNS} FROM runs WHERE id=?", (run_id,))
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
        return [_decode_run(r) for r in self.db.rows(sql, args)]

    def runs_with_models(self) -> list[dict[str, Any]]:
        """Runs that saved a model (for the model list): a narrow query, no configs decoded."""
        return self.db.rows(
            "SELECT id, name, kind, test_accuracy, owner, shared FROM runs WHERE has_model=1 ORDER BY created_at DESC"
        )

    def add_stored_bytes(self, run_id: str, size: int) -> None:
        self.db.execute("UPDATE runs SET stored_bytes=stored_bytes+? WHERE id=?", (size, run_id))

    def owner_usage(self, owner: str) -> dict[str, int]:
        """What one owner keeps: runs stored, runs queued, uploaded models, bytes (histories + model files)."""
        with self.db.transaction() as tx:  # one snapshot of both tables
            (runs,) = tx.rows(
                "SELECT COUNT(*) AS count, COALESCE(SUM(CASE WHEN state='queued' THEN 1 ELSE 0 END), 0) AS queued, "
                "COALESCE(SUM(stored_bytes), 0) AS bytes FROM runs WHERE owner=?",
                (owner,),
            )
            (models,) = tx.rows(
                "SELECT COUNT(*) AS count, COALESCE(SUM(bytes), 0) AS bytes FROM models WHERE owner=?", (owner,)
            )
        return {
            "runs": int(runs["count"]),
            "queued": int(runs["queued"]),
            "models": int(models["count"]),
            "bytes": int(runs["bytes"]) + int(models["bytes"]),
        }

    def history(self, run_id: str) -> list[str]:
        """Epoch messages as stored JSON text, in order (sent to clients without re-encoding)."""
        return [r["data"] for r in self.db.rows("SELECT data FROM epochs WHERE run_id=? ORDER BY epoch", (run_id,))]

    def extras(self, run_id: str) -> str | None:
        extras: str | None = self.db.scalar("SELECT extras FROM runs WHERE id=?", (run_id,))
        return extras

    def delete_run(self, run_id: str) -> bool:
        return self.db.execute("DELETE FROM runs WHERE id=?", (run_id,)) > 0

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
        self.db.execute(
            "INSERT INTO models (id, name, created_at, spec, test_accuracy, owner, bytes) VALUES (?,?,?,?,?,?,?)",
            (model_id, name, time.time(), json.dumps(spec), test_accuracy, owner, size),
        )

    def get_model(self, model_id: str) -> dict[str, Any] | None:
        rows = self.db.rows("SELECT id, name, owner FROM models WHERE id=?", (model_id,))
        return rows[0] if rows else None

    def delete_model(self, model_id: str) -> bool:
        return self.db.execute("DELETE FROM models WHERE id=?", (model_id,)) > 0

    def list_models(self) -> list[dict[str, Any]]:
        rows = self.db.rows(
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
