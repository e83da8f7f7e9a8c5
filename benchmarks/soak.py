"""A bounded soak of the real server on loopback: N WebSocket clients (a third never read) watch runs back to
back while a predictor hammers /api/predict; stops by itself after M minutes and reports errors, p99 latencies
and the server's memory growth (RSS from /proc, after warm-up vs at the end).

usage: python benchmarks/soak.py [--clients 30] [--minutes 2]
Exit status 1 if any request failed with a 5xx or the server logged a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.datasets.mnist import default_data_dir, load_mnist, mnist_arrays
from engine.model import Model
from engine.trainer import Trainer
from server.config import DenseConfig as LayerConfig
from server.config import RunConfig
from server.launch import make_data_dir, start_server, stop_server


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def soak(base: str, ws_base: str, pid: int, clients: int, seconds: float) -> dict[str, object]:
    config = RunConfig(layers=[LayerConfig(units=64)], epochs=3, train_subset=10_000)
    deadline = time.monotonic() + seconds
    errors: list[str] = []
    predict_lat: list[float] = []
    epochs_seen = 0
    runs = 0
    pixels = [[1.0 if 6 <= r <= 21 and 13 <= c <= 15 else 0.0 for c in range(28)] for r in range(28)]
    rss_start: float | None = None
    rss_trace: list[int] = []

    async def watch(run_id: str, reading: bool) -> None:
        nonlocal epochs_seen
        try:
            async with websockets.connect(
                f"{ws_base}/ws/runs/{run_id}", max_size=2**24, max_queue=None if reading else 1
            ) as ws:
                if not reading:
                    await asyncio.sleep(seconds)  # never reads; the server must not care
                    return
                async for raw in ws:
                    m = json.loads(raw)
                    epochs_seen += m["type"] == "epoch"
                    if m["type"] == "end":
                        return
        except (websockets.ConnectionClosed, OSError) as exc:
            if reading:
                errors.append(f"ws: {exc!r}")

    async def predictor(http: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            r = await http.post("/api/predict", json={"pixels": pixels})
            predict_lat.append(time.perf_counter() - started)
            if r.status_code >= 500:
                errors.append(f"predict {r.status_code}")
            await asyncio.sleep(0.01)

    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        pred = asyncio.create_task(predictor(http))
        stalled: list[asyncio.Task[None]] = []
        while time.monotonic() < deadline:
            r = await http.post("/api/runs", json=config.model_dump())
            if r.status_code >= 500:
                errors.append(f"runs {r.status_code}")
                continue
            if r.status_code != 201:
                await asyncio.sleep(0.5)
                continue
            runs += 1
            run_id = r.json()["id"]
            readers = [asyncio.create_task(watch(run_id, reading=i % 3 != 0)) for i in range(clients)]
            stalled += [t for i, t in enumerate(readers) if i % 3 == 0]
            await asyncio.gather(*[t for i, t in enumerate(readers) if i % 3 != 0])
            if rss_start is None:
                rss_start = rss_mb(pid)  # after the first run: data loaded, caches warm
            rss_trace.append(round(rss_mb(pid)))
        await pred
        server_side = (await http.get("/api/health")).json()["predict_ms"]
        for t in stalled:
            t.cancel()
        rss_end = rss_mb(pid)
    return {
        "runs": runs,
        "epochs_seen": epochs_seen,
        "errors": errors,
        "predict_n": len(predict_lat),
        "predict_p50_ms": float(np.percentile(predict_lat, 50) * 1e3),
        "predict_p99_ms": float(np.percentile(predict_lat, 99) * 1e3),
        "predict_server_side_ms": server_side,
        "rss_start_mb": rss_start,
        "rss_end_mb": rss_end,
        "rss_every_run_mb": rss_trace,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=30)
    parser.add_argument("--minutes", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data_dir(Path(tmp), default_data_dir())
        quick = RunConfig(layers=[LayerConfig(units=32)], epochs=1, train_subset=5000)
        model = Model.build(quick.model_spec())
        Trainer(model, quick.train_config(), mnist_arrays(load_mnist())).run()
        (data / "models").mkdir()
        model.save(data / "models" / "default.npz")
        server = start_server(data, Path(tmp) / "server.log")
        try:
            result = asyncio.run(soak(server.url, server.ws_url, server.process.pid, args.clients, args.minutes * 60))
        finally:
            stop_server(server)
            log = server.log()
    tracebacks = log.count("Traceback")
    summary = {k: v for k, v in result.items() if k != "rss_every_run_mb"}
    print(json.dumps({**summary, "errors": len(result["errors"]), "server_tracebacks": tracebacks}, indent=2))  # type: ignore[arg-type]
    trace: list[int] = result["rss_every_run_mb"]  # type: ignore[assignment]
    half = len(trace) // 2
    # stalled clients come and go (each is dropped after the send timeout), so RSS saws up and down: compare
    # the peaks of the two halves, not two arbitrary samples
    growth = max(trace[half:]) - max(trace[:half]) if half else 0
    print(f"memory: peak {max(trace[:half] or [0])} MB in the first half, {max(trace[half:] or [0])} MB in the second")
    print(f"memory growth, second-half peak minus first-half peak: {growth:+d} MB")
    return 1 if result["errors"] or tracebacks else 0


if __name__ == "__main__":
    raise SystemExit(main())
