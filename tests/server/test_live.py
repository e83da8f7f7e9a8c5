"""The real server: uvicorn on a loopback port, driven with httpx and the `websockets` library; restarted,
SIGTERM'd and kill -9'd to show nothing is lost."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time
from pathlib import Path

import httpx
import websockets

from tests.conftest import LiveServer, make_data_dir, start_server, stop_server
from tests.server.test_api import SMALL, digit_png


async def collect(server: LiveServer, run_id: str, actions: dict[int, str] | None = None) -> list[dict]:
    """Read a run's socket to the end; send actions[n] when the n-th epoch message arrives."""
    messages: list[dict] = []
    async with websockets.connect(f"{server.ws_url}/ws/runs/{run_id}", max_size=2**24) as ws:
        async for raw in ws:
            message = json.loads(raw)
            messages.append(message)
            if message["type"] == "epoch" and actions and message["epoch"] in actions:
                await ws.send(json.dumps({"action": actions[message["epoch"]]}))
            if message["type"] == "end":
                break
    return messages


def test_train_watch_control_restart_and_predict(live_server: LiveServer, tmp_path: Path) -> None:
    http = httpx.Client(base_url=live_server.url, timeout=10)
    run_id = http.post("/api/runs", json={**SMALL, "epochs": 3, "name": "live"}).json()["id"]
    messages = asyncio.run(collect(live_server, run_id))
    assert messages[0]["type"] == "snapshot"
    assert [m["epoch"] for m in messages if m["type"] == "epoch"] == [1, 2, 3]
    assert messages[-1]["state"] == "finished"

    # pause over the socket at epoch 1, check REST sees it, resume over REST, stop over the socket at epoch 3
    long_id = http.post("/api/runs", json={**SMALL, "epochs": 30, "batch_size": 20}).json()["id"]

    async def control() -> list[dict]:
        seen: list[dict] = []
        # the run's owner steers it: its owner cookie goes with the socket and the REST call
        cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
        async with websockets.connect(
            f"{live_server.ws_url}/ws/runs/{long_id}", max_size=2**24, additional_headers={"Cookie": cookie}
        ) as ws:
            async for raw in ws:
                m = json.loads(raw)
                seen.append(m)
                if m["type"] == "epoch" and m["epoch"] == 1:
                    await ws.send(json.dumps({"action": "pause"}))
                if m["type"] == "state" and m["state"] == "paused":
                    async with httpx.AsyncClient(base_url=live_server.url, cookies=http.cookies) as client:
                        assert (await client.get(f"/api/runs/{long_id}")).json()["state"] == "paused"
                        await asyncio.sleep(0.3)
                        await client.post(f"/api/runs/{long_id}/resume")
                if m["type"] == "epoch" and m["epoch"] == 3:
                    await ws.send(json.dumps({"action": "stop"}))
                if m["type"] == "end":
                    return seen
        return seen

    seen = asyncio.run(control())
    states = [m["state"] for m in seen if m["type"] == "state"]
    assert "paused" in states and states[-1] == "stopped"
    assert max(m["epoch"] for m in seen if m["type"] == "epoch") in (3, 4)

    # restart the server on the same data dir: the runs, their curves and models are still there
    assert stop_server(live_server) in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM after a clean shutdown
    assert "Application shutdown complete" in live_server.log()
    again = start_server(live_server.data_dir, tmp_path / "server2.log")
    try:
        http = httpx.Client(base_url=again.url, timeout=10)
        runs = {r["id"]: r for r in http.get("/api/runs").json()}
        assert runs[run_id]["state"] == "finished" and runs[long_id]["state"] == "stopped"
        assert len(http.get(f"/api/runs/{run_id}").json()["history"]) == 3
        assert http.get(f"/api/runs/{run_id}/model").status_code == 200
        r = http.post("/api/predict", json={"image": digit_png(), "model": run_id})
        assert r.status_code == 200 and 0 <= r.json()["digit"] <= 9
    finally:
        stop_server(again)


def test_sigterm_during_training_closes_sockets_and_marks_interrupted(live_server: LiveServer) -> None:
    http = httpx.Client(base_url=live_server.url, timeout=10)
    run_id = http.post("/api/runs", json={**SMALL, "epochs": 200, "batch_size": 10}).json()["id"]

    async def watch_then_sigterm() -> tuple[int | None, float]:
        async with websockets.connect(f"{live_server.ws_url}/ws/runs/{run_id}") as ws:
            async for raw in ws:
                if json.loads(raw)["type"] == "epoch":
                    break
            started = time.monotonic()
            live_server.process.send_signal(signal.SIGTERM)
            try:
                async for _ in ws:
                    pass
            except websockets.ConnectionClosed:
                pass
            return ws.close_code, started

    close_code, started = asyncio.run(watch_then_sigterm())
    assert close_code is not None  # a close frame, not a dropped TCP connection
    live_server.process.wait(10)
    assert time.monotonic() - started < 10
    with sqlite3.connect(live_server.data_dir / "nnplay.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT state FROM runs WHERE id=?", (run_id,)).fetchone()[0] == "interrupted"


def test_kill_9_then_restart_keeps_finished_runs(tmp_path: Path, mnist_source: Path) -> None:
    data = make_data_dir(tmp_path, mnist_source)
    server = start_server(data, tmp_path / "a.log")
    http = httpx.Client(base_url=server.url, timeout=10)
    done = http.post("/api/runs", json=SMALL).json()["id"]
    asyncio.run(collect(server, done))
    killed = http.post("/api/runs", json={**SMALL, "epochs": 200, "batch_size": 10}).json()["id"]
    deadline = time.monotonic() + 30
    while http.get(f"/api/runs/{killed}").json()["epochs_done"] < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(5)
    again = start_server(data, tmp_path / "b.log")
    try:
        http = httpx.Client(base_url=again.url, timeout=10)
        assert http.get(f"/api/runs/{done}").json()["state"] == "finished"
        assert len(http.get(f"/api/runs/{done}").json()["history"]) == 2
        assert http.get(f"/api/runs/{done}/model").status_code == 200
        cut = http.get(f"/api/runs/{killed}").json()
        assert cut["state"] == "interrupted" and len(cut["history"]) >= 1
    finally:
        stop_server(again)


def test_default_model_is_trained_in_the_background_while_the_server_answers(
    tmp_path: Path, mnist_source: Path
) -> None:
    server = start_server(
        make_data_dir(tmp_path, mnist_source), tmp_path / "server.log", {"NNPLAY_TRAIN_DEFAULT_MODEL": "1"}
    )
    try:
        http = httpx.Client(base_url=server.url, timeout=10)
        health = http.get("/api/health").json()
        assert health["default_model"] == "training" and health["default_model_run"]
        assert http.post("/api/predict", json={"image": digit_png()}).status_code == 404  # not yet, and says so
        deadline = time.monotonic() + 240
        while http.get("/api/health").json()["default_model"] != "ready":
            assert time.monotonic() < deadline, "the default model took too long"
            time.sleep(0.5)
        run = http.get(f"/api/runs/{health['default_model_run']}").json()
        assert run["kind"] == "default" and run["test_accuracy"] >= 0.98  # the preset's promise, on real MNIST
        r = http.post("/api/predict", json={"image": digit_png()})
        assert r.status_code == 200 and r.json()["model"] == "default" and r.json()["digit"] == 7
    finally:
        stop_server(server)
