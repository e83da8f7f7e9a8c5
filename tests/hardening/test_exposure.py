"""Exposure promises against the real server (`nnplay serve` as a subprocess on a free loopback port):
connection hygiene, other origins and rebound hosts, tokens, the cost of a prediction, settings checked at
start, and small leaks. Each heavy check has a fast default version; the full sizes are `-m slow`.
Run with -s to see the FIGURES lines the README's table quotes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import random
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import websockets
from PIL import Image, ImageDraw

from engine.model import Model, ModelSpec
from engine.spec import DenseSpec
from tests.conftest import ROOT, LiveServer, make_data_dir, stop_server
from tests.hardening.exposure import HealthProbe, health_once, port_of, report, rss_mb, serve

EVIL = "https://evil.example"
SMALL_RUN = {"layers": [{"units": 8}], "epochs": 1, "train_subset": 600, "batch_size": 100}


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory, mnist_source: Path) -> Iterator[LiveServer]:
    """A loopback server with default settings (no token)."""
    tmp = tmp_path_factory.mktemp("plain")
    server = serve(make_data_dir(tmp, mnist_source), tmp / "server.log")
    yield server
    stop_server(server)
    assert "Traceback" not in server.log(), server.log()[-3000:]


def fresh(tmp_path: Path, mnist_source: Path, **kwargs: object) -> LiveServer:
    return serve(make_data_dir(tmp_path, mnist_source), tmp_path / "server.log", **kwargs)  # type: ignore[arg-type]


def tiny_model(units: int = 8, layers: int = 1) -> bytes:
    return Model.build(ModelSpec.mlp(hidden=tuple(DenseSpec(units) for _ in range(layers)))).to_bytes()


# 2. Connection hygiene -------------------------------------------------------------------------------------


async def _slowloris(port: int, count: int, trickle_every: float, give_up: float) -> list[float]:
    """Open `count` connections that send a request head one header at a time, forever; return the seconds
    after which the server closed each (give_up for those it never closed)."""
    started = time.monotonic()

    async def one(i: int) -> float:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return time.monotonic() - started  # refused outright counts as closed
        try:
            writer.write(f"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n".encode())
            n = 0
            while time.monotonic() - started < give_up:
                try:
                    data = await asyncio.wait_for(reader.read(65536), trickle_every)
                    if not data or reader.at_eof():
                        return time.monotonic() - started
                except TimeoutError:
                    n += 1
                    writer.write(f"X-Slow-{n}: {i}\r\n".encode())
                    await writer.drain()
            return give_up
        except OSError:
            return time.monotonic() - started
        finally:
            writer.close()

    async def all_of_them() -> list[float]:
        tasks = []
        for i in range(count):
            tasks.append(asyncio.create_task(one(i)))
            if i % 100 == 99:
                await asyncio.sleep(0.01)
        return await asyncio.gather(*tasks)

    return await all_of_them()


# The latency promises (health p99) are measured by the opt-in slow versions on a quiet machine; the fast default
# versions check behaviour, and only that health never stalls for seconds (a blocked event loop would), because
# CI machines share their cores and a millisecond bound there measures the neighbours.
STALL_MS = 2000


def _slowloris_check(server: LiveServer, count: int, within: float, name: str, p99_ms: float = STALL_MS) -> None:
    port = port_of(server)
    with HealthProbe(port) as probe:
        closed_after = asyncio.run(_slowloris(port, count, trickle_every=1.0, give_up=within + 5))
    report(
        name,
        connections=count,
        all_closed_s=round(max(closed_after), 1),
        health_p99_ms=round(probe.p99_ms(), 1),
        health_n=len(probe.samples),
        health_failed=probe.failures(),
    )
    assert max(closed_after) < within, f"some connections still open after {within} s"
    assert probe.failures() == 0 and probe.p99_ms() < p99_ms


def test_slowloris_connections_are_closed_and_health_stays_fast(tmp_path: Path, mnist_source: Path) -> None:
    server = fresh(tmp_path, mnist_source, env={"NNPLAY_HEADER_TIMEOUT": "3", "NNPLAY_MAX_CONNECTIONS": "200"})
    try:
        _slowloris_check(server, 300, within=8, name="slowloris-300")
    finally:
        stop_server(server)


@pytest.mark.slow
def test_slowloris_3000_connections_default_settings(tmp_path: Path, mnist_source: Path) -> None:
    server = fresh(tmp_path, mnist_source)
    try:
        _slowloris_check(server, 3000, within=60, name="slowloris-3000", p99_ms=100)
    finally:
        stop_server(server)


def test_sixteen_mib_headers_are_refused_with_bounded_memory(plain: LiveServer) -> None:
    port = port_of(plain)
    before = rss_mb(plain.process.pid)
    big = b"a" * (16 * 1024 * 1024)

    def send_one() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            with contextlib.suppress(OSError):  # the server answers and closes before all of it is sent
                s.sendall(f"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Big: ".encode() + big)
            try:
                return s.recv(4096)
            except OSError:
                return b""

    replies = [send_one() for _ in range(30)]
    growth = rss_mb(plain.process.pid) - before
    report("huge-headers", requests=30, header_mib=16, rss_growth_mb=round(growth, 1))
    assert all(r.startswith(b"HTTP/1.1 431") or r == b"" for r in replies), replies[:2]
    assert sum(r.startswith(b"HTTP/1.1 431") for r in replies) >= 25
    assert b"max_header_bytes" in next(r for r in replies if r)
    assert growth < 50
    assert health_once(port)[1] == 200


def _idle_sockets_check(tmp_path: Path, mnist_source: Path, nofile: int, sockets: int, name: str) -> None:
    server = fresh(tmp_path, mnist_source, nofile=nofile)
    held: list[socket.socket] = []
    try:
        port = port_of(server)
        for _ in range(sockets):
            try:
                held.append(socket.create_connection(("127.0.0.1", port), timeout=5))
            except OSError:
                break
        time.sleep(1.0)  # let the server accept what it will
        seconds, status = health_once(port)
        http = httpx.Client(base_url=server.url, timeout=10)
        created = http.post("/api/runs", json=SMALL_RUN)  # writes the database: needs descriptors
        listed = http.get("/api/runs")
        report(
            name, ulimit_n=nofile, idle_sockets=len(held), health_ms=round(seconds * 1000, 1), run=created.status_code
        )
        assert status == 200 and seconds < 1
        assert created.status_code == 201, created.text
        assert listed.status_code == 200
        http.post(f"/api/runs/{created.json()['id']}/stop")
    finally:
        for s in held:
            s.close()
        stop_server(server)
    assert "Too many open files" not in server.log()


def test_idle_sockets_past_the_descriptor_limit_leave_the_server_working(tmp_path: Path, mnist_source: Path) -> None:
    _idle_sockets_check(tmp_path, mnist_source, nofile=400, sockets=800, name="idle-sockets-800")


@pytest.mark.slow
def test_idle_sockets_fifteen_thousand(tmp_path: Path, mnist_source: Path) -> None:
    _idle_sockets_check(tmp_path, mnist_source, nofile=4096, sockets=15_000, name="idle-sockets-15000")


def test_past_the_connection_cap_with_every_connection_busy_is_503(tmp_path: Path, mnist_source: Path) -> None:
    server = fresh(tmp_path, mnist_source, env={"NNPLAY_MAX_CONNECTIONS": "10"})
    busy = []
    try:
        port = port_of(server)
        for _ in range(10):  # each has sent a request head and is still sending its body: not idle
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            s.sendall(
                f"POST /api/runs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
                "content-length: 100\r\n\r\n{".encode()
            )
            busy.append(s)
        time.sleep(0.5)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            reply = s.recv(4096)
        assert reply.startswith(b"HTTP/1.1 503") and b"retry-after: 1" in reply.lower(), reply
    finally:
        for s in busy:
            s.close()
    deadline = time.monotonic() + 5
    while health_once(port_of(server))[1] != 200:  # once they are gone, it serves again
        assert time.monotonic() < deadline
        time.sleep(0.1)
    stop_server(server)


# 3. Other origins and rebound hosts -------------------------------------------------------------------------


def test_websocket_from_another_origin_is_refused(plain: LiveServer) -> None:
    http = httpx.Client(base_url=plain.url)
    run_id = http.post("/api/runs", json={**SMALL_RUN, "epochs": 20}).json()["id"]

    async def attempt(origin: str | None) -> int:
        headers = {"Origin": origin} if origin else {}
        try:
            async with websockets.connect(f"{plain.ws_url}/ws/runs/{run_id}", additional_headers=headers) as ws:
                await ws.recv()
                return 101
        except websockets.InvalidStatus as exc:
            return exc.response.status_code

    assert asyncio.run(attempt(EVIL)) == 403
    assert asyncio.run(attempt(None)) == 101  # scripts send no Origin
    assert asyncio.run(attempt(plain.url)) == 101  # the page itself
    assert http.post(f"/api/runs/{run_id}/stop").status_code == 200


def test_state_changes_from_another_origin_are_403(plain: LiveServer) -> None:
    http = httpx.Client(base_url=plain.url)  # keeps the owner cookie: the run's owner, from the wrong origin
    run_id = http.post("/api/runs", json={**SMALL_RUN, "epochs": 20}).json()["id"]
    for method, path in (("POST", f"/api/runs/{run_id}/stop"), ("DELETE", f"/api/runs/{run_id}")):
        r = http.request(method, path, headers={"Origin": EVIL})
        assert r.status_code == 403 and "another origin" in r.json()["detail"], r.text
        r = http.request(method, path, headers={"Origin": "null"})
        assert r.status_code == 403
    assert http.get(f"/api/runs/{run_id}", headers={"Origin": EVIL}).status_code == 200  # reads are fine
    assert http.post(f"/api/runs/{run_id}/stop", headers={"Origin": plain.url}).status_code == 200


def test_bodies_of_the_wrong_type_are_415(plain: LiveServer) -> None:
    model = tiny_model()
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        r = httpx.post(f"{plain.url}/api/models", content=model, headers={"content-type": content_type})
        assert r.status_code == 415 and "application/octet-stream" in r.json()["detail"], r.text
        r = httpx.post(f"{plain.url}/api/runs", content=json.dumps(SMALL_RUN), headers={"content-type": content_type})
        assert r.status_code == 415 and "application/json" in r.json()["detail"]
    ok = httpx.post(f"{plain.url}/api/models", content=model, headers={"content-type": "application/octet-stream"})
    assert ok.status_code == 201


def test_other_host_names_are_400(plain: LiveServer) -> None:
    port = port_of(plain)
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example"):
        r = httpx.get(f"{plain.url}/api/runs", headers={"Host": host})
        assert r.status_code == 400 and "NNPLAY_ALLOWED_HOSTS" in r.json()["detail"], host
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        assert httpx.get(f"{plain.url}/api/health", headers={"Host": host}).status_code == 200, host


def test_allowed_hosts_setting(tmp_path: Path, mnist_source: Path) -> None:
    server = fresh(tmp_path, mnist_source, env={"NNPLAY_ALLOWED_HOSTS": "nnplay.lan, other.lan"})
    try:
        assert httpx.get(f"{server.url}/api/health", headers={"Host": "nnplay.lan:80"}).status_code == 200
        assert httpx.get(f"{server.url}/api/health", headers={"Host": "evil.example"}).status_code == 400
    finally:
        stop_server(server)


# 4. Tokens ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory, mnist_source: Path) -> Iterator[tuple[LiveServer, str]]:
    """Bound to every interface, so a token is generated and printed."""
    tmp = tmp_path_factory.mktemp("exposed")
    server = serve(make_data_dir(tmp, mnist_source), tmp / "server.log", host="0.0.0.0")
    match = re.search(r"open (http://127\.0\.0\.1:\d+/\?token=([A-Za-z0-9_-]+))", server.log())
    assert match, server.log()
    yield server, match.group(2)
    stop_server(server)


def test_a_non_loopback_bind_prints_a_token_url_and_requires_it(exposed: tuple[LiveServer, str]) -> None:
    server, token = exposed
    assert f"http://127.0.0.1:{port_of(server)}/?token={token}" in server.log()
    for path in ("/api/runs", "/api/models", "/docs", "/openapi.json", "/api/options"):
        r = httpx.get(f"{server.url}{path}")
        assert r.status_code == 401 and "needs a token" in r.text, path
    assert (
        httpx.get(f"{server.url}/api/runs", headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code
        == 401
    )
    bearer = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{server.url}/api/runs", headers=bearer).status_code == 200
    assert httpx.post(f"{server.url}/api/runs", json=SMALL_RUN).status_code == 401


def test_health_is_open_and_tells_nothing_private(exposed: tuple[LiveServer, str]) -> None:
    server, token = exposed
    public = httpx.get(f"{server.url}/api/health").json()
    assert set(public) == {"status", "mnist", "default_model"}
    full = httpx.get(f"{server.url}/api/health", headers={"Authorization": f"Bearer {token}"}).json()
    assert "predict_ms" in full


def test_token_in_the_url_sets_a_strict_cookie_for_the_page_and_its_websocket(exposed: tuple[LiveServer, str]) -> None:
    server, token = exposed
    page = httpx.get(f"{server.url}/")
    assert page.status_code == 401 and "text/html" in page.headers["content-type"]
    assert "needs a token" in page.text and "printed in the server" in page.text
    r = httpx.get(f"{server.url}/?token={token}&x=1")
    assert r.status_code == 303 and r.headers["location"] == "/?x=1"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and token in cookie
    name = cookie.split("=", 1)[0]
    assert httpx.get(f"{server.url}/?token=not-the-token-0123456789").status_code == 401
    jar = {name: token}
    assert httpx.get(f"{server.url}/api/runs", cookies=jar).status_code == 200
    run_id = httpx.post(f"{server.url}/api/runs", json=SMALL_RUN, cookies=jar).json()["id"]

    async def watch(headers: dict[str, str]) -> str | int:
        try:
            async with websockets.connect(f"{server.ws_url}/ws/runs/{run_id}", additional_headers=headers) as ws:
                return str(json.loads(await ws.recv())["type"])
        except websockets.InvalidStatus as exc:
            return exc.response.status_code

    assert asyncio.run(watch({})) == 401
    assert (
        asyncio.run(watch({"Cookie": f"{name}={token}", "Origin": f"http://127.0.0.1:{port_of(server)}"})) == "snapshot"
    )


def test_loopback_needs_no_token_unless_one_is_set(plain: LiveServer, tmp_path: Path, mnist_source: Path) -> None:
    assert httpx.get(f"{plain.url}/api/runs").status_code == 200
    assert "token" not in plain.log()
    token = "a-token-from-the-environment-42"
    server = fresh(tmp_path, mnist_source, env={"NNPLAY_TOKEN": token})
    try:
        assert httpx.get(f"{server.url}/api/runs").status_code == 401
        assert httpx.get(f"{server.url}/api/runs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert token not in server.log()  # a token the operator chose is not written to the log
    finally:
        stop_server(server)


# 5. Cost per request -----------------------------------------------------------------------------------------


def big_drawing() -> str:
    """A 2048x2048 RGBA PNG of a scribbled digit, about 30-40 kB."""
    img = Image.new("RGBA", (2048, 2048), (0, 0, 0, 0))
    rng = random.Random(1)
    points = [(rng.randint(600, 1400), rng.randint(300, 1700)) for _ in range(40)]
    ImageDraw.Draw(img).line(points, fill=(0, 0, 0, 255), width=60, joint="curve")
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _predict_flood(server: LiveServer, clients: int, seconds: float, name: str, p99_ms: float = STALL_MS) -> None:
    up = httpx.post(
        f"{server.url}/api/models", content=tiny_model(), headers={"content-type": "application/octet-stream"}
    )
    body = json.dumps({"image": big_drawing(), "model": up.json()["id"]})
    statuses: list[int] = []
    before = rss_mb(server.process.pid)
    peak = [before]

    async def client(http: httpx.AsyncClient, stop: float) -> None:
        while time.monotonic() < stop:
            try:
                r = await http.post("/api/predict", content=body, headers={"content-type": "application/json"})
                statuses.append(r.status_code)
                if r.status_code in (429, 503):
                    await asyncio.sleep(float(r.headers.get("retry-after", "1")) / 4)
            except httpx.HTTPError:
                statuses.append(0)
            peak[0] = max(peak[0], rss_mb(server.process.pid))

    async def flood() -> None:
        limits = httpx.Limits(max_connections=clients)
        async with httpx.AsyncClient(base_url=server.url, timeout=30, limits=limits) as http:
            stop = time.monotonic() + seconds
            await asyncio.gather(*(client(http, stop) for _ in range(clients)))

    with HealthProbe(port_of(server)) as probe:
        asyncio.run(flood())
    counts = {s: statuses.count(s) for s in sorted(set(statuses))}
    growth = peak[0] - before
    report(
        name,
        clients=clients,
        seconds=seconds,
        statuses=counts,
        health_p99_ms=round(probe.p99_ms(), 1),
        rss_growth_mb=round(growth, 1),
    )
    assert set(counts) <= {200, 429, 503}, counts
    assert counts.get(200, 0) > 0
    assert probe.failures() == 0 and probe.p99_ms() < p99_ms
    assert growth < 300


def test_predict_flood_fast(tmp_path: Path, mnist_source: Path) -> None:
    server = fresh(tmp_path, mnist_source)
    try:
        _predict_flood(server, clients=20, seconds=5, name="predict-flood-20x5s")
    finally:
        stop_server(server)


@pytest.mark.slow
def test_predict_flood_fifty_clients_twenty_seconds(tmp_path: Path, mnist_source: Path) -> None:
    server = fresh(tmp_path, mnist_source)
    try:
        _predict_flood(server, clients=50, seconds=20, name="predict-flood-50x20s", p99_ms=200)
    finally:
        stop_server(server)


def test_uploaded_models_obey_the_run_limits(tmp_path: Path, mnist_source: Path) -> None:
    env = {"NNPLAY_MAX_UNITS": "64", "NNPLAY_MAX_LAYERS": "2", "NNPLAY_MAX_PARAMETERS": "50000"}
    server = fresh(tmp_path, mnist_source, env=env)
    octets = {"content-type": "application/octet-stream"}
    try:
        for payload, limit in (
            (tiny_model(units=65), "max_units=64"),
            (tiny_model(units=8, layers=3), "max_layers=2"),
            (tiny_model(units=64, layers=2), "max_parameters=50000"),
        ):
            r = httpx.post(f"{server.url}/api/models", content=payload, headers=octets)
            assert r.status_code == 422 and limit in r.json()["detail"], r.text
        assert httpx.post(f"{server.url}/api/models", content=tiny_model(units=32), headers=octets).status_code == 201
    finally:
        stop_server(server)


# 8. Settings checked at start --------------------------------------------------------------------------------


def nnplay_serve(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    import os

    full = {**os.environ, "NNPLAY_DATA_DIR": str(tmp_path / "data"), "NNPLAY_TRAIN_DEFAULT_MODEL": "0", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--no-fetch", *args],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"NNPLAY_MAX_CONCURRENT_RUNS": "0"}, "NNPLAY_MAX_CONCURRENT_RUNS"),
        ({"NNPLAY_PORT": "70000"}, "NNPLAY_PORT"),
        ({"NNPLAY_WS_QUEUE_SIZE": "0"}, "NNPLAY_WS_QUEUE_SIZE"),
        ({"NNPLAY_MAX_CONNECTIONS": "-1"}, "NNPLAY_MAX_CONNECTIONS"),
        ({"NNPLAY_HEADER_TIMEOUT": "0"}, "NNPLAY_HEADER_TIMEOUT"),
        ({"NNPLAY_TOKEN": "short"}, "NNPLAY_TOKEN"),
        ({"NNPLAY_PORT": "eighty"}, "NNPLAY_PORT"),
    ],
)
def test_bad_settings_are_refused_with_one_line(tmp_path: Path, env: dict[str, str], named: str) -> None:
    done = nnplay_serve(tmp_path, env=env)
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], done.stderr
    assert "serving on" not in done.stdout and "Traceback" not in done.stderr


def test_a_data_dir_that_is_a_file_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a directory")
    done = nnplay_serve(tmp_path)
    assert done.returncode == 2 and "NNPLAY_DATA_DIR" in done.stderr and "not a directory" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_serving_on_is_printed_only_after_the_bind(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = nnplay_serve(tmp_path, "--host", "127.0.0.1", "--port", str(port))
    assert done.returncode == 1 and "serving on" not in done.stdout, done.stdout
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr


def test_port_zero_binds_a_free_port_and_says_which(tmp_path: Path, mnist_source: Path) -> None:
    import os

    log = tmp_path / "log"
    env = {
        **os.environ,
        "NNPLAY_DATA_DIR": str(make_data_dir(tmp_path, mnist_source)),
        "NNPLAY_TRAIN_DEFAULT_MODEL": "0",
    }
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "serve", "--no-fetch", "--port", "0"],
            cwd=ROOT,
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while not (match := re.search(r"serving on http://127\.0\.0\.1:(\d+)", log.read_text())):
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            time.sleep(0.1)
        port = int(match.group(1))
        assert port not in (0, 8000)
        for _ in range(100):
            if health_once(port)[1] == 200:
                break
            time.sleep(0.1)
        assert health_once(port)[1] == 200
    finally:
        proc.terminate()
        proc.wait(10)


# 9. Small leaks ----------------------------------------------------------------------------------------------


def test_redoc_is_off_and_docs_are_offline(plain: LiveServer) -> None:
    assert httpx.get(f"{plain.url}/redoc").status_code == 404
    assert httpx.get(f"{plain.url}/docs").status_code == 200


def test_a_model_with_huge_metadata_is_told_its_header_is_too_large(plain: LiveServer) -> None:
    model = Model.build(ModelSpec.mlp(hidden=(DenseSpec(8),)))
    model.meta = {"notes": "x" * 300_000}  # 1.2 MB as a NumPy unicode array
    r = httpx.post(f"{plain.url}/api/models", content=model.to_bytes(), headers={"content-type": "application/zip"})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert "header" in detail and "too large" in detail and "1000000" in detail and "missing" not in detail


def test_predict_without_a_default_model_says_how_to_make_one(plain: LiveServer) -> None:
    r = httpx.post(f"{plain.url}/api/predict", json={"pixels": np.eye(28).tolist()})
    assert r.status_code == 404
    detail = r.json()["detail"]
    assert "not available" in detail and "NNPLAY_TRAIN_DEFAULT_MODEL" in detail and "being trained" not in detail
