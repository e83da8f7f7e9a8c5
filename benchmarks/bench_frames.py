"""Live 2-D frames: how many reach a watching client, and what they cost training.

A real server (`nnplay serve` as a subprocess) trains the same 2-D run (circle, 6 hidden layers x 8 tanh
neurons, grid 64) alternately with no watcher and with one real WebSocket client that decodes every message.
Prints, per repetition, the training wall time (the run's started_at -> finished_at) and the frames per second
the client received while the run trained; then medians and the slowdown. Frames are drawn only while someone
watches, so the run without a watcher is the engine's own speed.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_frames.py [--epochs 1500] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import start_server, stop_server


def run_config(epochs: int) -> dict[str, Any]:
    return {
        "name": "bench-frames",
        "dataset": "circle",
        "data": {"points": 500, "noise": 0.1, "test_fraction": 0.5, "features": ["x1", "x2"]},
        "layers": [{"units": 8, "activation": "tanh"}] * 6,
        "batch_size": 10,
        "epochs": epochs,
        "learning_rate": 0.003,
        "seed": 1,
    }


def wait_end(http: httpx.Client, run_id: str) -> dict[str, Any]:
    while True:
        run = http.get(f"/api/runs/{run_id}").json()
        if run["state"] not in ("queued", "running", "paused"):
            return run
        time.sleep(0.2)


async def watch(ws_url: str, run_id: str) -> dict[str, Any]:
    times: list[float] = []
    sizes: list[int] = []
    async with websockets.connect(f"{ws_url}/ws/runs/{run_id}", max_size=None) as ws:
        async for text in ws:
            message = json.loads(text)  # a real client parses everything
            if message["type"] == "frame":
                times.append(time.perf_counter())
                sizes.append(len(text))
            elif message["type"] == "end":
                break
    span = times[-1] - times[0] if len(times) > 1 else float("nan")
    return {"frames": len(times), "fps": (len(times) - 1) / span, "bytes": statistics.median(sizes)}


def one(http: httpx.Client, ws_url: str, epochs: int, watched: bool) -> dict[str, Any]:
    run_id = http.post("/api/runs", json=run_config(epochs)).json()["id"]
    seen = asyncio.run(watch(ws_url, run_id)) if watched else {}
    run = wait_end(http, run_id)
    assert run["state"] == "finished", run
    return {"seconds": run["finished_at"] - run["started_at"], "test_loss": run["test_loss"], **seen}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=1500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp), Path(tmp) / "server.log")
        try:
            http = httpx.Client(base_url=server.url, timeout=30)
            bare, watched = [], []
            for i in range(args.repeat):
                bare.append(one(http, server.ws_url, args.epochs, watched=False))
                watched.append(one(http, server.ws_url, args.epochs, watched=True))
                w = watched[-1]
                print(
                    f"rep {i + 1}: no watcher {bare[-1]['seconds']:.2f} s, watched {w['seconds']:.2f} s, "
                    f"{w['frames']} frames = {w['fps']:.1f}/s, {w['bytes'] / 1024:.0f} KiB each",
                    flush=True,
                )
            t0 = statistics.median(r["seconds"] for r in bare)
            t1 = statistics.median(r["seconds"] for r in watched)
            fps = statistics.median(r["fps"] for r in watched)
            print(
                f"median: no watcher {t0:.2f} s, watched {t1:.2f} s, slowdown {100 * (t1 / t0 - 1):+.1f}%, "
                f"{fps:.1f} frames/s ({args.epochs} epochs of 250 points, batch 10, 6x8 tanh, grid 64)"
            )
        finally:
            stop_server(server)


if __name__ == "__main__":
    main()
