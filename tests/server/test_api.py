"""REST and WebSocket through Starlette's TestClient, against real MNIST and a real SQLite file."""

from __future__ import annotations

import base64
import io
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from engine.model import Model
from server.app import create_app
from server.config import RunConfig
from server.presets import PRESETS
from server.settings import Settings
from tests.conftest import make_data_dir

SMALL = {"layers": [{"units": 16}], "epochs": 2, "batch_size": 100, "train_subset": 2000, "learning_rate": 0.01}


@pytest.fixture
def settings(app_settings: Settings) -> Settings:
    return app_settings  # embedded, then cluster mode (tests/conftest.py)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def wait_for_end(client: TestClient, run_id: str) -> list[dict]:
    messages = []
    with client.websocket_connect(f"/ws/runs/{run_id}") as ws:
        while True:
            message = json.loads(ws.receive_text())
            messages.append(message)
            if message["type"] == "end":
                return messages


def digit_png(size: int = 280, rgba: bool = True) -> str:
    """A '7' drawn the way the canvas does it: dark strokes on a transparent background."""
    mode, bg = ("RGBA", (0, 0, 0, 0)) if rgba else ("RGB", (255, 255, 255))
    img = Image.new(mode, (size, size), bg)
    draw = ImageDraw.Draw(img)
    k = size / 280
    draw.line([(70 * k, 60 * k), (210 * k, 60 * k), (120 * k, 230 * k)], fill=(0, 0, 0, 255), width=int(22 * k))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_health_datasets_presets_options(client: TestClient) -> None:
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["mnist"] == "ready" and health["default_model"] == "missing"
    ds = client.get("/api/datasets").json()
    assert ds[0]["train_size"] == 60_000 and ds[0]["test_size"] == 10_000 and ds[0]["ready"]
    presets = client.get("/api/presets").json()
    assert {p["name"] for p in presets} >= {"default", "seed-article"}
    for p in presets:  # each preset is a valid POST /api/runs body as it stands
        RunConfig.model_validate(p["config"])
    seed = next(p for p in presets if p["name"] == "seed-article")["config"]
    assert seed["layers"] == [{"type": "dense", "units": 128, "activation": "sigmoid", "dropout": 0.0}]
    assert (seed["loss"], seed["init"], seed["learning_rate"], seed["optimizer"]["name"]) == (
        "mse",
        "naive",
        0.01,
        "sgd",
    )
    assert client.get("/api/options").json()["limits"]["max_concurrent_runs"] == 2


def test_run_lifecycle_over_rest_and_websocket(client: TestClient, settings: Settings) -> None:
    created = client.post("/api/runs", json={**SMALL, "name": "tiny"})
    assert created.status_code == 201
    run_id = created.json()["id"]
    messages = wait_for_end(client, run_id)
    assert messages[0]["type"] == "snapshot" and messages[0]["run"]["config"]["name"] == "tiny"
    epochs = [m for m in messages if m["type"] == "epoch"]
    assert [m["epoch"] for m in epochs] == [1, 2]
    first = epochs[0]
    assert len(first["histograms"]) == 2 and len(first["histograms"][0]["weights"]["counts"]) == 30
    assert np.array(first["confusion"]).sum() == 10_000
    assert first["filters"]["count"] == 16 and len(base64.b64decode(first["filters"]["data"])) == 16 * 784
    assert messages[-1] == {**messages[-1], "type": "end", "state": "finished", "has_model": True}
    detail = client.get(f"/api/runs/{run_id}").json()
    assert detail["state"] == "finished" and len(detail["history"]) == 2 and detail["test_accuracy"] > 0.7
    assert detail["history"][1]["test_accuracy"] == detail["test_accuracy"]
    assert detail["extras"]["misclassified"]["items"]
    assert [r["id"] for r in client.get("/api/runs").json()] == [run_id]
    # a socket opened after the end gets the whole story: snapshot then end
    late = wait_for_end(client, run_id)
    assert [m["type"] for m in late] == ["snapshot", "end"] and len(late[0]["run"]["history"]) == 2
    # the model downloads as a loadable .npz and predicts
    download = client.get(f"/api/runs/{run_id}/model")
    assert download.status_code == 200
    assert Model.load(download.content).spec.layers[0].units == 16
    prediction = client.post("/api/predict", json={"image": digit_png(), "model": run_id})
    assert prediction.status_code == 200, prediction.text
    body = prediction.json()
    assert body["model"] == run_id and len(body["probabilities"]) == 10
    assert sum(body["probabilities"]) == pytest.approx(1, abs=1e-4)
    assert np.array(body["input"]).shape == (28, 28)
    # the database is a real SQLite file, or a real PostgreSQL in cluster mode
    if settings.database_url is None:
        with sqlite3.connect(settings.db_path) as db:
            assert db.execute("SELECT count(*) FROM epochs WHERE run_id=?", (run_id,)).fetchone()[0] == 2
    else:
        with psycopg.connect(settings.database_url.get_secret_value()) as db:
            assert db.execute("SELECT count(*) FROM epochs WHERE run_id=%s", (run_id,)).fetchone() == (2,)
    assert client.delete(f"/api/runs/{run_id}").status_code == 204
    assert client.get(f"/api/runs/{run_id}").status_code == 404
    assert client.get(f"/api/runs/{run_id}/model").status_code == 404
    assert client.post("/api/predict", json={"image": digit_png(), "model": run_id}).status_code == 404


def test_pause_resume_stop_over_the_socket(client: TestClient) -> None:
    run_id = client.post("/api/runs", json={**SMALL, "epochs": 50, "batch_size": 10}).json()["id"]
    seen: list[str] = []
    with client.websocket_connect(f"/ws/runs/{run_id}") as ws:
        ws.send_text(json.dumps({"action": "pause"}))
        while "paused" not in seen:
            m = json.loads(ws.receive_text())
            if m["type"] == "state":
                seen.append(m["state"])
        assert client.get(f"/api/runs/{run_id}").json()["state"] == "paused"
        ws.send_text(json.dumps({"action": "resume"}))
        ws.send_text("this is not json")
        ws.send_text(json.dumps({"action": "explode"}))
        errors = 0
        while seen[-1] != "running" or errors < 2:
            m = json.loads(ws.receive_text())
            if m["type"] == "state":
                seen.append(m["state"])
            errors += m["type"] == "error"
        ws.send_text(json.dumps({"action": "stop"}))
        while True:
            m = json.loads(ws.receive_text())
            if m["type"] == "end":
                break
    assert m["state"] == "stopped"
    assert client.get(f"/api/runs/{run_id}").json()["state"] == "stopped"
    assert client.post(f"/api/runs/{run_id}/resume").status_code == 409


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"learning_rate": -1}, "learning_rate"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"epochs": "10"}, "epochs"),
        ({"epochs": 1.5}, "epochs"),
        ({"batch_size": 0}, "batch_size"),
        ({"layers": [{"units": -3}]}, "units"),
        ({"layers": [{"units": 8, "dropout": 1.0}]}, "dropout"),
        ({"seed": -1}, "seed"),
        ({"l2": 1e308}, "l2"),
        ({"train_subset": 10, "batch_size": 64}, "batch_size"),
        ({"optimizer": {"name": "rmsprop"}}, "name"),
        ({"optimizer": {"name": "nesterov", "momentum": 0.0}}, "nesterov"),
        ({"colour": "red"}, "colour"),
        ({"loss": "cross_entropy", "output_activation": "linear"}, "cross_entropy"),
    ],
)
def test_bad_configs_get_422_naming_the_field(client: TestClient, body: dict, where: str) -> None:
    r = client.post("/api/runs", json=body)
    assert r.status_code == 422
    assert where in json.dumps(r.json()["detail"])


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_get_422_without_echoing_input(client: TestClient, literal: str) -> None:
    raw = f'{{"learning_rate": {literal}, "layers": [{{"units": 8}}]}}'.encode()
    r = client.post("/api/runs", content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert "input" not in r.text and literal not in r.text
    assert r.json()["detail"][0]["loc"] == ["body", "learning_rate"]


@pytest.mark.parametrize(
    ("body", "limit"),
    [
        ({"layers": [{"units": 4096}]}, "max_units"),
        ({"layers": [{"units": 8}] * 9}, "max_layers"),
        ({"layers": [{"units": 2048}, {"units": 2048}]}, "max_parameters"),
        ({"epochs": 201}, "max_epochs"),
        ({"batch_size": 5000}, "max_batch_size"),
    ],
)
def test_limits_are_named(client: TestClient, body: dict, limit: str) -> None:
    r = client.post("/api/runs", json=body)
    assert r.status_code == 422 and limit in r.json()["detail"]


def test_body_over_the_limit_gets_413(client: TestClient, settings: Settings) -> None:
    big = b'{"name": "' + b"x" * (settings.max_body_bytes + 10) + b'"}'
    r = client.post("/api/runs", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "max_body_bytes" in r.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
        for _ in range(settings.max_body_bytes // 65536 + 2):
            yield b" " * 65536

    r = client.post("/api/predict", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_unknown_ids_and_path_like_names(client: TestClient) -> None:
    assert client.get("/api/runs/r0000000000").status_code == 404
    assert client.get("/api/runs/..%2F..%2Fetc%2Fpasswd").status_code in (404, 422)
    assert client.post("/api/runs/r0000000000/pause").status_code == 404
    assert client.delete("/api/runs/r0000000000").status_code == 404
    r = client.post("/api/predict", json={"pixels": [[0] * 28] * 27 + [[1] * 28], "model": "../../etc/passwd"})
    assert r.status_code == 422  # refused by the id pattern before any path is built
    r = client.post("/api/predict", json={"pixels": [[0] * 28] * 27 + [[1] * 28], "model": "r0000000000"})
    assert r.status_code == 404
    with client.websocket_connect("/ws/runs/r0000000000") as ws:
        assert json.loads(ws.receive_text())["type"] == "error"


def test_predict_errors(client: TestClient) -> None:
    # no default model in this data dir yet
    r = client.post("/api/predict", json={"image": digit_png()})
    assert r.status_code == 404 and "default model" in r.json()["detail"]
    run_id = client.post("/api/runs", json=SMALL).json()["id"]
    wait_for_end(client, run_id)
    empty = client.post("/api/predict", json={"pixels": [[0] * 28] * 28, "model": run_id})
    assert empty.status_code == 422 and "empty" in empty.json()["detail"].lower()
    assert client.post("/api/predict", json={"image": "data:image/png;base64,AAAA", "model": run_id}).status_code == 422
    assert client.post("/api/predict", json={"model": run_id}).status_code == 422
    opaque = client.post("/api/predict", json={"image": digit_png(rgba=False), "model": run_id})
    transparent = client.post("/api/predict", json={"image": digit_png(), "model": run_id})
    assert opaque.status_code == transparent.status_code == 200
    np.testing.assert_allclose(opaque.json()["input"], transparent.json()["input"], atol=0.02)


def test_model_upload_is_checked(client: TestClient, tmp_path: Path) -> None:
    model = Model.build(RunConfig(layers=[{"units": 8}]).model_spec(), seed=1)  # type: ignore[list-item]
    r = client.post(
        "/api/models?name=mine", content=model.to_bytes(), headers={"content-type": "application/octet-stream"}
    )
    assert r.status_code == 201
    model_id = r.json()["id"]
    assert any(m["id"] == model_id for m in client.get("/api/models").json())
    ok = client.post("/api/predict", json={"pixels": np.eye(28).tolist(), "model": model_id})
    assert ok.status_code == 200 and ok.json()["model"] == model_id
    bad = client.post(
        "/api/models", content=b"PK\x03\x04 not really", headers={"content-type": "application/octet-stream"}
    )
    assert bad.status_code == 422
    buf = io.BytesIO()
    np.savez(buf, header=np.array([{"evil": 1}], dtype=object))
    assert client.post("/api/models", content=buf.getvalue()).status_code == 422


def test_runs_queue_past_the_concurrency_limit_then_429(tmp_path: Path, mnist_source: Path) -> None:
    settings = Settings(
        data_dir=make_data_dir(tmp_path, mnist_source),
        train_default_model=False,
        max_concurrent_runs=1,
        max_queued_runs=1,
    )
    with TestClient(create_app(settings)) as client:
        long = {**SMALL, "epochs": 100, "batch_size": 10}
        first = client.post("/api/runs", json=long).json()
        second = client.post("/api/runs", json=SMALL).json()
        assert second["state"] == "queued"
        third = client.post("/api/runs", json=SMALL)
        assert third.status_code == 429 and "max_queued_runs" in third.json()["detail"]
        client.post(f"/api/runs/{first['id']}/stop")
        assert wait_for_end(client, second["id"])[-1]["state"] == "finished"  # the queue drains


def test_every_preset_config_is_accepted_by_post(client: TestClient) -> None:
    for preset in PRESETS:
        body = preset.config.model_dump()
        r = client.post("/api/runs", json={**body, "epochs": 1, "train_subset": 1000, "batch_size": 10})
        assert r.status_code == 201, (preset.name, r.text)
        client.post(f"/api/runs/{r.json()['id']}/stop")


def test_page_docs_and_vendored_libraries_are_served_locally(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    docs = client.get("/docs").text
    assert "/vendor/swagger-ui/swagger-ui-bundle.js" in docs  # no CDN: the docs work offline
    for path in ("/vendor/swagger-ui/swagger-ui-bundle.js", "/vendor/uplot/uPlot.iife.min.js", "/openapi.json"):
        assert client.get(path).status_code == 200, path
    assert client.get("/api/nothing-here").status_code == 404
    assert client.put("/api/runs").status_code == 405


def test_model_ids_are_checked_and_never_echoed(client: TestClient) -> None:
    r = client.post("/api/predict", json={"pixels": np.eye(28).tolist(), "model": "<script>alert(1)</script>"})
    assert r.status_code == 422 and "<script>" not in r.text


def test_a_stopped_default_model_run_does_not_leave_the_server_training_for_ever(
    tmp_path: Path, mnist_source: Path
) -> None:
    settings = Settings(data_dir=make_data_dir(tmp_path, mnist_source), train_default_model=True)
    with TestClient(create_app(settings)) as client:
        health = client.get("/api/health").json()
        assert health["default_model"] == "training"
        run_id = health["default_model_run"]
        client.post(f"/api/runs/{run_id}/stop")
        wait_for_end(client, run_id)
        health = client.get("/api/health").json()
        assert health["default_model"] == "failed" and health["default_model_run"] is None
        assert "stopped" in health["default_model_error"]
        assert client.delete(f"/api/runs/{run_id}").status_code == 204


def test_the_schema_offers_exactly_what_the_engine_implements() -> None:
    from typing import get_args

    from engine.activations import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS
    from engine.initializers import INITS
    from engine.losses import LOSSES
    from engine.optimizers import OPTIMIZERS
    from engine.schedules import SCHEDULES
    from server.config import DenseConfig as LayerConfig
    from server.config import OptimizerConfig, ScheduleConfig

    def literal(model: type, field: str) -> set[str]:
        return set(get_args(model.model_fields[field].annotation))  # type: ignore[attr-defined]

    assert literal(LayerConfig, "activation") == set(HIDDEN_ACTIVATIONS)
    assert literal(RunConfig, "output_activation") == set(OUTPUT_ACTIVATIONS)
    assert literal(RunConfig, "loss") == set(LOSSES)
    assert literal(RunConfig, "init") == set(INITS)
    assert literal(OptimizerConfig, "name") == set(OPTIMIZERS)
    assert literal(ScheduleConfig, "name") == set(SCHEDULES)


def test_predict_explains_a_drawing_with_the_engine_backward_pass(client: TestClient) -> None:
    run_id = client.post(
        "/api/runs",
        json={**SMALL, "layers": [{"type": "conv2d", "filters": 4, "kernel": 3}, {"type": "maxpool2d", "size": 2}]},
    ).json()["id"]
    assert wait_for_end(client, run_id)[-1]["state"] == "finished"
    plain = client.post("/api/predict", json={"image": digit_png(), "model": run_id}).json()
    assert plain["explanation"] is None
    assert [m["layer"] for m in plain["feature_maps"]] == [0, 1] and plain["feature_maps"][0]["maps"]["count"] == 4
    body = client.post("/api/predict", json={"image": digit_png(), "model": run_id, "explain": True}).json()
    e = body["explanation"]
    assert e["target"] == body["digit"] and e["top3"][0]["digit"] == body["digit"]
    for key in ("saliency", "integrated_gradients", "occlusion"):
        assert np.array(e[key]).shape == (28, 28)
    assert np.max(e["saliency"]) == pytest.approx(1.0)
    assert np.sum(e["integrated_gradients"]) == pytest.approx(e["p_input"] - e["p_baseline"], rel=0.05, abs=1e-3)
    assert [a["type"] for a in e["activations"]] == ["conv2d", "maxpool2d"]
    other = client.post("/api/predict", json={"image": digit_png(), "model": run_id, "explain": True, "target": 3})
    assert other.json()["explanation"]["target"] == 3
    assert client.post("/api/predict", json={"image": digit_png(), "explain": True, "target": 10}).status_code == 422


def test_a_test_digit_with_its_label(client: TestClient) -> None:
    """GET /api/datasets/mnist/samples/{index}: a real test image (28x28, 0-1) and its true label, the same as
    the data set's; out of range and unknown sets are 404, a negative index 422."""
    from engine.datasets import get_dataset

    data = get_dataset("mnist").load(client.app.state.ctx.settings.data_dir, {})  # type: ignore[attr-defined]
    answer = client.get("/api/datasets/mnist/samples/7")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["dataset"], body["index"], body["label"]) == ("mnist", 7, int(data.y_test[7]))
    pixels = body["pixels"]
    assert len(pixels) == 28 and all(len(row) == 28 for row in pixels)
    assert max(map(max, pixels)) <= 1.0 and min(map(min, pixels)) >= 0.0
    assert abs(sum(map(sum, pixels)) - float(data.x_test[7].sum())) < 0.1
    assert client.get("/api/datasets/mnist/samples/10000").status_code == 404
    assert client.get("/api/datasets/nope/samples/0").status_code == 404
    assert client.get("/api/datasets/mnist/samples/-1").status_code == 422


def test_bodies_from_before_typed_layers_still_work(client: TestClient) -> None:
    """The README's curl example and the five presets exactly as the code before typed layers serialised them
    (tests/fixtures/format1_presets.json, dumped by commit 7f8a518): accepted unchanged, as dense layers."""
    fixtures = Path(__file__).parent.parent / "fixtures"
    readme = {"layers": [{"units": 128, "activation": "relu"}], "epochs": 5, "learning_rate": 0.001}
    bodies = [readme, *json.loads((fixtures / "format1_presets.json").read_text()).values()]
    for body in bodies:
        assert all("type" not in layer for layer in body["layers"])
        shape = client.post("/api/architecture", json={"layers": body["layers"]})
        assert shape.status_code == 200, shape.text
        assert [row["type"] for row in shape.json()["layers"]] == ["dense"] * (len(body["layers"]) + 1)
        created = client.post("/api/runs", json={**body, "epochs": 1, "train_subset": 1000, "batch_size": 100})
        assert created.status_code == 201, created.text
        client.post(f"/api/runs/{created.json()['id']}/stop")


def test_conv_limits_are_refused_naming_them_before_anything_is_allocated(tmp_path: Path, mnist_source: Path) -> None:
    settings = Settings(data_dir=make_data_dir(tmp_path, mnist_source), max_filters=4, max_macs=100_000)
    with TestClient(create_app(settings)) as c:
        wide = {"layers": [{"type": "conv2d", "filters": 8, "kernel": 3}]}
        r = c.post("/api/runs", json=wide)
        assert r.status_code == 422 and "max_filters=4" in r.json()["detail"]
        costly = {"layers": [{"type": "conv2d", "filters": 4, "kernel": 7}]}  # 28*28*4*49 = 153,664 MACs
        r = c.post("/api/architecture", json=costly)
        assert r.status_code == 422 and "max_macs=100000" in r.json()["detail"]
        assert c.post("/api/runs", json=costly).status_code == 422
        assert c.get("/api/runs").json() == []  # nothing was created
        too_big = {"layers": [{"type": "conv2d", "filters": 65}]}  # past the schema's own bound
        assert c.post("/api/runs", json=too_big).status_code == 422
