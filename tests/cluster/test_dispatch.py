"""Cluster mode's own promises, through the app against real redis-server, PostgreSQL and worker processes: a
run asked to start paused waits for its steps, a paused run releases its worker after max_pause_seconds, and a
queued run whose task the broker lost gets it again (and only then)."""

from __future__ import annotations

import json
import time

import redis
from fastapi.testclient import TestClient

from server.app import create_app
from tests.conftest import Cluster
from tests.server.test_api import digit_png

RUN = {"layers": [{"units": 32}], "batch_size": 50, "train_subset": 20000, "learning_rate": 0.01}


def wait_for(predicate, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s")


def test_a_run_started_paused_trains_only_the_batches_it_is_stepped(cluster: Cluster) -> None:
    with TestClient(create_app(cluster.settings)) as client:
        run_id = client.post("/api/runs", json={**RUN, "epochs": 2, "start_paused": True}).json()["id"]
        assert client.post(f"/api/runs/{run_id}/step", json={"batches": 3}).json()["state"] == "stepping"
        states: list[dict] = []
        with client.websocket_connect(f"/ws/runs/{run_id}") as ws:
            while not (states and states[-1]["state"] == "paused" and states[-1]["step"] == 3):
                message = json.loads(ws.receive_text())
                if message["type"] == "state":
                    states.append(message)
            time.sleep(0.5)
            assert client.get(f"/api/runs/{run_id}").json()["state"] == "paused"
            assert client.post(f"/api/runs/{run_id}/stop").json()["state"] == "stopping"
            while message["type"] != "end":
                message = json.loads(ws.receive_text())
        assert message["state"] == "stopped"
        assert all(s["step"] in (None, 0, 3) for s in states)  # it never trained beyond the steps asked


def test_a_paused_run_gives_its_worker_back_after_max_pause_seconds(cluster: Cluster) -> None:
    cluster.workers.pop().kill()
    cluster.add_worker(max_pause_seconds="1")
    with TestClient(create_app(cluster.settings)) as client:
        run_id = client.post("/api/runs", json={**RUN, "epochs": 50}).json()["id"]
        wait_for(lambda: client.get(f"/api/runs/{run_id}").json()["state"] == "running")
        client.post(f"/api/runs/{run_id}/pause")
        ended = wait_for(lambda: (r := client.get(f"/api/runs/{run_id}").json())["state"] == "stopped" and r, 30)
        assert "max_pause_seconds=1" in ended["message"]
        nxt = client.post("/api/runs", json={**RUN, "epochs": 1}).json()["id"]  # the worker is free again
        wait_for(lambda: client.get(f"/api/runs/{nxt}").json()["state"] == "finished")


def test_a_queued_run_whose_task_was_lost_gets_it_again(cluster: Cluster) -> None:
    queue = cluster.settings.queue_name
    with TestClient(create_app(cluster.settings)) as client:
        busy = client.post("/api/runs", json={**RUN, "epochs": 30}).json()["id"]
        waiting = client.post("/api/runs", json={**RUN, "epochs": 1}).json()["id"]
        wait_for(lambda: client.get(f"/api/runs/{busy}").json()["state"] == "running")
        manager = client.app.state.ctx.runs  # type: ignore[attr-defined]
        # the running run's task is delivered but not acknowledged (acks_late), the waiting one's is queued
        assert manager.commands.pending_runs(queue) >= {busy, waiting}
        assert manager.resend_lost_tasks(0.0) == 0  # nothing missing: nothing sent twice
        broker = redis.Redis.from_url(cluster.env["NNPLAY_BROKER_URL"])
        assert broker.delete(queue) == 1  # the waiting run's task is lost
        assert waiting not in manager.commands.pending_runs(queue)
        assert manager.resend_lost_tasks(0.0) == 1
        assert waiting in manager.commands.pending_runs(queue)
        client.post(f"/api/runs/{busy}/stop")
        done = wait_for(lambda: (r := client.get(f"/api/runs/{waiting}").json())["state"] == "finished" and r)
        assert done["attempts"] == 1


def test_the_default_model_is_trained_once_by_a_worker_and_served_from_the_database(cluster: Cluster) -> None:
    settings = cluster.settings.model_copy(update={"train_default_model": True})
    with TestClient(create_app(settings)) as first, TestClient(create_app(settings)) as second:  # two replicas
        health = first.get("/api/health").json()
        assert health["default_model"] == "training"
        assert second.get("/api/health").json()["default_model_run"] == health["default_model_run"]
        defaults = [r for r in first.get("/api/runs").json() if r["kind"] == "default"]
        assert len(defaults) == 1  # one default run for the whole cluster
        wait_for(lambda: second.get("/api/health").json()["default_model"] == "ready", 180)
        answer = second.post("/api/predict", json={"image": digit_png()})
        assert answer.status_code == 200 and answer.json()["model"] == "default"
        assert not list((settings.data_dir / "models").glob("*.npz"))  # it lives in PostgreSQL
