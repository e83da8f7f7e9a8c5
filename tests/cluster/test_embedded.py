"""The embedded default stays as simple as it was: no broker, no database server, none of their libraries."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys, tempfile
from fastapi.testclient import TestClient
from server.app import create_app
from server.settings import Settings
settings = Settings(data_dir=tempfile.mkdtemp(), train_default_model=False, allowed_hosts="testserver")
with TestClient(create_app(settings)) as client:
    assert client.get("/api/health").status_code == 200
    assert client.get("/api/runs").json() == []
print(sorted(name for name in ("celery", "kombu", "redis", "psycopg") if name in sys.modules))
"""


def test_embedded_mode_loads_no_cluster_library() -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp"}  # no NNPLAY_* from the caller
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
