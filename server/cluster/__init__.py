"""Cluster mode: runs train on Celery workers, events travel over Redis, PostgreSQL keeps the record.

    browser ──HTTP/WS──> web replica(s) ──send_task──> Redis (broker list "nnplay") ──> worker(s)
                               ^  │                                                      │
                               │  └─RPUSH commands (pause/stop/step/set)──> Redis ───────┤ BLPOP
                               └──────── pub/sub "nnplay:events:<run>" <─── publish ─────┤
                         PostgreSQL <───── runs, epochs, checkpoints, model files ──────┘ (and read by the web)

The web tier never trains: it validates, stores the queued run and sends a task. A worker claims the run in
the database (idempotent: a redelivered task finds it claimed and does nothing), trains it with the same
engine and recorder as the embedded mode, beats a heartbeat into the run's row, and publishes every message
on the run's channel; each web replica relays the channels to its WebSocket clients. A run whose worker
stops beating is requeued from its last epoch checkpoint (server/cluster/dispatch.py)."""
