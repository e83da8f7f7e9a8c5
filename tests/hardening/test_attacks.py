"""Promises of the hardening issue, each attacked: bad input, many and misbehaving clients, divergence,
and a data directory that refuses writes."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.app import create_app
from server.config import RunConfig
from server.settings import Settings
from tests.conftest import LiveServer, make_data_dir, start_server, stop_server
from tests.server.test_api import SMALL, digit_png, wait_for_end

NUMERIC_FIELDS = ["learning_rate", "batch_size", "epochs", "l2", "seed", "train_subset"]
NESTED_FIELDS = [
    ("optimizer", "momentum"),
    ("optimizer", "beta1"),
    ("optimizer", "beta2"),
    ("schedule", "step_size"),
    ("schedule", "gamma"),
    ("layers", "units"),
    ("layers", "dropout"),
]
NASTY = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, -1, 0, -0.0, 1e308, -1e308, 10**30, 2**63, True, None]),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.floats(),
    st.integers(),
)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, mnist_source: Path) -> Iterator[TestClient]:
    # one run at a time and no queue: a config that happens to be valid is answered 201 or 429, cheaply
    s = Settings(
        data_dir=make_data_dir(tmp_path_factory.mktemp("attack"), mnist_source),
        train_default_model=False,
        max_concurrent_runs=1,
        max_queued_runs=0,
        max_epochs=1,
    )
    with TestClient(create_app(s)) as c:
        yield c


def body_with(field: str | tuple[str, str], value: Any) -> dict[str, Any]:
    body: dict[str, Any] = {**SMALL, "epochs": 1}
    if isinstance(field, str):
        body[field] = value
    elif field[0] == "layers":
        body["layers"] = [{"units": 8, field[1]: value}]
    else:
        body[field[0]] = {field[1]: value}
    return body


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(field=st.sampled_from(NUMERIC_FIELDS + NESTED_FIELDS), value=NASTY)
def test_any_value_in_any_numeric_field_is_a_clean_4xx_or_accepted(client: TestClient, field: Any, value: Any) -> None:
    raw = json.dumps(body_with(field, value))  # NaN/Infinity go out as the bare JSON extensions
    r = client.post("/api/runs", content=raw, headers={"content-type": "application/json"})
    assert r.status_code in (201, 422, 429), (field, value, r.status_code, r.text)
    if r.status_code == 201:
        RunConfig.model_validate(json.loads(raw))  # only schema-valid configs are accepted
        client.post(f"/api/runs/{r.json()['id']}/stop")
    assert "NaN" not in r.text and "Infinity" not in r.text
    if r.status_code == 422 and isinstance(r.json()["detail"], list):
        assert all(set(e) == {"loc", "msg", "type"} for e in r.json()["detail"])  # no input reflected


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    payload=st.recursive(
        st.none() | st.booleans() | st.floats() | st.text(max_size=8),
        lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
        max_leaves=10,
    )
)
def test_arbitrary_json_bodies_never_crash_any_post(client: TestClient, payload: Any) -> None:
    raw = json.dumps(payload)
    for path in ("/api/runs", "/api/predict"):
        r = client.post(path, content=raw, headers={"content-type": "application/json"})
        assert r.status_code in (201, 404, 409, 422, 429), (path, raw, r.status_code, r.text)
        if path == "/api/runs" and r.status_code == 201:
            client.post(f"/api/runs/{r.json()['id']}/stop")


def test_architectures_over_the_limits_are_refused_before_allocating(client: TestClient) -> None:
    # 2048 x 2048 x 8 layers would be ~130 MB of float32 weights; the answer comes from arithmetic alone
    huge = {**SMALL, "layers": [{"units": 100_000}] * 8}
    r = client.post("/api/runs", json=huge)
    assert r.status_code == 422 and "max_" in r.json()["detail"]
    r = client.post("/api/runs", json={**SMALL, "batch_size": 60_001})
    assert r.status_code == 422


def test_security_headers_and_csp_on_every_page(client: TestClient) -> None:
    for path in ("/", "/api/health", "/docs"):
        r = client.get(path)
        assert "content-security-policy" in r.headers, path
        assert r.headers["x-content-type-options"] == "nosniff"
    assert "'unsafe-inline'" not in client.get("/").headers["content-security-policy"]


def test_divergence_ends_the_run_cleanly_and_the_server_carries_on(client: TestClient) -> None:
    body = {**SMALL, "epochs": 1, "learning_rate": 1000.0, "optimizer": {"name": "sgd"}}
    run_id = client.post("/api/runs", json=body).json()["id"]
    end = wait_for_end(client, run_id)[-1]
    assert end["state"] == "diverged" and "learning rate" in end["message"]
    assert client.get(f"/api/runs/{run_id}").json()["state"] == "diverged"
    assert client.get("/api/health").json()["status"] == "ok"


@pytest.fixture
def server(tmp_path: Path, mnist_source: Path) -> Iterator[LiveServer]:
    s = start_server(make_data_dir(tmp_path, mnist_source), tmp_path / "server.log")
    yield s
    stop_server(s)
    assert "Traceback" not in s.log(), s.log()[-4000:]


def test_websocket_message_over_the_limit_closes_1009_and_garbage_gets_an_error(server: LiveServer) -> None:
    run_id = httpx.post(f"{server.url}/api/runs", json={**SMALL, "epochs": 30, "batch_size": 10}).json()["id"]

    async def attack() -> tuple[list[str], int | None]:
        replies = []
        async with websockets.connect(f"{server.ws_url}/ws/runs/{run_id}", max_size=2**24) as ws:
            await ws.recv()  # snapshot
            for junk in ("not json", "[1, 2]", '{"action": 42}', "\x00\xff", "[" * 15_000):
                await ws.send(junk)
            while len(replies) < 5:
                m = json.loads(await ws.recv())
                if m["type"] == "error":
                    replies.append(m["detail"])
            await ws.send("x" * (64 * 1024))
            try:
                while True:
                    await ws.recv()
            except websockets.ConnectionClosed:
                pass
            return replies, ws.close_code

    replies, code = asyncio.run(attack())
    assert len(replies) == 5
    assert code == 1009
    assert httpx.get(f"{server.url}/api/runs/{run_id}").json()["state"] in ("running", "paused")
    httpx.post(f"{server.url}/api/runs/{run_id}/stop")


def test_fifty_clients_a_third_stalled_and_some_leaving_midway(server: LiveServer) -> None:
    epochs = 4
    run_id = httpx.post(f"{server.url}/api/runs", json={**SMALL, "epochs": epochs, "train_subset": 6000}).json()["id"]
    url = f"{server.ws_url}/ws/runs/{run_id}"

    async def reader() -> list[int]:
        got = []
        async with websockets.connect(url, max_size=2**24) as ws:
            async for raw in ws:
                m = json.loads(raw)
                if m["type"] == "epoch":
                    got.append(m["epoch"])
                if m["type"] == "end":
                    break
        return got

    async def leaver() -> None:
        ws = await websockets.connect(url, max_size=2**24)
        await ws.recv()
        ws.transport.abort()  # vanish without a close frame, mid-stream

    async def crowd() -> list[list[int]]:
        stalled = [await websockets.connect(url, max_size=2**24, max_queue=1) for _ in range(17)]
        leavers = [asyncio.create_task(leaver()) for _ in range(8)]
        readers = [asyncio.create_task(reader()) for _ in range(25)]
        await asyncio.gather(*leavers)
        result = await asyncio.gather(*readers)
        for ws in stalled:
            ws.transport.abort()
        return result

    results = asyncio.run(crowd())
    assert all(r == list(range(1, epochs + 1)) for r in results), results  # every fast client got every epoch
    detail = httpx.get(f"{server.url}/api/runs/{run_id}").json()
    assert detail["state"] == "finished" and detail["epochs_done"] == epochs
    assert httpx.get(f"{server.url}/api/health").json()["status"] == "ok"


def test_unwritable_models_dir_gives_clear_errors_and_the_server_keeps_serving(
    tmp_path: Path, mnist_source: Path
) -> None:
    data = make_data_dir(tmp_path, mnist_source)
    (data / "models").write_text("a file where the models directory should be")  # every model write fails
    with TestClient(create_app(Settings(data_dir=data, train_default_model=False))) as client:
        run_id = client.post("/api/runs", json=SMALL).json()["id"]
        end = wait_for_end(client, run_id)[-1]
        assert end["state"] == "finished" and "could not be saved" in end["message"]
        detail = client.get(f"/api/runs/{run_id}").json()
        assert len(detail["history"]) == 2 and not detail["has_model"]  # the curves are kept
        from engine.model import Model

        model_bytes = Model.build(RunConfig(layers=[{"units": 4}]).model_spec()).to_bytes()  # type: ignore[list-item]
        r = client.post("/api/models", content=model_bytes)
        assert r.status_code == 507 and "could not store" in r.json()["detail"]
        assert client.get("/api/health").json()["status"] == "ok"
        assert client.post("/api/predict", json={"image": digit_png()}).status_code == 404


def png_url(img: Any) -> str:
    import base64
    import io

    buf = io.BytesIO()
    img.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_every_kind_of_image_predicts_or_gets_a_clear_4xx(client: TestClient) -> None:
    import base64
    import struct
    import zlib

    from PIL import Image, ImageDraw

    from engine.model import Model

    model = Model.build(RunConfig(layers=[{"units": 8}]).model_spec())  # type: ignore[list-item]
    model_id = client.post("/api/models?name=probe", content=model.to_bytes()).json()["id"]

    def drawn(mode: str, bg: Any, ink: Any, size: int = 200) -> str:
        img = Image.new(mode, (size, size), bg)
        ImageDraw.Draw(img).line([(100, 30), (100, 170)], fill=ink, width=18)
        return png_url(img)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0))
    bomb = b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b"")
    palette = Image.new("P", (120, 120), 0)
    palette.putpalette([255, 255, 255, 0, 0, 0] + [0] * 762)
    ImageDraw.Draw(palette).line([(60, 10), (60, 110)], fill=1, width=10)
    good = drawn("RGBA", (0, 0, 0, 0), (0, 0, 0, 255))
    cases = {
        "rgba canvas": (good, {200}),
        "greyscale light-on-dark": (drawn("L", 0, 255), {200}),
        "opaque rgb dark-on-light": (drawn("RGB", (255, 255, 255), (0, 0, 0)), {200}),
        "16-bit": (drawn("I;16", 0, 65535), {200}),
        "palette": (png_url(palette), {200}),
        "1x1": (png_url(Image.new("L", (1, 1), 255)), {422}),
        "all blank": (png_url(Image.new("RGBA", (280, 280), (0, 0, 0, 0))), {422}),
        "all ink": (png_url(Image.new("RGB", (280, 280), (0, 0, 0))), {200, 422}),
        "decompression bomb": ("data:image/png;base64," + base64.b64encode(bomb).decode(), {413}),
        "truncated png": (good[: len(good) // 2], {422}),
        "not a png": ("data:image/png;base64," + base64.b64encode(b"GIF89a" + b"\0" * 50).decode(), {422}),
        "jpeg mime": (good.replace("image/png", "image/jpeg"), {422}),
    }
    for name, (url, expected) in cases.items():
        r = client.post("/api/predict", json={"image": url, "model": model_id})
        assert r.status_code in expected, (name, r.status_code, r.text)
        if r.status_code != 200:
            assert isinstance(r.json()["detail"], str) and r.json()["detail"], name


@pytest.mark.slow
def test_soak_script_runs_clean() -> None:
    """Opt-in (pytest -m slow): the bounded soak, one minute, must report no errors."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "benchmarks/soak.py", "--clients", "30", "--minutes", "1"], cwd=root, timeout=300
    )
    assert done.returncode == 0


def test_uploaded_models_are_checked_and_nothing_is_executed(tmp_path: Path, mnist_source: Path) -> None:
    import io

    import numpy as np

    from engine.model import Model, ModelSpec

    s = Settings(data_dir=make_data_dir(tmp_path, mnist_source), train_default_model=False, max_model_bytes=2_000_000)
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (marker.write_text, ("x",))

    good = Model.build(RunConfig(layers=[{"units": 8}]).model_spec())  # type: ignore[list-item]
    with np.load(io.BytesIO(good.to_bytes()), allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}

    def npy_bytes(array: Any) -> bytes:
        buf = io.BytesIO()
        np.save(buf, array)
        return buf.getvalue()

    def npz(**changes: Any) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, **{**arrays, **changes})
        return buf.getvalue()

    wrong_io = Model.build(ModelSpec.mlp(input_size=10, output_size=3))
    attacks = {
        "pickled object array": npz(layer0_W=np.array([Evil()], dtype=object)),
        "wrong shape": npz(layer0_W=np.zeros((784, 9), np.float32)),
        "spec/array mismatch": npz(layer2_W=np.zeros((8, 10), np.float32)),
        "NaN weights": npz(layer1_W=np.full((8, 10), np.nan, np.float32)),
        "not 784 -> 10": wrong_io.to_bytes(),
        "not a zip": b"hello",
        "a bare .npy": npy_bytes(np.zeros(3, np.float32)),
        "header nested 5000 deep": npz(header=np.array("[" * 5000 + "]" * 5000)),
        "declares a huge array": npz(layer0_W=np.zeros((784, 8), np.float32), junk=np.zeros(1, np.float32)),
        "oversized member": npz(layer1_b=np.zeros(200_000, np.float32)),
    }
    with TestClient(create_app(s)) as client:
        for name, payload in attacks.items():
            r = client.post("/api/models", content=payload)
            assert r.status_code == 422, (name, r.text)
            assert "rejected model" in r.json()["detail"], name
        huge = client.post("/api/models", content=b"\0" * 2_000_001)
        assert huge.status_code == 413 and "max_model_bytes" in huge.json()["detail"]
        assert client.post("/api/models", content=good.to_bytes()).status_code == 201
        good.meta = {"test_accuracy": 10**400}  # absurd metadata is ignored, not a crash
        r = client.post("/api/models", content=good.to_bytes())
        assert r.status_code == 201 and all(m["test_accuracy"] is None for m in client.get("/api/models").json())
    assert not marker.exists()
    assert {p.name for p in (s.data_dir / "models").iterdir()} <= {
        p.name for p in (s.data_dir / "models").glob("m*.npz")
    }


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 4 MiB filesystem (tmpfs) that can be filled or remounted read-only; needs root to mount."""
    import subprocess

    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_full_then_read_only_data_dir_gives_clear_errors_and_loses_nothing(tiny_disk: Path, mnist_source: Path) -> None:
    import subprocess

    from engine.datasets.mnist import mnist_dir
    from engine.model import Model

    data = tiny_disk / "data"
    data.mkdir()
    (data / "mnist").symlink_to(mnist_dir(mnist_source))  # the data set itself lives elsewhere
    model_bytes = Model.build(RunConfig(layers=[{"units": 32}]).model_spec()).to_bytes()  # type: ignore[list-item]
    with TestClient(create_app(Settings(data_dir=data, train_default_model=False))) as client:
        first = client.post("/api/runs", json=SMALL).json()["id"]
        assert wait_for_end(client, first)[-1]["state"] == "finished"
        filler = tiny_disk / "filler"
        with open(filler, "wb") as f:  # fill the disk to the last byte
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        r = client.post("/api/models", content=model_bytes)
        assert r.status_code == 507 and "could not store" in r.json()["detail"]
        second = client.post("/api/runs", json=SMALL)
        if second.status_code == 201:  # the run row may still fit; then the model cannot
            end = wait_for_end(client, second.json()["id"])[-1]
            assert end["state"] in ("finished", "failed") and (not end["has_model"] or end["state"] == "finished")
        else:
            assert second.status_code == 507, second.text
        assert client.get("/api/health").json()["status"] == "ok"
        assert client.get(f"/api/runs/{first}").json()["state"] == "finished"  # nothing earlier is lost
        assert client.post("/api/predict", json={"image": digit_png(), "model": first}).status_code == 200
        filler.unlink()
    # the same data directory, now read-only: the server starts and serves everything it has
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
    with TestClient(create_app(Settings(data_dir=data, train_default_model=True))) as client:
        assert client.get("/api/health").json()["status"] == "ok"
        assert client.get(f"/api/runs/{first}").json()["state"] == "finished"
        assert len(client.get(f"/api/runs/{first}").json()["history"]) == 2
        assert client.post("/api/predict", json={"image": digit_png(), "model": first}).status_code == 200
        r = client.post("/api/models", content=model_bytes)
        assert r.status_code == 507 and "read-only" in r.json()["detail"].lower()
        third = client.post("/api/runs", json=SMALL)
        assert third.status_code == 507 and "readonly" in third.json()["detail"].lower()
