"""Helpers for the exposure tests: a real `nnplay serve` subprocess (any host, environment and descriptor
limit), its resident memory, and a raw-socket /api/health probe that costs the client almost nothing."""

from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path

from tests.conftest import LiveServer, start_server


def serve(
    data_dir: Path,
    log_path: Path,
    *,
    host: str = "127.0.0.1",
    env: dict[str, str] | None = None,
    nofile: int | None = None,
) -> LiveServer:
    """Start `nnplay serve` (any host, environment and descriptor limit) and wait for /api/health."""
    return start_server(data_dir, log_path, env, host=host, nofile=nofile)


def port_of(server: LiveServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match is not None
    return int(match.group(1)) / 1024


def health_once(port: int, timeout: float = 5.0) -> tuple[float, int]:
    """(seconds, status) of one GET /api/health on a fresh connection; status 0 when it failed."""
    started = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        status = int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else 0
    except OSError:
        status = 0
    return time.perf_counter() - started, status


class HealthProbe:
    """Polls /api/health from a thread until stopped; keeps every latency and status."""

    def __init__(self, port: int, interval: float = 0.05) -> None:
        self.port, self.interval = port, interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(health_once(self.port))
            self._stop.wait(self.interval)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def p99_ms(self) -> float:
        ordered = sorted(seconds for seconds, _ in self.samples)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000

    def failures(self) -> int:
        return sum(1 for _, status in self.samples if status != 200)


def report(name: str, **figures: object) -> None:
    """One line per measured promise, for the README table (pytest -s shows it)."""
    print(f"\nFIGURES {name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()), flush=True)
