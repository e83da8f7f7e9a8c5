"""A classroom burst against cluster mode, every part real and on this machine: redis-server, PostgreSQL,
`--replicas` web replicas (`nnplay serve`) and `--workers` workers (`nnplay worker`).

`--students` simulated students start a small run each at the same moment. Student i creates its run on
replica i % R with a client of its own (so a cookie, an owner, of its own) and watches it over a WebSocket on
the NEXT replica, so every epoch has to travel worker -> Redis -> another web process -> browser. Meanwhile a
prober calls POST /api/predict in a loop, because drawing a digit must stay quick while the class trains.

It answers: did every run finish, did every watcher see every epoch, how long did runs wait for a worker
(started_at - created_at, from the database), how long did they train, how long the whole burst took, and
/api/predict's latency during it. The figures belong to the machine they were measured on (printed).

usage: python benchmarks/bench_cluster.py [--students 30] [--workers 2] [--replicas 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import os
import platform
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image, ImageDraw
from threadpoolctl import threadpool_info
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.datasets.mnist import default_data_dir, is_available
from server.launch import LiveServer, make_data_dir, start_server, stop_server
from tests.servers import start_postgres, start_redis, start_worker

MODEL_RUN = {"name": "prober's model", "layers": [{"units": 32}], "epochs": 1, "train_subset": 2000}
MAX_RECONNECTS = 5  # a page reconnects when its socket closes before the end (1012: a replica or Redis went away)


def student_config(index: int, epochs: int, subset: int) -> dict[str, Any]:
    return {
        "name": f"student {index}",
        "layers": [{"units": 64}],
        "epochs": epochs,
        "batch_size": 64,
        "train_subset": subset,
    }


def digit_png() -> str:
    """A '7' as the page's canvas sends it (dark strokes on a transparent 280x280 PNG)."""
    image = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    ImageDraw.Draw(image).line([(70, 60), (210, 60), (120, 230)], fill=(0, 0, 0, 255), width=22)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


# ---- the cluster --------------------------------------------------------------------------------------------


def start_cluster(
    stack: contextlib.ExitStack, replicas: int, workers: int, students: int, keep: bool = False
) -> list[LiveServer]:
    """Every process started here is registered on `stack` the moment it exists, so it is stopped however the
    benchmark ends (failure, Ctrl-C, SIGTERM)."""
    source = default_data_dir()
    if not is_available(source):
        raise SystemExit(f"MNIST is not in {source}: run `nnplay data fetch` first")
    tmp = Path(tempfile.mkdtemp(prefix="nnplay-bench-cluster-"))
    if keep:
        print(f"logs in {tmp}", file=sys.stderr)
    else:
        stack.callback(shutil.rmtree, tmp, ignore_errors=True)
    # PostgreSQL gets a fresh mkdtemp of its own: as root it runs as the postgres user, which must reach it
    pg_tmp = Path(tempfile.mkdtemp(prefix="nnplay-bench-pg-"))
    stack.callback(shutil.rmtree, pg_tmp, ignore_errors=True)
    postgres = start_postgres(pg_tmp)
    stack.callback(postgres.stop)
    redis_server = start_redis(tmp / "redis")
    stack.callback(redis_server.stop)
    env = {
        "NNPLAY_BROKER_URL": redis_server.url,
        "NNPLAY_DATABASE_URL": postgres.create_database("bench"),
        "NNPLAY_QUEUE_NAME": f"nnplay-bench-{secrets.token_hex(4)}",
        "NNPLAY_MAX_QUEUED_RUNS": str(max(100, students + 1)),  # a class at once; the default 8 is one person's
    }
    for i in range(workers):
        worker = start_worker(env, make_data_dir(tmp / f"worker{i}", source), tmp / f"worker{i}.log")
        stack.callback(worker.stop)
    # One data directory for the replicas, as compose.yaml shares one volume: the same owner secret on each.
    web_data = make_data_dir(tmp / "web", source)
    servers = []
    for i in range(replicas):
        server = start_server(web_data, tmp / f"web{i}.log", extra_env=env)
        stack.callback(stop_server, server)
        servers.append(server)
    return servers


def wait_until_ended(client: httpx.Client, run_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = client.get(f"/api/runs/{run_id}").json()
        if run["state"] not in ("queued", "running", "paused") or time.monotonic() > deadline:
            return run
        time.sleep(0.5)


# ---- a student ----------------------------------------------------------------------------------------------


@dataclass
class Student:
    index: int
    create_on: str
    watch_on: str
    run_id: str | None = None
    create_status: int | None = None
    end_state: str | None = None  # from the WebSocket's end message
    epochs_seen: set[int] = field(default_factory=set)  # from snapshots and live epoch messages
    live_epochs: int = 0  # epoch messages received live (not from a snapshot)
    reconnects: int = 0
    error: str | None = None
    run: dict[str, Any] = field(default_factory=dict)  # GET /api/runs/{id} after the end

    def act(self, config: dict[str, Any], start: threading.Barrier, timeout: float) -> None:
        start.wait()
        try:
            with httpx.Client(base_url=self.create_on, timeout=30, trust_env=False) as client:
                answer = client.post("/api/runs", json=config)
                self.create_status = answer.status_code
                if answer.status_code != 201:
                    self.error = f"POST /api/runs: {answer.status_code} {answer.text[:200]}"
                    return
                self.run_id = answer.json()["id"]
                try:
                    self.watch(time.monotonic() + timeout)
                finally:  # the database's view of the run, whatever the watcher saw
                    self.run = client.get(f"/api/runs/{self.run_id}").json()
        except Exception as exc:  # recorded, so one broken student does not hide the others' figures
            self.error = f"{type(exc).__name__}: {exc}"

    def watch(self, deadline: float) -> None:
        """As the page does: read until the end message, reconnecting (for a fresh snapshot) when cut off."""
        url = f"{self.watch_on}/ws/runs/{self.run_id}"
        while self.end_state is None:
            with connect(url, max_size=None, proxy=None, open_timeout=30) as ws:
                try:
                    while self.end_state is None:
                        self.receive(ws.recv(timeout=max(1.0, deadline - time.monotonic())))
                except ConnectionClosed:
                    pass
            if self.end_state is None:
                self.reconnects += 1
                if self.reconnects > MAX_RECONNECTS or time.monotonic() > deadline:
                    raise RuntimeError(f"no end message after {self.reconnects} connections")

    def receive(self, raw: str | bytes) -> None:
        text = raw if isinstance(raw, str) else raw.decode()
        # Progress messages are most of the traffic: told apart by their first bytes (the server writes "type"
        # first), so this process leaves the machine's cores to the servers it measures.
        if text.startswith('{"type":"progress"'):
            return
        message = json.loads(text)
        kind = message.get("type")
        if kind == "snapshot":
            self.epochs_seen.update(int(e["epoch"]) for e in message["run"]["history"])
        elif kind == "epoch":
            self.epochs_seen.add(int(message["epoch"]))
            self.live_epochs += 1
        elif kind == "end":
            self.end_state = message["state"]


# ---- the prober ---------------------------------------------------------------------------------------------


class PredictProber:
    """POST /api/predict in a loop on one replica, one request at a time, as a student drawing would."""

    def __init__(self, base_url: str, model_id: str) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=30, trust_env=False)
        self.body = {"image": digit_png(), "model": model_id}
        self.latencies_ms: list[float] = []
        self.statuses: dict[int, int] = {}
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.loop, name="predict-prober", daemon=True)

    def call(self) -> None:
        began = time.perf_counter()
        status = self.client.post("/api/predict", json=self.body).status_code
        if status == 200:
            self.latencies_ms.append((time.perf_counter() - began) * 1000)
        self.statuses[status] = self.statuses.get(status, 0) + 1

    def loop(self) -> None:
        while not self.stopped.is_set():
            try:
                self.call()
            except httpx.HTTPError as exc:
                self.statuses[-1] = self.statuses.get(-1, 0) + 1  # no answer at all
                print(f"predict: {exc}", file=sys.stderr)
            self.stopped.wait(0.05)  # about the pace of someone drawing and redrawing

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(35)
        self.client.close()


# ---- the report ---------------------------------------------------------------------------------------------


def spread(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"min": None, "median": None, "p90": None, "max": None}
    return {
        "min": min(values),
        "median": statistics.median(values),
        "p90": float(np.percentile(values, 90)),
        "max": max(values),
    }


def machine() -> dict[str, Any]:
    blas = [
        {k: pool.get(k) for k in ("internal_api", "version", "architecture", "threading_layer", "num_threads")}
        for pool in threadpool_info()
    ]
    return {
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_before": os.getloadavg(),
        "blas_of_this_process": blas,
        "blas_threads_per_worker": 1,  # `nnplay worker` pins it (server/cluster/worker.py)
    }


def summarize(
    args: argparse.Namespace, students: list[Student], prober: PredictProber, wall: float, host: dict[str, Any]
) -> dict[str, Any]:
    states: dict[str, int] = {}
    for s in students:
        key = s.run.get("state") or ("unknown" if s.run_id else f"not created ({s.create_status})")
        states[key] = states.get(key, 0) + 1
    all_epochs = set(range(1, args.epochs + 1))
    runs = [s.run for s in students if s.run.get("started_at") is not None]
    waits = [r["started_at"] - r["created_at"] for r in runs]
    durations = [r["finished_at"] - r["started_at"] for r in runs if r.get("finished_at") is not None]
    latencies = prober.latencies_ms
    return {
        "students": args.students,
        "workers": args.workers,
        "replicas": args.replicas,
        "run_config": student_config(0, args.epochs, args.subset) | {"name": "student N"},
        "states": states,
        "watchers_with_every_epoch": sum(1 for s in students if s.epochs_seen >= all_epochs),
        "watchers_with_the_end": sum(1 for s in students if s.end_state is not None),
        "live_epoch_messages": sum(s.live_epochs for s in students),
        "reconnects": sum(s.reconnects for s in students),
        "errors": [f"student {s.index}: {s.error}" for s in students if s.error],
        "queue_wait_s": spread(waits),
        "run_duration_s": spread(durations),
        "wall_s": wall,
        "predict": {
            "calls": sum(prober.statuses.values()),
            "statuses": {str(k): v for k, v in sorted(prober.statuses.items())},
            "p50_ms": float(np.percentile(latencies, 50)) if latencies else None,
            "p99_ms": float(np.percentile(latencies, 99)) if latencies else None,
        },
        "machine": host,
        "students_detail": [
            {
                "index": s.index,
                "run_id": s.run_id,
                "state": s.run.get("state"),
                "epochs_seen": sorted(s.epochs_seen),
                "reconnects": s.reconnects,
                "worker": s.run.get("worker"),
                "error": s.error,
            }
            for s in students
        ],
    }


def markdown(report: dict[str, Any]) -> str:
    def secs(d: dict[str, float | None]) -> str:
        return " / ".join("-" if v is None else f"{v:.1f}" for v in d.values())

    predict = report["predict"]
    p50, p99 = predict["p50_ms"], predict["p99_ms"]
    m = report["machine"]
    blas = ", ".join(f"{b['internal_api']} {b['version']} ({b['architecture']})" for b in m["blas_of_this_process"])
    rows = [
        ("students, workers, web replicas", f"{report['students']}, {report['workers']}, {report['replicas']}"),
        ("runs by state", ", ".join(f"{k}: {v}" for k, v in sorted(report["states"].items()))),
        ("watchers that saw every epoch", f"{report['watchers_with_every_epoch']} of {report['students']}"),
        ("watchers that saw the end", f"{report['watchers_with_the_end']} of {report['students']}"),
        ("WebSocket reconnects", str(report["reconnects"])),
        ("queue wait, s (min / median / p90 / max)", secs(report["queue_wait_s"])),
        ("run duration, s (min / median / p90 / max)", secs(report["run_duration_s"])),
        ("burst wall time, s", f"{report['wall_s']:.1f}"),
        (
            "/api/predict during the burst",
            f"p50 {p50:.1f} ms, p99 {p99:.1f} ms over {predict['calls']} calls {predict['statuses']}"
            if p50 is not None and p99 is not None
            else f"no successful call {predict['statuses']}",
        ),
        ("machine", f"{m['cores']} cores, load {m['load_average_before'][0]:.2f} before; BLAS: {blas}"),
    ]
    lines = ["| measure | value |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)]
    lines += [f"\nerror: {e}" for e in report["errors"]]
    return "\n".join(lines)


# ---- main ---------------------------------------------------------------------------------------------------


def burst(args: argparse.Namespace, servers: list[LiveServer]) -> dict[str, Any]:
    host = machine()  # the load average before this benchmark adds its own
    # A model for the prober, trained by the cluster itself (and a check that it works before the burst).
    with httpx.Client(base_url=servers[0].url, timeout=30, trust_env=False) as client:
        model_run = client.post("/api/runs", json=MODEL_RUN).json()["id"]
        ended = wait_until_ended(client, model_run, args.timeout)
        if ended["state"] != "finished":
            raise RuntimeError(f"the prober's model run ended {ended['state']}: {ended.get('message')}")
    prober = PredictProber(servers[0].url, model_run)
    prober.call()  # loads the model into the replica before the clock starts
    prober.latencies_ms.clear()
    prober.statuses.clear()

    count = len(servers)
    students = [
        Student(i, create_on=servers[i % count].url, watch_on=servers[(i + 1) % count].ws_url)
        for i in range(args.students)
    ]
    start = threading.Barrier(args.students + 1)
    threads = [
        threading.Thread(
            target=s.act,
            args=(student_config(s.index, args.epochs, args.subset), start, args.timeout),
            name=f"student-{s.index}",
            daemon=True,
        )
        for s in students
    ]
    for thread in threads:
        thread.start()
    prober.thread.start()
    start.wait()
    began = time.monotonic()
    for thread in threads:
        thread.join(args.timeout + 60)
    wall = time.monotonic() - began
    prober.stop()
    return summarize(args, students, prober, wall, host)


def interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--subset", type=int, default=5000, help="training images per run")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds a student waits for its run's end")
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (every process's log)")
    args = parser.parse_args()
    if min(args.students, args.workers, args.replicas) < 1:
        parser.error("--students, --workers and --replicas must be at least 1")

    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the ExitStack stops every process started.
    signal.signal(signal.SIGTERM, interrupt)
    try:
        with contextlib.ExitStack() as stack:
            servers = start_cluster(stack, args.replicas, args.workers, args.students, keep=args.keep)
            report = burst(args, servers)
    except KeyboardInterrupt:
        print("interrupted: every process this benchmark started has been stopped", file=sys.stderr)
        return 130
    print(markdown(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwritten to {args.json}")
    return 0 if not report["errors"] and report["states"] == {"finished": args.students} else 1


if __name__ == "__main__":
    raise SystemExit(main())
