"""The server under watch, measured in one run against the engine alone (loopback only, stops by itself).

  * epochs/s of a run trained through the server with 5 WebSocket clients attached (one never reads;
    --clients 50 --stalled 17 for the hardening issue's crowd)
    against the same config trained by the engine alone in this process (goal >= 0.95);
  * /api/predict latency, p50/p99 over 1000 calls while a run trains (goal p99 < 50 ms end to end), and
    the server-side time of the same calls;
  * time from an epoch's end (stamped by the server) to its message reaching a reading client (goal p99 < 50 ms).
With --crowd --clients 50 --stalled 17: training speed with that crowd watching against nobody watching.

usage: python benchmarks/bench_server.py [--epochs 6] [--subset 30000]
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
import numpy as np
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.datasets.mnist import default_data_dir, load_mnist, mnist_arrays
from engine.model import Model
from engine.trainer import EpochEnd, Event, Trainer
from server.config import DenseConfig as LayerConfig
from server.config import RunConfig
from server.launch import make_data_dir, start_server, stop_server


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def engine_alone(config: RunConfig) -> list[float]:
    """Wall time between consecutive epoch ends (callbacks included), as for the served run."""
    data = mnist_arrays(load_mnist())
    seconds: list[float] = []

    def on_event(event: Event) -> None:
        if isinstance(event, EpochEnd):
            seconds.append(time.time())

    Trainer(Model.build(config.model_spec(), seed=config.seed), config.train_config(), data, on_event).run()
    return list(np.diff(seconds))


async def watched_run(base: str, ws_base: str, config: RunConfig, clients: int, stalled_n: int) -> dict[str, Any]:
    """One run watched by `clients` WebSocket clients, `stalled_n` of which never read."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        run_id = (await http.post("/api/runs", json=config.model_dump())).json()["id"]
        url = f"{ws_base}/ws/runs/{run_id}"
        stalled = [await websockets.connect(url, max_size=2**24, max_queue=1) for _ in range(stalled_n)]
        epoch_seconds: list[float] = []
        delivery: list[float] = []

        async def reader(record: bool) -> int:
            count = 0
            async with websockets.connect(url, max_size=2**24) as ws:
                async for raw in ws:
                    # Only the recording client parses: the others tell the message type from its first bytes
                    # (the server writes "type" first), so this process spends little of the machine's two
                    # cores that the server's training also needs.
                    head = raw[:24] if isinstance(raw, str) else ""
                    if head.startswith('{"type":"epoch"'):
                        count += 1
                        if record:
                            received = time.time()
                            m = json.loads(raw)
                            delivery.append(received - m["ended_at"])
                            epoch_seconds.append(m["ended_at"])
                    if head.startswith('{"type":"end"'):
                        return count
            return count

        readers = [asyncio.create_task(reader(i == 0)) for i in range(clients - len(stalled))]
        counts = await asyncio.gather(*readers)
        for ws in stalled:
            ws.transport.abort()
        return {"epoch_seconds": list(np.diff(epoch_seconds)), "delivery": delivery, "counts": counts}


async def unwatched_run(base: str, config: RunConfig) -> list[float]:
    """The same run with no client attached: epoch end times come from the stored history afterwards."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        run_id = (await http.post("/api/runs", json=config.model_dump())).json()["id"]
        while (run := (await http.get(f"/api/runs/{run_id}")).json())["state"] in ("queued", "running"):
            await asyncio.sleep(0.5)
        return list(np.diff([e["ended_at"] for e in run["history"]]))


def crowd(server_url: str, ws_url: str, config: RunConfig, clients: int, stalled: int, repeats: int) -> None:
    """The hardening issue's promise: training speed with a crowd watching vs with nobody watching, in the
    same server, runs interleaved."""
    alone: list[float] = []
    watched: list[float] = []
    for i in range(repeats):
        for crowded in (False, True) if i % 2 == 0 else (True, False):
            if crowded:
                watched += asyncio.run(watched_run(server_url, ws_url, config, clients, stalled))["epoch_seconds"]
            else:
                alone += asyncio.run(unwatched_run(server_url, config))
    med = statistics.median
    print(f"no clients          {1 / med(alone):.3f} epochs/s")
    print(f"{clients} clients ({stalled} never read) {1 / med(watched):.3f} epochs/s")
    print(f"ratio               {med(alone) / med(watched):.3f}   (goal >= 0.95), {repeats} runs each, interleaved")


async def predict_while_training(base: str, long_config: RunConfig) -> dict[str, Any]:
    """A run trains while /api/predict is called 1000 times."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        second = (await http.post("/api/runs", json=long_config.model_dump())).json()["id"]
        pixels = [[1.0 if 6 <= r <= 21 and 13 <= c <= 15 else 0.0 for c in range(28)] for r in range(28)]
        await asyncio.sleep(1.0)  # let training get going
        predict_e2e: list[float] = []
        for _ in range(1000):
            started = time.perf_counter()
            r = await http.post("/api/predict", json={"pixels": pixels})
            predict_e2e.append(time.perf_counter() - started)
            assert r.status_code == 200, r.text
        assert (await http.get(f"/api/runs/{second}")).json()["state"] == "running", "the run ended too early"
        server_side = (await http.get("/api/health")).json()["predict_ms"]
        await http.post(f"/api/runs/{second}/stop")
        return {"predict": predict_e2e, "server_side": server_side}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--subset", type=int, default=30000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clients", type=int, default=5, help="WebSocket clients watching each run")
    parser.add_argument("--stalled", type=int, default=1, help="how many of them never read")
    parser.add_argument("--crowd", action="store_true", help="only compare --clients watchers against none")
    args = parser.parse_args()
    config = RunConfig(layers=[LayerConfig(units=128)], epochs=args.epochs, train_subset=args.subset)
    predict_config = config.model_copy(update={"epochs": 50})
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = make_data_dir(Path(tmp), default_data_dir())
        # the default model answers predictions: train a small one with the engine and install it
        server = start_server(data_dir, Path(tmp) / "server.log")
        try:
            quick = RunConfig(layers=[LayerConfig(units=64)], epochs=1, train_subset=5000)
            model = Model.build(quick.model_spec())
            Trainer(model, quick.train_config(), mnist_arrays(load_mnist())).run()
            (data_dir / "models").mkdir(exist_ok=True)
            model.save(data_dir / "models" / "default.npz")
            if args.crowd:
                asyncio.run(unwatched_run(server.url, config))  # warm-up: the server loads MNIST once
                crowd(server.url, server.ws_url, config, args.clients, args.stalled, args.repeats)
                return
            alone: list[float] = []
            served: dict[str, Any] = {"epoch_seconds": [], "delivery": [], "counts": []}
            for _ in range(args.repeats):  # interleaved, so drifting machine load hits both alike
                alone += engine_alone(config)
                watched = asyncio.run(watched_run(server.url, server.ws_url, config, args.clients, args.stalled))
                for key in served:
                    served[key] += watched[key]
            served.update(asyncio.run(predict_while_training(server.url, predict_config)))
        finally:
            stop_server(server)
    med = statistics.median
    ratio = med(alone) / med(served["epoch_seconds"])
    print(f"config: 784-128-10 relu adam, batch 128, {args.subset} training images, {args.epochs} epochs")
    print(f"engine alone        {1 / med(alone):.3f} epochs/s")
    print(
        f"through the server  {1 / med(served['epoch_seconds']):.3f} epochs/s  "
        f"({args.clients} WebSocket clients, {args.stalled} never read)"
    )
    print(f"ratio               {ratio:.3f}   (goal >= 0.95)")
    print(f"epoch messages per reading client: {served['counts']} of {args.epochs} (per run, {args.repeats} runs)")
    p = served["predict"]
    print(
        f"/api/predict e2e    p50 {percentile(p, 50) * 1e3:.1f} ms  p99 {percentile(p, 99) * 1e3:.1f} ms  (n={len(p)})"
    )
    ss = served["server_side"]
    print(f"/api/predict server p50 {ss['p50']:.2f} ms  p99 {ss['p99']:.2f} ms  (goal p99 < 10 ms, n={ss['n']})")
    d = served["delivery"]
    print(
        f"epoch end -> client p50 {percentile(d, 50) * 1e3:.1f} ms  p99 {percentile(d, 99) * 1e3:.1f} ms  (n={len(d)})"
    )


if __name__ == "__main__":
    main()
