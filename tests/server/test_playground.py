"""The 2-D playground through the server: data options validated per data set, listed with their bounds, points,
frames over the WebSocket (merging, decodable, correctly laid out), step and live rates, throttled epoch rows."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.fanout import Subscriber
from server.settings import Settings

TOY: dict[str, Any] = {
    "dataset": "circle",
    "data": {"points": 200, "noise": 0.0, "test_fraction": 0.5, "features": ["x1", "x2"]},
    "layers": [{"units": 4, "activation": "tanh"}, {"units": 3, "activation": "tanh"}],
    "batch_size": 10,
    "epochs": 40,
    "learning_rate": 0.03,
}


@pytest.fixture
def client(app_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(app_settings)) as c:  # embedded, then cluster mode
        yield c


def test_datasets_list_toy_sets_with_option_bounds(client: TestClient) -> None:
    sets = {d["name"]: d for d in client.get("/api/datasets").json()}
    for name in ("circle", "xor", "gauss", "spiral", "moons", "checkerboard", "plane", "multigauss"):
        assert name in sets and sets[name]["ready"]
    options = {o["name"]: o for o in sets["spiral"]["options"]}
    assert (options["noise"]["minimum"], options["noise"]["maximum"]) == (0.0, 0.5)
    assert (options["points"]["minimum"], options["points"]["maximum"]) == (50, 5000)
    assert (options["test_fraction"]["minimum"], options["test_fraction"]["maximum"]) == (0.1, 0.9)
    assert options["features"]["choices"] == ["x1", "x2", "x1_sq", "x2_sq", "x1x2", "sin_x1", "sin_x2"]
    assert sets["plane"]["task"] == "regression" and sets["mnist"]["options"] == []


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({**TOY, "data": {"colour": 1}}, "unknown option"),
        ({**TOY, "data": {"noise": 0.9}}, "noise"),
        ({**TOY, "data": {"points": 10}}, "points"),
        ({**TOY, "data": {"points": 100.5}}, "integer"),
        ({**TOY, "data": {"features": []}}, "features"),
        ({**TOY, "data": {"features": ["x3"]}}, "features"),
        ({**TOY, "data": {"test_fraction": 0.95}}, "test_fraction"),
        ({"dataset": "mnist", "data": {"noise": 0.1}}, "unknown option"),
        ({**TOY, "dataset": "plane"}, "regression"),
        ({**TOY, "batch_size": 150}, "batch_size"),
    ],
)
def test_bad_data_options_are_422(client: TestClient, body: dict[str, Any], fragment: str) -> None:
    res = client.post("/api/runs", json=body)
    assert res.status_code == 422, res.text
    assert fragment in res.text


def test_input_shape_follows_the_features(client: TestClient) -> None:
    body = {"dataset": "spiral", "data": {"features": ["x1", "x2", "sin_x1", "sin_x2"]}, "layers": [{"units": 8}]}
    answer = client.post("/api/architecture", json=body).json()
    assert answer["input_shape"] == [4] and answer["layers"][0]["parameters"] == 4 * 8 + 8
    assert answer["layers"][-1]["output_shape"] == [2]


def test_points_match_the_run_data(client: TestClient) -> None:
    res = client.post("/api/playground/points", json={"dataset": "xor", "data": {"points": 100, "seed": 3}})
    assert res.status_code == 200
    body = res.json()
    assert len(body["train"]["x1"]) == 50 and len(body["test"]["label"]) == 50
    assert client.post("/api/playground/points", json={"dataset": "mnist"}).status_code == 422


def _decode(text: str, grid: int) -> np.ndarray:
    raw = np.frombuffer(base64.b64decode(text), np.uint8)
    assert raw.size == grid * grid
    return raw.reshape(grid, grid)


def test_frames_step_set_and_throttled_epochs(client: TestClient) -> None:
    run_id = client.post("/api/runs", json={**TOY, "start_paused": True, "epochs": 400}).json()["id"]
    with client.websocket_connect(f"/ws/runs/{run_id}") as ws:
        frames: list[dict[str, Any]] = []
        deadline = time.monotonic() + 10

        def next_frame() -> dict[str, Any]:
            while time.monotonic() < deadline:
                m = json.loads(ws.receive_text())
                if m["type"] == "frame":
                    frames.append(m)
                    return m
            raise AssertionError("no frame")

        first = next_frame()
        assert first["step"] == 0 and first["grid"] == 64
        assert [len(layer) for layer in first["neurons"]] == [4, 3]
        assert [np.array(w).shape for w in first["weights"]] == [(2, 4), (4, 3), (3, 2)]
        _decode(first["output"], 64)
        ws.send_text(json.dumps({"action": "step", "steps": 3}))
        while next_frame()["step"] != 3:
            pass
        ws.send_text(json.dumps({"action": "set", "learning_rate": 0.05, "l1": 0.001}))
        ws.send_text(json.dumps({"action": "resume"}))
        while (m := json.loads(ws.receive_text()))["type"] != "end":
            if m["type"] == "frame":
                frames.append(m)
        last = frames[-1]
        assert last["learning_rate"] == 0.05 and last["l1"] == 0.001
        assert last["step"] == 400 * 10
        assert last["test_loss"] < 0.2  # circle, x1 x2: learnt
        out = _decode(last["output"], 64)
        assert out[32, 32] > 200 and out[0, 0] < 50  # class 1 (inside the circle) in the middle
    run = client.get(f"/api/runs/{run_id}").json()
    assert run["state"] == "finished" and run["epochs_done"] == 400
    # a few rows a second, and the last epoch
    assert 1 <= len(run["history"]) < 400 and run["history"][-1]["epoch"] == 400


def test_frames_merge_in_a_slow_clients_outbox() -> None:
    sub = Subscriber(maxsize=4, max_bytes=1 << 20)
    for i in range(100):
        sub.push("frame", f"frame {i}")
    sub.push("epoch", "e")
    assert not sub.overflowed
    assert list(sub.queue) == ["e"] and sub.frame == "frame 99"
