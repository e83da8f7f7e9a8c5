"""Start a real nnplay server as a subprocess on a free loopback port and wait until it answers: what the
tests, the benchmarks and the soak use to talk to the server the way a browser would."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from engine.datasets.mnist import mnist_dir

ROOT = Path(__file__).resolve().parent.parent


def make_data_dir(tmp: Path, mnist_source: Path) -> Path:
    """A fresh data dir that shares the real MNIST files (symlinked, read-only use)."""
    data = tmp / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "mnist").symlink_to(mnist_dir(mnist_source))
    return data


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    ws_url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    env: dict[str, str]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(
    data_dir: Path,
    log_path: Path,
    extra_env: dict[str, str] | None = None,
    *,
    host: str = "127.0.0.1",
    nofile: int | None = None,
) -> LiveServer:
    """`nnplay serve` on a free port (bound to `host`, with at most `nofile` descriptors if given), once its
    /api/health answers (it does without a token)."""
    port = free_port()
    env = {
        **os.environ,
        "NNPLAY_DATA_DIR": str(data_dir),
        "NNPLAY_TRAIN_DEFAULT_MODEL": "0",
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    log_file = open(log_path, "ab")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "serve", "--host", host, "--port", str(port), "--no-fetch"],
        cwd=ROOT,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        preexec_fn=None if nofile is None else lambda: _limit_descriptors(nofile),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                return LiveServer(url, f"ws://127.0.0.1:{port}", data_dir, proc, log_path, env)
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"server did not become healthy:\n{log_path.read_text()}")


def _limit_descriptors(limit: int) -> None:
    """In the child before exec: a low RLIMIT_NOFILE, to see how the server behaves without descriptors."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, max(limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1])))


def stop_server(server: LiveServer, timeout: float = 10) -> int:
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    return server.process.returncode
