"""Shared fixtures: real MNIST (fetched by the project's own chain before the tests run), a real server
started with uvicorn on a loopback port, and real PostgreSQL and Redis servers (tests/servers.py)."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from engine.datasets.mnist import default_data_dir, is_available
from server.launch import LiveServer, free_port, make_data_dir, start_server, stop_server
from server.settings import Settings
from tests.servers import (
    MissingServer,
    PostgresServer,
    RedisServer,
    WorkerProcess,
    start_postgres,
    start_redis,
    start_worker,
)

__all__ = ["LiveServer", "free_port", "make_data_dir", "start_server", "stop_server"]  # tests import them here

ROOT = Path(__file__).resolve().parent.parent
# Starlette's TestClient sends "Host: testserver"; the server answers only host names it is told to serve.
os.environ.setdefault("NNPLAY_ALLOWED_HOSTS", "testserver")


@pytest.fixture(scope="session")
def mnist_source() -> Path:
    """The data dir holding real MNIST (make test fetches it first with `nnplay data fetch`)."""
    source = default_data_dir()
    if not is_available(source):
        pytest.fail(f"MNIST is not in {source}: run `nnplay data fetch` (make test does) before the tests")
    return source


@pytest.fixture
def live_server(tmp_path: Path, mnist_source: Path) -> Iterator[LiveServer]:
    server = start_server(make_data_dir(tmp_path, mnist_source), tmp_path / "server.log")
    yield server
    stop_server(server)


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = ROOT / "artifacts"
    path.mkdir(exist_ok=True)
    return path


def copy_artifact(src: Path, artifacts: Path) -> None:
    shutil.copy(src, artifacts / src.name)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL for the session (a fresh directory under /tmp: reachable by the postgres user)."""
    tmp = Path(tempfile.mkdtemp(prefix="nnplay-pg-"))
    try:
        server = start_postgres(tmp)
    except MissingServer as exc:
        pytest.fail(str(exc))
    yield server
    server.stop()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    try:
        server = start_redis(tmp_path_factory.mktemp("redis"))
    except MissingServer as exc:
        pytest.fail(str(exc))
    yield server
    server.stop()


@pytest.fixture
def pg_database_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the session's PostgreSQL (the code under test migrates it)."""
    postgres_server.start()  # a test that stopped it may have failed before starting it again
    return postgres_server.create_database()


@dataclass
class Cluster:
    """Cluster mode on this machine, every part real: redis-server, PostgreSQL, `nnplay worker` processes
    (each with its own data directory), and the web tier's settings (the test builds the app from them)."""

    settings: Settings
    env: dict[str, str]
    tmp: Path
    mnist_source: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    def add_worker(self, **settings: str) -> WorkerProcess:
        """Another worker; keyword arguments are more of its NNPLAY_* settings (max_pause_seconds="1")."""
        name = f"worker{len(list(self.tmp.glob('worker*.log')))}"  # never reused, even after one was removed
        data_dir = make_data_dir(self.tmp / name, self.mnist_source)
        env = {**self.env, **{f"NNPLAY_{key.upper()}": value for key, value in settings.items()}}
        worker = start_worker(env, data_dir, self.tmp / f"{name}.log")
        self.workers.append(worker)
        return worker


@pytest.fixture
def cluster(tmp_path: Path, mnist_source: Path, pg_database_url: str, redis_server: RedisServer) -> Iterator[Cluster]:
    """A fresh database and a queue of its own (so no other test's tasks reach these workers), one worker."""
    redis_server.start()  # a test that stopped it may have failed before starting it again
    queue = f"nnplay-test-{secrets.token_hex(4)}"
    env = {"NNPLAY_BROKER_URL": redis_server.url, "NNPLAY_DATABASE_URL": pg_database_url, "NNPLAY_QUEUE_NAME": queue}
    settings = Settings(
        data_dir=make_data_dir(tmp_path / "web", mnist_source),
        broker_url=redis_server.url,
        database_url=pg_database_url,
        queue_name=queue,
        train_default_model=False,
    )
    cluster = Cluster(settings, env, tmp_path, mnist_source)
    cluster.add_worker()
    yield cluster
    for worker in cluster.workers:
        worker.kill()


@pytest.fixture(params=["embedded", "cluster"])
def app_settings(request: pytest.FixtureRequest, tmp_path: Path, mnist_source: Path) -> Settings:
    """The server's settings in each mode: the REST and WebSocket suites run against both."""
    if request.param == "embedded":
        return Settings(data_dir=make_data_dir(tmp_path, mnist_source), train_default_model=False)
    cluster: Cluster = request.getfixturevalue("cluster")
    return cluster.settings
