"""A whole run through the API with the store on PostgreSQL: what the engine hands the store (NumPy numbers
included) is stored, the model is kept in the database rather than the data directory, and it downloads,
predicts and goes with its run."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
from fastapi.testclient import TestClient

from engine.model import Model
from server.app import create_app
from server.settings import Settings
from tests.conftest import make_data_dir
from tests.server.test_api import SMALL, digit_png, wait_for_end


def test_a_run_lives_and_dies_in_postgresql(pg_database_url: str, tmp_path: Path, mnist_source: Path) -> None:
    data_dir = make_data_dir(tmp_path, mnist_source)
    settings = Settings(database_url=pg_database_url, data_dir=data_dir, train_default_model=False)
    with TestClient(create_app(settings)) as client:
        run_id = client.post("/api/runs", json={**SMALL, "name": "in postgres"}).json()["id"]
        messages = wait_for_end(client, run_id)
        assert messages[-1]["state"] == "finished" and messages[-1]["has_model"] is True
        detail = client.get(f"/api/runs/{run_id}").json()
        assert len(detail["history"]) == 2 and detail["test_accuracy"] > 0.7
        assert [r["id"] for r in client.get("/api/runs").json()] == [run_id]
        download = client.get(f"/api/runs/{run_id}/model")
        assert download.status_code == 200
        assert int(download.headers["content-length"]) == len(download.content)
        assert Model.load(download.content).spec.layers[0].units == 16
        prediction = client.post("/api/predict", json={"image": digit_png(), "model": run_id})
        assert prediction.status_code == 200, prediction.text
        assert run_id in [m["id"] for m in client.get("/api/models").json()]
        assert not list((data_dir / "models").glob("*.npz"))  # nothing on this node's disk
        with psycopg.connect(pg_database_url) as conn:
            stored = conn.execute("SELECT data FROM model_files WHERE id=%s", (run_id,)).fetchone()
            assert stored is not None and bytes(stored[0]) == download.content
            (epochs,) = conn.execute("SELECT count(*) FROM epochs WHERE run_id=%s", (run_id,)).fetchone() or (0,)
            assert epochs == 2
            (row,) = conn.execute("SELECT data FROM epochs WHERE run_id=%s AND epoch=2", (run_id,)).fetchone() or ("",)
            assert json.loads(row)["test_accuracy"] == detail["test_accuracy"]
        assert client.delete(f"/api/runs/{run_id}").status_code == 204
        assert client.get(f"/api/runs/{run_id}/model").status_code == 404
        with psycopg.connect(pg_database_url) as conn:
            assert conn.execute("SELECT count(*) FROM model_files").fetchone() == (0,)
            assert conn.execute("SELECT count(*) FROM progress").fetchone() == (0,)  # cascaded with the run
