"""What a run records besides its epochs: the per-batch loss points (so a reloaded page draws the thin line
too), each live change with the batch it applied from, the health statistics, and checkpoints after each epoch
within a byte budget (what a fork starts from). Same SQLite file and connection as server/store.py; its own
tables, deleted with their run."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from typing import Any

from server.store import Store

SCHEMA = """
CREATE TABLE IF NOT EXISTS progress (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,            -- global batch index
    data TEXT NOT NULL,               -- the progress message as JSON (loss since the previous point, lr, ...)
    health TEXT,                      -- the health message of the same tick, as JSON
    PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS changes (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    data TEXT NOT NULL,               -- the change message as JSON: step, epoch, name, old, new
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    data BLOB NOT NULL,               -- engine/checkpoint.py's .npz
    PRIMARY KEY (run_id, epoch)
);
"""


class Journal:
    def __init__(self, store: Store) -> None:
        self.store = store
        with contextlib.suppress(sqlite3.OperationalError):  # a read-only database: nothing new is written anyway
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    store._exec(statement)  # the store's connection and lock, shared on purpose

    def add_progress(self, run_id: str, step: int, data: str, health: str | None) -> None:
        self.store._exec(
            "INSERT OR REPLACE INTO progress (run_id, step, data, health) VALUES (?,?,?,?)",
            (run_id, step, data, health),
        )

    def set_health(self, run_id: str, step: int, health: str) -> None:
        self.store._exec("UPDATE progress SET health=? WHERE run_id=? AND step=?", (health, run_id, step))

    def progress(self, run_id: str) -> list[tuple[str, str | None]]:
        rows = self.store._rows("SELECT data, health FROM progress WHERE run_id=? ORDER BY step", (run_id,))
        return [(r["data"], r["health"]) for r in rows]

    def add_change(self, run_id: str, data: str) -> None:
        self.store._exec(
            "INSERT INTO changes (run_id, seq, data) "
            "VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM changes WHERE run_id=?), ?)",
            (run_id, run_id, data),
        )

    def changes(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.store._rows("SELECT data FROM changes WHERE run_id=? ORDER BY seq", (run_id,))
        return [json.loads(r["data"]) for r in rows]

    def add_checkpoint(self, run_id: str, epoch: int, data: bytes, budget: int) -> None:
        """Keep it, then drop the oldest checkpoints (never the newest) while the run's total is over budget."""
        self.store._exec(
            "INSERT OR REPLACE INTO checkpoints (run_id, epoch, data) VALUES (?,?,?)", (run_id, epoch, data)
        )
        sizes = self.store._rows(
            "SELECT epoch, length(data) AS n FROM checkpoints WHERE run_id=? ORDER BY epoch", (run_id,)
        )
        total = sum(r["n"] for r in sizes)
        for row in sizes[:-1]:
            if total <= budget:
                break
            self.store._exec("DELETE FROM checkpoints WHERE run_id=? AND epoch=?", (run_id, row["epoch"]))
            total -= row["n"]

    def checkpoint(self, run_id: str, epoch: int) -> bytes | None:
        rows = self.store._rows("SELECT data FROM checkpoints WHERE run_id=? AND epoch=?", (run_id, epoch))
        return bytes(rows[0]["data"]) if rows else None

    def checkpoint_epochs(self, run_id: str) -> list[int]:
        rows = self.store._rows("SELECT epoch FROM checkpoints WHERE run_id=? ORDER BY epoch", (run_id,))
        return [r["epoch"] for r in rows]
