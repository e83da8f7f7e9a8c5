"""Cluster mode under faults, every part real: redis-server, PostgreSQL, `nnplay worker` processes and
`nnplay serve` web replicas (tests/servers.py, tests/conftest.py). A worker killed with -9 mid-run, the web
tier restarted while workers train, Redis restarted, PostgreSQL stopped."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import psycopg
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.conftest import Cluster, LiveServer, RedisServer, start_server, stop_server

# about 0.3-1 s an epoch here: long enough to act between epochs, short enough for the suite
RUN = {"layers": [{"units": 64}], "batch_size": 50, "train_subset": 20000, "learning_rate": 0.01, "seed": 11}
ACTIVE = ("queued", "running", "paused")


@pytest.fixture
def web(cluster: Cluster, tmp_path: Path) -> Iterator[LiveServer]:
    server = start_web(cluster, tmp_path, "web")
    yield server
    stop_server(server)


def start_web(cluster: Cluster, tmp_path: Path, name: str) -> LiveServer:
    return start_server(cluster.settings.data_dir, tmp_path / f"{name}.log", cluster.env)


def run_of(server: LiveServer, run_id: str) -> dict:
    answer = httpx.get(f"{server.url}/api/runs/{run_id}", timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def wait_until(predicate, timeout: float, every: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"not within {timeout} s")


class Watcher(threading.Thread):
    """A page watching one run through one replica: its epochs, reconnecting (as the page does) when the
    socket closes before the run's end."""

    def __init__(self, servers: list[LiveServer], run_id: str) -> None:
        super().__init__(daemon=True)
        self.servers, self.run_id = servers, run_id
        self.epochs: list[int] = []  # live epoch messages, in order of arrival
        self.snapshots: list[list[int]] = []  # the epochs of each snapshot
        self.end: dict | None = None
        self.reconnects = 0

    def run(self) -> None:
        deadline = time.monotonic() + 120
        while self.end is None and time.monotonic() < deadline:
            server = self.servers[self.reconnects % len(self.servers)]
            try:
                with connect(f"{server.ws_url}/ws/runs/{self.run_id}", open_timeout=5) as ws:
                    for text in ws:
                        message = json.loads(text)
                        if message["type"] == "snapshot":
                            self.snapshots.append([h["epoch"] for h in message["run"]["history"]])
                        elif message["type"] == "epoch":
                            self.epochs.append(message["epoch"])
                        elif message["type"] == "end":
                            self.end = message
                            return
            except (OSError, ConnectionClosed, TimeoutError):
                pass
            self.reconnects += 1
            time.sleep(0.2)

    def seen(self) -> set[int]:
        return {e for snapshot in self.snapshots for e in snapshot} | set(self.epochs)


def weights(server: LiveServer, run_id: str) -> dict[str, np.ndarray]:
    payload = httpx.get(f"{server.url}/api/runs/{run_id}/model", timeout=30).content
    with np.load(io.BytesIO(payload), allow_pickle=False) as data:
        return {k: data[k] for k in data.files if k != "header"}


def test_a_worker_killed_mid_run_is_replaced_and_the_run_ends_as_if_nothing_happened(
    cluster: Cluster, tmp_path: Path, web: LiveServer
) -> None:
    """kill -9 of the worker holding a run: within 30 s the run is requeued from its last epoch checkpoint on
    the other worker, a page watching through the other replica sees every epoch once, and the model is bit for
    bit the one an uninterrupted run makes (checkpoints hold the optimizer and random generators too)."""
    cluster.add_worker()
    other = start_web(cluster, tmp_path, "web2")
    try:
        run_id = httpx.post(f"{web.url}/api/runs", json={**RUN, "epochs": 6}, timeout=10).json()["id"]
        watcher = Watcher([other], run_id)
        watcher.start()
        first = wait_until(lambda: (r := run_of(web, run_id))["epochs_done"] >= 2 and r, 60)
        victim = next(w for w in cluster.workers if first["worker"].endswith(f":{w.pid}"))
        victim.kill()
        killed_at = time.monotonic()
        moved = wait_until(lambda: (r := run_of(web, run_id))["worker"] not in (None, first["worker"]) and r, 30)
        requeue_seconds = time.monotonic() - killed_at
        done = wait_until(lambda: (r := run_of(other, run_id))["state"] not in ACTIVE and r, 120)
        watcher.join(30)
    finally:
        stop_server(other)
    print(f"requeued after {requeue_seconds:.1f} s; {first['worker']} -> {moved['worker']}")
    assert requeue_seconds < 30
    assert done["state"] == "finished", done["message"]
    assert (done["attempts"], done["lost_workers"]) == (2, 1) and done["worker"] == moved["worker"]
    assert [h["epoch"] for h in done["history"]] == [1, 2, 3, 4, 5, 6]
    assert watcher.end is not None and watcher.end["state"] == "finished"
    assert watcher.seen() == {1, 2, 3, 4, 5, 6}
    assert len(watcher.epochs) == len(set(watcher.epochs))  # no epoch announced twice
    # the same config without a fault: the same weights, bit for bit
    again = httpx.post(f"{web.url}/api/runs", json={**RUN, "epochs": 6}, timeout=10).json()["id"]
    wait_until(lambda: run_of(web, again)["state"] not in ACTIVE, 120)
    ours, theirs = weights(web, run_id), weights(web, again)
    assert ours.keys() == theirs.keys() and all(np.array_equal(ours[k], theirs[k]) for k in ours)


def test_a_web_restart_leaves_training_alone_and_pages_pick_up_where_they_were(
    cluster: Cluster, tmp_path: Path
) -> None:
    web = start_web(cluster, tmp_path, "web")
    run_id = httpx.post(f"{web.url}/api/runs", json={**RUN, "epochs": 8}, timeout=10).json()["id"]
    watcher = Watcher([web], run_id)
    watcher.start()
    wait_until(lambda: watcher.epochs, 60)
    stop_server(web)  # SIGTERM: the replica goes; the worker trains on
    database = cluster.settings.database_url
    assert database is not None

    def epochs_stored() -> int:
        with psycopg.connect(database.get_secret_value()) as db:
            row = db.execute("SELECT epochs_done, state FROM runs WHERE id=%s", (run_id,)).fetchone()
        assert row is not None and row[1] == "running"  # not marked interrupted by the replica's shutdown
        return int(row[0])

    before = epochs_stored()
    wait_until(lambda: epochs_stored() > before, 30)  # training went on with no web tier at all
    restarted = start_server(cluster.settings.data_dir, tmp_path / "web-again.log", cluster.env)
    try:
        watcher.servers = [restarted]
        watcher.join(90)
        done = run_of(restarted, run_id)
    finally:
        stop_server(restarted)
    assert done["state"] == "finished" and len(done["history"]) == 8
    assert watcher.end is not None and watcher.end["state"] == "finished"
    assert watcher.reconnects >= 1 and len(watcher.snapshots) >= 2
    assert watcher.seen() == set(range(1, 9))


def test_redis_restarted_mid_run_everything_reconnects_and_no_stored_epoch_is_lost(
    cluster: Cluster, redis_server: RedisServer, web: LiveServer
) -> None:
    run_id = httpx.post(f"{web.url}/api/runs", json={**RUN, "epochs": 8}, timeout=10).json()["id"]
    waiting = httpx.post(f"{web.url}/api/runs", json={**RUN, "epochs": 1}, timeout=10).json()["id"]
    wait_until(lambda: run_of(web, run_id)["epochs_done"] >= 1, 60)
    assert run_of(web, waiting)["state"] == "queued"  # one worker, busy: its task waits in Redis
    redis_server.stop()  # nothing persisted: the waiting run's task is gone with it
    time.sleep(2)
    assert httpx.post(f"{web.url}/api/runs", json={**RUN, "epochs": 1}, timeout=30).status_code == 503
    redis_server.start()
    done = wait_until(lambda: (r := run_of(web, run_id))["state"] not in ACTIVE and r, 120)
    assert done["state"] == "finished" and [h["epoch"] for h in done["history"]] == list(range(1, 9))
    # the web tier sent the waiting run's task again when it saw Redis back
    assert wait_until(lambda: (r := run_of(web, waiting))["state"] not in ACTIVE and r, 60)["state"] == "finished"
    # the web tier and the worker reconnected by themselves: a new run is taken, trained and watched live
    after = httpx.post(f"{web.url}/api/runs", json={**RUN, "epochs": 2}, timeout=30)
    assert after.status_code == 201, after.text
    watcher = Watcher([web], after.json()["id"])
    watcher.start()
    watcher.join(90)
    assert watcher.end is not None and watcher.end["state"] == "finished"
    assert watcher.seen() == {1, 2}


def test_postgresql_away_is_a_503_naming_it_and_then_it_comes_back(
    cluster: Cluster,
    postgres_server,
    web: LiveServer,  # type: ignore[no-untyped-def]
) -> None:
    postgres_server.stop()
    try:
        answer = httpx.get(f"{web.url}/api/runs", timeout=30)
        assert answer.status_code == 503 and "postgresql://" in answer.json()["detail"]
        assert "password" not in answer.text
    finally:
        postgres_server.start()
    assert wait_until(lambda: httpx.get(f"{web.url}/api/runs", timeout=30).status_code == 200, 30)
    run_id = httpx.post(f"{web.url}/api/runs", json={**RUN, "epochs": 1}, timeout=10).json()["id"]
    assert wait_until(lambda: run_of(web, run_id)["state"] == "finished", 60)


def test_a_worker_stopped_with_sigterm_hands_its_run_back_at_once(cluster: Cluster, web: LiveServer) -> None:
    """docker stop: the worker stops training, gives the run back to the queue and another worker goes on from
    the last checkpoint, without waiting for the lost-worker sweep."""
    second = cluster.add_worker()
    run_id = httpx.post(f"{web.url}/api/runs", json={**RUN, "epochs": 6}, timeout=10).json()["id"]
    first = wait_until(lambda: (r := run_of(web, run_id))["epochs_done"] >= 1 and r, 60)
    holder = next(w for w in cluster.workers if first["worker"].endswith(f":{w.pid}"))
    stopped_at = time.monotonic()
    holder.stop()
    moved = wait_until(lambda: (r := run_of(web, run_id))["worker"] not in (None, first["worker"]) and r, 30)
    handover = time.monotonic() - stopped_at
    done = wait_until(lambda: (r := run_of(web, run_id))["state"] not in ACTIVE and r, 120)
    print(f"handed over after {handover:.1f} s")
    assert handover < 8  # well under worker_lost_after (10 s) plus a sweep: it was handed back, not found lost
    assert moved["worker"].endswith(f":{(second if holder is not second else cluster.workers[0]).pid}")
    assert done["state"] == "finished" and [h["epoch"] for h in done["history"]] == list(range(1, 7))
    assert (done["attempts"], done["lost_workers"]) == (2, 0)  # handed back, not lost
    log = next(w for w in cluster.workers if w is not holder).log()
    assert "resumed after epoch" in log and "resumed after epoch 0 " not in log  # from its checkpoint, not anew


def test_queued_runs_know_their_place(cluster: Cluster, web: LiveServer) -> None:
    student = httpx.Client(base_url=web.url, timeout=10)  # keeps its owner cookie: it may stop its own runs
    ids = [student.post("/api/runs", json={**RUN, "epochs": 3}).json()["id"] for _ in range(3)]
    wait_until(lambda: run_of(web, ids[0])["state"] == "running", 60)
    assert [run_of(web, i)["queue_position"] for i in ids] == [None, 1, 2]
    assert run_of(web, ids[0])["worker"].endswith(f":{cluster.workers[0].pid}")
    health = httpx.get(f"{web.url}/api/health", timeout=10).json()
    assert (health["runs_training"], health["runs_queued"]) == (1, 2)
    stopped = student.post(f"/api/runs/{ids[2]}/stop")
    assert stopped.status_code == 200 and stopped.json()["state"] == "stopped", stopped.text
    assert run_of(web, ids[1])["queue_position"] == 1
