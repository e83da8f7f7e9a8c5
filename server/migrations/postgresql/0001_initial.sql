-- The run store on PostgreSQL: the same tables as the embedded SQLite file (server/migrations/sqlite.py),
-- REAL as DOUBLE PRECISION, BLOB as BYTEA, and the cluster-mode columns from the start.

CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,                        -- 'user' or 'default' (the run that trains the default model)
    config TEXT NOT NULL,                      -- RunConfig as JSON
    state TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    created_at DOUBLE PRECISION NOT NULL,      -- seconds since the epoch, as everywhere here
    started_at DOUBLE PRECISION,
    finished_at DOUBLE PRECISION,
    epochs_done INTEGER NOT NULL DEFAULT 0,
    test_accuracy DOUBLE PRECISION,
    test_loss DOUBLE PRECISION,
    train_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
    parameters INTEGER NOT NULL,
    has_model INTEGER NOT NULL DEFAULT 0,
    extras TEXT,                               -- latest epoch's bulky views: first-layer filters, misclassified
    owner TEXT,                                -- the anonymous owner (server/owners.py); NULL: anyone controls it
    shared INTEGER NOT NULL DEFAULT 1,         -- others may watch it; 0: it is 404 to them
    stored_bytes INTEGER NOT NULL DEFAULT 0,   -- stored epoch JSON + model file, for the quota
    worker TEXT,                               -- which worker trains it, "host:pid"
    heartbeat_at DOUBLE PRECISION,             -- the worker's last sign of life
    attempts INTEGER NOT NULL DEFAULT 0        -- how many times a worker took it
);

CREATE TABLE epochs (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    data TEXT NOT NULL,                        -- the epoch message as JSON, histograms included
    PRIMARY KEY (run_id, epoch)
);

CREATE TABLE models (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    spec TEXT NOT NULL,
    test_accuracy DOUBLE PRECISION,
    owner TEXT,
    bytes INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE progress (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,                     -- global batch index
    data TEXT NOT NULL,                        -- the progress message as JSON
    health TEXT,                               -- the health message of the same tick, as JSON
    PRIMARY KEY (run_id, step)
);

CREATE TABLE changes (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    data TEXT NOT NULL,                        -- the change message as JSON: step, epoch, name, old, new
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE checkpoints (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL,
    data BYTEA NOT NULL,                       -- engine/checkpoint.py's .npz
    PRIMARY KEY (run_id, epoch)
);

CREATE TABLE model_files (
    id TEXT PRIMARY KEY,                       -- 'default', a run id or an uploaded model's id
    data BYTEA NOT NULL,                       -- the .npz, at most max_model_bytes
    saved_at DOUBLE PRECISION NOT NULL         -- what the model cache keys on
);

CREATE INDEX runs_by_time ON runs(created_at, id);
CREATE INDEX runs_by_owner ON runs(owner, state);
CREATE INDEX models_by_owner ON models(owner);
