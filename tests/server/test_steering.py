"""Steering over REST and the WebSocket against the real app: a live change is recorded and a run replayed from
its config plus its changes ends with the same weights; step mode trains exactly n batches; a fork from an
epoch's checkpoint with no changes retraces the original; the per-batch points survive a reload."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.settings import Settings

SMALL = {"layers": [{"units": 16}], "batch_size": 50, "train_subset": 2000, "learning_rate": 0.01}


@pytest.fixture
def client(app_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings)) as c:
        yield c


def messages_until_end(client: TestClient, run_id: str, on_message=None) -> list[dict]:  # type: ignore[no-untyped-def]
    seen = []
    with client.websocket_connect(f"/ws/runs/{run_id}") as ws:
        while True:
            m = json.loads(ws.receive_text())
            seen.append(m)
            if on_message is not None:
                on_message(ws, m)
            if m["type"] == "end":
                return seen


def weights(client: TestClient, run_id: str) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(client.get(f"/api/runs/{run_id}/model").content), allow_pickle=False) as data:
        return {k: data[k] for k in data.files if k != "header"}


def test_a_live_change_is_recorded_and_the_run_replays_bit_for_bit(client: TestClient) -> None:
    run_id = client.post("/api/runs", json={**SMALL, "epochs": 3}).json()["id"]
    sent = []

    def steer(ws, m) -> None:  # type: ignore[no-untyped-def]
        if m["type"] == "epoch" and m["epoch"] == 1 and not sent:
            r = client.patch(f"/api/runs/{run_id}", json={"learning_rate": 0.03, "dropout": {"0": 0.2}})
            assert r.status_code == 200, r.text
            sent.append(r.json())
            ws.send_text(json.dumps({"action": "set", "batch_size": 64}))

    seen = messages_until_end(client, run_id, steer)
    assert seen[-1]["state"] == "finished"
    changes = [m for m in seen if m["type"] == "change"]
    assert {c["name"] for c in changes} == {"learning_rate", "dropout.0", "batch_size"}
    assert all(c["epoch"] >= 2 for c in changes) and any(m["type"] == "ack" for m in seen)
    detail = client.get(f"/api/runs/{run_id}").json()
    assert [c["name"] for c in detail["changes"]] == [c["name"] for c in changes]
    live = [m["step"] for m in seen if m["type"] == "progress"]  # a slow client may see fewer (they merge)
    assert {p["step"] for p in detail["progress"]} >= set(live) and detail["checkpoints"] == [1, 2, 3]
    config = {
        **detail["config"],
        "replay": [{"step": c["step"], "name": c["name"], "value": c["new"]} for c in changes],
    }
    again = client.post("/api/runs", json=config).json()["id"]
    assert messages_until_end(client, again)[-1]["state"] == "finished"
    a, b = weights(client, run_id), weights(client, again)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    plain = client.post("/api/runs", json={**detail["config"], "replay": []}).json()["id"]
    messages_until_end(client, plain)
    assert not np.array_equal(weights(client, plain)["l0_W"], a["l0_W"])  # the changes mattered


def test_bad_changes_and_changes_to_ended_runs_are_refused(client: TestClient) -> None:
    run_id = client.post("/api/runs", json={**SMALL, "epochs": 1}).json()["id"]
    assert client.patch(f"/api/runs/{run_id}", json={"learning_rate": -1}).status_code == 422
    assert client.patch(f"/api/runs/{run_id}", json={}).status_code == 422
    messages_until_end(client, run_id)
    r = client.patch(f"/api/runs/{run_id}", json={"learning_rate": 0.1})
    assert r.status_code == 409 and "ended" in r.json()["detail"]
    assert client.patch("/api/runs/r0000000000", json={"l2": 0.1}).status_code == 404


def test_step_mode_trains_exactly_n_batches_then_pauses(client: TestClient) -> None:
    run_id = client.post("/api/runs", json={**SMALL, "epochs": 50}).json()["id"]
    with client.websocket_connect(f"/ws/runs/{run_id}") as ws:
        ws.send_text(json.dumps({"action": "pause"}))
        paused = None
        while paused is None:
            m = json.loads(ws.receive_text())
            if m["type"] == "state" and m["state"] == "paused":
                paused = m["step"]
        assert client.post(f"/api/runs/{run_id}/step", json={"batches": 5}).json()["state"] == "stepping"
        states = []
        while len(states) < 2:
            m = json.loads(ws.receive_text())
            if m["type"] == "state":
                states.append(m)
        assert [s["state"] for s in states] == ["running", "paused"] and states[-1]["step"] == paused + 5
        assert client.post(f"/api/runs/{run_id}/step", json={"batches": 0}).status_code == 422
        client.post(f"/api/runs/{run_id}/resume")
        while not (m["type"] == "state" and m["state"] == "running"):  # until the trainer has left its pause
            m = json.loads(ws.receive_text())
        running = client.post(f"/api/runs/{run_id}/step", json={"batches": 1})
        assert running.status_code == 409 and "pause it first" in running.json()["detail"]
        client.post(f"/api/runs/{run_id}/stop")


def test_a_fork_without_changes_retraces_the_original_and_with_changes_does_not(client: TestClient) -> None:
    run_id = client.post("/api/runs", json={**SMALL, "epochs": 3, "layers": [{"units": 16, "dropout": 0.1}]}).json()[
        "id"
    ]
    messages_until_end(client, run_id)
    same = client.post(f"/api/runs/{run_id}/fork", json={"epoch": 1})
    assert same.status_code == 201, same.text
    assert messages_until_end(client, same.json()["id"])[-1]["state"] == "finished"
    a, b = weights(client, run_id), weights(client, same.json()["id"])
    assert all(np.array_equal(a[k], b[k]) for k in a)
    other = client.post(f"/api/runs/{run_id}/fork", json={"epoch": 1, "changes": {"learning_rate": 0.05}}).json()["id"]
    messages_until_end(client, other)
    assert not np.array_equal(weights(client, other)["l0_W"], a["l0_W"])
    detail = client.get(f"/api/runs/{other}").json()
    assert detail["config"]["start"] == {"run": run_id, "epoch": 1} and detail["changes"][0]["name"] == "learning_rate"
    assert [h["epoch"] for h in detail["history"]] == [2, 3]
    assert client.post(f"/api/runs/{run_id}/fork", json={"epoch": 9}).status_code == 409
