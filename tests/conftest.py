"""Shared fixtures: real MNIST (fetched by the project's own chain before the tests run) and a real server
started with uvicorn on a loopback port."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.datasets.mnist import default_data_dir, is_available
from server.launch import LiveServer, free_port, make_data_dir, start_server, stop_server

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
