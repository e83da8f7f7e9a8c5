"""The embedded SQLite file's schema: created when missing, and columns added since the first release are
added to an existing database at start (ALTER TABLE ADD COLUMN), so every user's data directory keeps working."""

from __future__ import annotations

import sqlite3

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
CREATE TABLE IF NOT EXISTS model_files (
    id TEXT PRIMARY KEY,              -- only used with a database_url: embedded mode keeps .npz files on disk
    data BLOB NOT NULL,
    saved_at REAL NOT NULL
);
"""

# Columns added after the first release: added to an existing database at start (old rows: no owner, shared).
MIGRATIONS = (
    ("runs", "owner", "TEXT"),  # the anonymous owner (server/owners.py); NULL: anyone may control it
    ("runs", "shared", "INTEGER NOT NULL DEFAULT 1"),  # others may watch it; 0: it is 404 to them
    ("runs", "stored_bytes", "INTEGER NOT NULL DEFAULT 0"),  # stored epoch JSON + model file, for the quota
    ("models", "owner", "TEXT"),
    ("models", "bytes", "INTEGER NOT NULL DEFAULT 0"),
    ("runs", "worker", "TEXT"),  # cluster mode: which worker trains it, "host:pid"
    ("runs", "heartbeat_at", "REAL"),  # cluster mode: the worker's last sign of life, seconds since the epoch
    ("runs", "attempts", "INTEGER NOT NULL DEFAULT 0"),  # cluster mode: how many times a worker took it
    ("runs", "lost_workers", "INTEGER NOT NULL DEFAULT 0"),  # cluster mode: workers lost while holding it
)
INDEXES = """
CREATE INDEX IF NOT EXISTS runs_by_time ON runs(created_at, id);
CREATE INDEX IF NOT EXISTS runs_by_owner ON runs(owner, state);
CREATE INDEX IF NOT EXISTS models_by_owner ON models(owner);
"""


def migrate(db: sqlite3.Connection) -> None:
    """Bring a writable database up to date (idempotent)."""
    db.executescript(SCHEMA)
    for table, column, declaration in MIGRATIONS:
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
    db.executescript(INDEXES)
