"""What a run records besides its epochs: the per-batch loss points (so a reloaded page draws the thin line
too), each live change with the batch it applied from, the health statistics, and checkpoints after each epoch
within a byte budget (what a fork starts from). The same database as server/store.py (its tables are created
with the store's: server/migrations/), deleted with their run."""

from __future__ import annotations

import json
from typing import Any

from server.store import Store


class Journal:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db  # the store's database and connections, shared on purpose

    def add_progress(self, run_id: str, step: int, data: str, health: str | None) -> None:
        self.db.execute(
            "INSERT INTO progress (run_id, step, data, health) VALUES (?,?,?,?) "
            "ON CONFLICT (run_id, step) DO UPDATE SET data=excluded.data, health=excluded.health",
            (run_id, step, data, health),
        )

    def set_health(self, run_id: str, step: int, health: str) -> None:
        self.db.execute("UPDATE progress SET health=? WHERE run_id=? AND step=?", (health, run_id, step))

    def progress(self, run_id: str) -> list[tuple[str, str | None]]:
        rows = self.db.rows("SELECT data, health FROM progress WHERE run_id=? ORDER BY step", (run_id,))
        return [(r["data"], r["health"]) for r in rows]

    def add_change(self, run_id: str, data: str) -> None:
        self.db.execute(
            "INSERT INTO changes (run_id, seq, data) "
            "VALUES (?, (SELECT COALESCE(MAX(seq), 0) + 1 FROM changes WHERE run_id=?), ?)",
            (run_id, run_id, data),
        )

    def changes(self, run_id: str) -> list[dict[str, Any]]:
        rows = self.db.rows("SELECT data FROM changes WHERE run_id=? ORDER BY seq", (run_id,))
        return [json.loads(r["data"]) for r in rows]

    def add_checkpoint(self, run_id: str, epoch: int, data: bytes, budget: int) -> None:
        """Keep it, then drop the oldest checkpoints (never the newest) while the run's total is over budget;
        all in one transaction."""
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO checkpoints (run_id, epoch, data) VALUES (?,?,?) "
                "ON CONFLICT (run_id, epoch) DO UPDATE SET data=excluded.data",
                (run_id, epoch, data),
            )
            sizes = tx.rows("SELECT epoch, length(data) AS n FROM checkpoints WHERE run_id=? ORDER BY epoch", (run_id,))
            total = sum(r["n"] for r in sizes)
            for row in sizes[:-1]:
                if total <= budget:
                    break
                tx.execute("DELETE FROM checkpoints WHERE run_id=? AND epoch=?", (run_id, row["epoch"]))
                total -= row["n"]

    def checkpoint(self, run_id: str, epoch: int) -> bytes | None:
        data = self.db.scalar("SELECT data FROM checkpoints WHERE run_id=? AND epoch=?", (run_id, epoch))
        return None if data is None else bytes(data)

    def checkpoint_epochs(self, run_id: str) -> list[int]:
        rows = self.db.rows("SELECT epoch FROM checkpoints WHERE run_id=? ORDER BY epoch", (run_id,))
        return [r["epoch"] for r in rows]
