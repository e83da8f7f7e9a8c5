"""Who trains which run, in the run's own row: a worker claims a queued run (one UPDATE, so two workers
handed the same task cannot both win), beats a heartbeat into it while it trains, and a run whose heartbeat
stops is requeued by whichever web replica sweeps first (one UPDATE again, so it is requeued once).

Times are the web's and workers' own clocks (time.time()); machines of one cluster are expected to keep
them within a second or two of each other (NTP), far below ``worker_lost_after``."""

from __future__ import annotations

import json
import time
from typing import Any

from server.store import Store


def _execute(store: Store, sql: str, args: tuple[Any, ...]) -> int:
    """Rows changed."""
    return store.db.execute(sql, args)


def claim(store: Store, run_id: str, worker: str) -> dict[str, Any] | None:
    """The run's row if this worker now holds it; None when it is not queued (claimed, stopped or deleted)."""
    now = time.time()
    changed = _execute(
        store,
        "UPDATE runs SET state='running', worker=?, heartbeat_at=?, attempts=attempts+1, message='', "
        "started_at=COALESCE(started_at, ?) WHERE id=? AND state='queued'",
        (worker, now, now, run_id),
    )
    return store.get_run(run_id) if changed else None


def beat(store: Store, run_id: str, worker: str) -> bool:
    """False when the run is no longer this worker's (requeued after a silence, stopped, or deleted)."""
    return _execute(store, "UPDATE runs SET heartbeat_at=? WHERE id=? AND worker=?", (time.time(), run_id, worker)) > 0


def finish(store: Store, run_id: str, worker: str, **fields: Any) -> bool:
    """Record the end, only if the run is still this worker's."""
    assignments = ", ".join(f"{k}=?" for k in fields)  # keys come from our code
    sql = f"UPDATE runs SET {assignments} WHERE id=? AND worker=? AND state IN ('running', 'paused')"
    return _execute(store, sql, (*fields.values(), run_id, worker)) > 0


def lost(store: Store, silent_for: float) -> list[dict[str, Any]]:
    """Active runs whose worker has been silent for ``silent_for`` seconds."""
    return store.db.rows(
        "SELECT id, worker, lost_workers, epochs_done FROM runs "
        "WHERE state IN ('running', 'paused') AND heartbeat_at < ?",
        (time.time() - silent_for,),
    )


def requeue(store: Store, run_id: str, worker: str, message: str, lost: bool) -> bool:
    """Back to the queue (from its last checkpoint), if the worker still holds it: handed back by a worker
    shutting down, or taken from a silent one (``lost``; only one sweeper wins)."""
    return (
        _execute(
            store,
            "UPDATE runs SET state='queued', worker=NULL, message=?, lost_workers=lost_workers+? "
            "WHERE id=? AND worker=? AND state IN ('running', 'paused')",
            (message, int(lost), run_id, worker),
        )
        > 0
    )


def give_up(store: Store, run_id: str, worker: str, message: str) -> bool:
    return (
        _execute(
            store,
            "UPDATE runs SET state='interrupted', message=?, finished_at=?, worker=NULL, "
            "lost_workers=lost_workers+1 WHERE id=? AND worker=? "
            "AND state IN ('running', 'paused')",
            (message, time.time(), run_id, worker),
        )
        > 0
    )


def stop_queued(store: Store, run_id: str, message: str) -> bool:
    """A queued run stopped before any worker claimed it (the claim then fails)."""
    return (
        _execute(
            store,
            "UPDATE runs SET state='stopped', message=?, finished_at=? WHERE id=? AND state='queued'",
            (message, time.time(), run_id),
        )
        > 0
    )


def queue_position(store: Store, run_id: str, created_at: float) -> int:
    """1 for the next run a free worker takes."""
    rows = store.db.rows(
        "SELECT COUNT(*) AS n FROM runs WHERE state='queued' AND (created_at < ? OR (created_at = ? AND id < ?))",
        (created_at, created_at, run_id),
    )
    return int(rows[0]["n"]) + 1


def counts(store: Store) -> tuple[int, int]:
    """(training, queued) across the cluster."""
    rows = store.db.rows(
        "SELECT COALESCE(SUM(CASE WHEN state='queued' THEN 0 ELSE 1 END), 0) AS training, "
        "COALESCE(SUM(CASE WHEN state='queued' THEN 1 ELSE 0 END), 0) AS queued "
        "FROM runs WHERE state IN ('queued', 'running', 'paused')",
    )
    return int(rows[0]["training"]), int(rows[0]["queued"])


def prepare_resume(store: Store, run_id: str, epoch: int, step: int) -> list[dict[str, Any]]:
    """Before a requeued run goes on after ``epoch`` (batch ``step``): forget what its lost worker did after
    that point (the epoch rows, batch points and changes), and hand back those changes to replay."""
    with store.db.transaction() as tx:
        rows = tx.rows("SELECT seq, data FROM changes WHERE run_id=? ORDER BY seq", (run_id,))
        later = [(r["seq"], json.loads(r["data"])) for r in rows]
        replay = [change for seq, change in later if int(change["step"]) >= step]
        first = min((seq for seq, change in later if int(change["step"]) >= step), default=None)
        tx.execute("DELETE FROM epochs WHERE run_id=? AND epoch>?", (run_id, epoch))
        tx.execute("DELETE FROM progress WHERE run_id=? AND step>?", (run_id, step))
        if first is not None:
            tx.execute("DELETE FROM changes WHERE run_id=? AND seq>=?", (run_id, first))
        tx.execute("UPDATE runs SET epochs_done=? WHERE id=?", (epoch, run_id))
    return replay


def waiting_since(store: Store, older_than: float) -> list[str]:
    """Queued runs that have waited ``older_than`` seconds since they were created or last given back."""
    rows = store.db.rows(
        "SELECT id FROM runs WHERE state='queued' AND COALESCE(heartbeat_at, created_at) < ? ORDER BY created_at",
        (time.time() - older_than,),
    )
    return [r["id"] for r in rows]


def ended_among(store: Store, run_ids: list[str]) -> list[dict[str, Any]]:
    """Of these runs, those the database says have ended (or are gone)."""
    if not run_ids:
        return []
    marks = ", ".join("?" for _ in run_ids)
    rows = store.db.rows(
        f"SELECT id, state, message, test_accuracy, has_model FROM runs WHERE id IN ({marks})", tuple(run_ids)
    )
    found = {r["id"]: r for r in rows}
    return [
        found.get(i)
        or {"id": i, "state": "deleted", "message": "the run was deleted", "test_accuracy": None, "has_model": False}
        for i in run_ids
        if i not in found or found[i]["state"] not in ("queued", "running", "paused")
    ]
