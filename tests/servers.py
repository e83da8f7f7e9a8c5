"""Real PostgreSQL and Redis servers for the tests, on free loopback ports in temporary directories: what the
cluster-mode code talks to in production, never a mock. Each can be stopped and started again on the same port
and data, to test what our code does while a server is away and after it is back.

The binaries are Debian's (``make test`` installs the postgresql and redis-server packages when missing).
PostgreSQL refuses to run as root: as root, its files belong to the ``postgres`` user and it runs through
``runuser``.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import redis

START_TIMEOUT = 20.0  # seconds a server may take to answer after start


class MissingServer(RuntimeError):
    """The server's binaries are not installed."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _running_as_root() -> bool:
    return os.geteuid() == 0


def postgres_bin_dir() -> Path:
    """Debian's newest /usr/lib/postgresql/<version>/bin, or the directory of initdb on PATH."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise MissingServer(
        "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): `make test` installs Debian's "
        "postgresql package, or run `apt-get install postgresql`"
    )


def _as_postgres(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if _running_as_root() else command


def _give_to_postgres(path: Path) -> None:
    if _running_as_root():
        shutil.chown(path, "postgres", "postgres")


@dataclass
class PostgresServer:
    bin_dir: Path
    data_dir: Path
    socket_dir: Path
    log_file: Path
    port: int
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url_of(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start (or start again, on the same port and data) and wait until it accepts connections."""
        if self.process is not None and self.process.poll() is None:
            return
        command = [
            str(self.bin_dir / "postgres"),
            "-D", str(self.data_dir),
            "-c", "fsync=off",
            "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off",
            "-c", "max_connections=200",
            "-k", str(self.socket_dir),
            "-h", "127.0.0.1",
            "-p", str(self.port),
        ]  # fmt: skip
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(_as_postgres(command), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited at start: see {self.log_file}:\n{self._log_tail()}")
            try:
                with psycopg.connect(self.url, connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"PostgreSQL did not answer in {START_TIMEOUT}s:\n{self._log_tail()}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        """Fast shutdown: open connections are cut, as when a real server goes away."""
        if self.process is None:
            return
        if self.process.poll() is None:
            # pg_ctl as the server's user: runuser would turn a signal into a SIGKILL two seconds later
            stop = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "10", "stop"]
            subprocess.run(_as_postgres(stop), capture_output=True, check=False)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def create_database(self, name: str | None = None) -> str:
        """A new, empty database; its URL."""
        name = name or f"t_{secrets.token_hex(6)}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
        return self.url_of(name)

    def _log_tail(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-2000:]
        except OSError:
            return ""


def start_postgres(tmp_dir: Path) -> PostgresServer:
    """initdb into tmp_dir/pgdata (trust, no fsync) and start it on a free loopback port. As root, tmp_dir
    must be reachable by the postgres user (a fresh directory under /tmp is)."""
    bin_dir = postgres_bin_dir()
    tmp_dir.mkdir(parents=True, exist_ok=True)
    data_dir, socket_dir = tmp_dir / "pgdata", tmp_dir / "pgsocket"
    for path in (tmp_dir, data_dir, socket_dir):
        path.mkdir(exist_ok=True)
        _give_to_postgres(path)
    done = subprocess.run(
        _as_postgres([str(bin_dir / "initdb"), "-D", str(data_dir), "-A", "trust", "-U", "postgres", "--no-sync"]),
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed:\n{done.stdout}\n{done.stderr}")
    server = PostgresServer(bin_dir, data_dir, socket_dir, tmp_dir / "postgres.log", free_port())
    server.start()
    return server


def redis_binary() -> str:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if found is None:
        raise MissingServer(
            "Redis is not installed (no redis-server): `make test` installs Debian's redis-server package, "
            "or run `apt-get install redis-server`"
        )
    return found


@dataclass
class RedisServer:
    binary: str
    dir: Path
    log_file: Path
    port: int
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or start again, on the same port) and wait until PING answers."""
        if self.process is not None and self.process.poll() is None:
            return
        command = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.dir),
        ]  # fmt: skip
        with open(self.log_file, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        client = redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=1)
        try:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited at start: see {self.log_file}")
                try:
                    if client.ping():
                        return
                except redis.exceptions.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server did not answer PING in {START_TIMEOUT}s")
                time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def start_redis(tmp_dir: Path) -> RedisServer:
    """redis-server on a free loopback port, nothing persisted."""
    binary = redis_binary()
    tmp_dir.mkdir(parents=True, exist_ok=True)
    server = RedisServer(binary, tmp_dir, tmp_dir / "redis.log", free_port())
    server.start()
    return server


@dataclass
class WorkerProcess:
    """A real `nnplay worker` (a Celery worker) in its own process."""

    log_file: Path
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        """kill -9: no goodbye, no cleanup."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM, as docker stop sends it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")


def start_worker(env: dict[str, str], data_dir: Path, log_file: Path) -> WorkerProcess:
    """`nnplay worker` with the given NNPLAY_* settings and its own data directory; returns once Celery says
    it is ready to take tasks."""
    full_env = {**os.environ, **env, "NNPLAY_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
    with open(log_file, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "server.cli", "worker"], env=full_env, stdout=log, stderr=subprocess.STDOUT
        )
    worker = WorkerProcess(log_file, process)
    deadline = time.monotonic() + 60
    while " ready." not in worker.log():
        if process.poll() is not None:
            raise RuntimeError(f"the worker exited at start:\n{worker.log()[-3000:]}")
        if time.monotonic() > deadline:
            worker.kill()
            raise RuntimeError(f"the worker was not ready in 60 s:\n{worker.log()[-3000:]}")
        time.sleep(0.05)
    return worker
