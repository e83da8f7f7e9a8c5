"""The Docker packaging (Dockerfile, .dockerignore, compose.yaml) stays in step with the code it packages:
every NNPLAY_* variable it sets is a real setting, every `nnplay` command it runs parses, the seed layout is
the one the server copies from, and its health check works against a real server. No Docker needed; one
opt-in test runs a built image when NNPLAY_CONTAINER_IMAGE names one and `docker` is on PATH."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from engine.datasets.mnist import FILES, mnist_dir
from server.cli import build_parser
from server.settings import Settings
from tests.conftest import ROOT, LiveServer, free_port

SEED = Path("/opt/nnplay/seed")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    ins = instructions()
    last_from = max(i for i, (word, _) in enumerate(ins) if word == "FROM")
    return ins[last_from:]


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for word, args in stage:
        if word == "ENV":
            for pair in shlex.split(args):
                key, _, value = pair.partition("=")
                env[key] = value
    return env


def test_base_images_are_pinned_and_the_runtime_is_slim_python() -> None:
    froms = [args.split()[0] for word, args in instructions() if word == "FROM"]
    stages = {args.split()[-1] for word, args in instructions() if word == "FROM" and " AS " in args.upper()}
    for image in froms:
        if image in stages:
            continue
        _, _, tag = image.partition(":")
        assert tag and tag != "latest", f"base image {image} is not pinned by tag"
    assert froms[-1].startswith("python:3.11-slim-bookworm"), froms[-1]
    assert any(image.startswith("node:") for image in froms), "no Node stage for npm ci"


def test_runtime_runs_the_server_as_a_non_root_user_on_a_data_volume() -> None:
    stage = final_stage()
    last = {word: args for word, args in stage}
    assert last["USER"] not in ("root", "0"), last["USER"]
    assert json.loads(last["CMD"]) == ["nnplay", "serve", "--no-fetch"]  # exec form: the server is PID 1
    assert "/data" in json.loads(last["VOLUME"])
    assert last["EXPOSE"].split() == ["8000"]
    env = env_of(stage)
    assert env["NNPLAY_DATA_DIR"] == "/data"
    assert env["NNPLAY_SEED_DATA_DIR"] == str(SEED)
    assert env["NNPLAY_HOST"] == "0.0.0.0"
    assert env["NNPLAY_PORT"] == "8000"
    # the server sets BLAS threads itself; pinning them to 1 would cap every run at one core
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        assert name not in env


def test_every_nnplay_variable_is_a_real_setting() -> None:
    fields = set(Settings.model_fields)
    for key in env_of(instructions()):  # every stage's
        if key.startswith("NNPLAY_"):
            assert key.removeprefix("NNPLAY_").lower() in fields, f"{key} is not a setting in server/settings.py"


def test_settings_read_from_the_image_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in env_of(final_stage()).items():
        if key.startswith("NNPLAY_"):
            monkeypatch.setenv(key, value)
    settings = Settings()
    assert settings.data_dir == Path("/data")
    assert settings.seed_data_dir == SEED
    assert settings.frontend_dir == Path(env_of(final_stage())["NNPLAY_FRONTEND_DIR"])
    assert (settings.host, settings.port) == ("0.0.0.0", 8000)


def test_every_nnplay_command_in_the_dockerfile_parses() -> None:
    commands = [json.loads(args) for word, args in final_stage() if word == "CMD"]
    for word, args in instructions():
        if word == "RUN":
            for part in args.split("&&"):
                argv = shlex.split(part)
                if argv and argv[0] == "nnplay":
                    commands.append(argv)
    names = {argv[1] for argv in commands if len(argv) > 1}
    assert {"data", "train", "serve"} <= names, names
    for argv in commands:
        if argv[1].startswith("-"):  # `nnplay --help`, the install check
            continue
        build_parser().parse_args(argv[1:])  # SystemExit (a failed test) on an unknown option


def test_the_seed_the_image_copies_is_where_the_server_looks() -> None:
    copied = [args.split()[1] for word, args in final_stage() if word == "COPY" and args.startswith("--from=seed")]
    assert str(mnist_dir(SEED)) + "/" in copied
    assert str(SEED / "models" / "default.npz") in copied
    assert all(name.endswith(".gz") for name in FILES.values())  # `nnplay data fetch` writes these names
    runs = " ".join(args for word, args in instructions() if word == "RUN")
    assert f"--data-dir {SEED}" in runs
    assert f"--out {SEED}/models/default.npz" in runs


def test_the_frontend_the_server_serves_is_copied() -> None:
    env = env_of(final_stage())
    frontend = env["NNPLAY_FRONTEND_DIR"]
    copies = " ".join(args for word, args in final_stage() if word == "COPY")
    for sub in ("public", "node_modules/uplot/dist", "node_modules/swagger-ui-dist"):
        assert f"{frontend}/{sub}/" in copies, sub
    lock = json.loads((ROOT / "frontend" / "package-lock.json").read_text())
    assert {"node_modules/uplot", "node_modules/swagger-ui-dist"} <= set(lock["packages"])


def test_dockerignore_keeps_local_state_out_but_not_the_sources() -> None:
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    required = [
        ".git",
        ".venv",
        "**/node_modules",
        "**/__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".hypothesis",
        "artifacts",
        "data",
        "**/*.npz",
        "**/*.sqlite3*",
    ]
    for pattern in required:
        assert pattern in patterns, pattern
    for source in ("engine", "server", "frontend", "frontend/public", "pyproject.toml"):
        assert source not in patterns and f"{source}/" not in patterns, source


def test_every_python_package_is_installed_by_pip() -> None:
    """The image installs the project non-editable (pip install .): a package missing from pyproject's list is
    absent there though every test run from the checkout passes (server.cluster was, and `nnplay worker` failed)."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("engine", "server")
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert found <= listed, f"not in [tool.setuptools] packages: {sorted(found - listed)}"


def test_compose_file() -> None:
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    service = compose["services"]["nnplay"]
    assert service["build"] == "."
    assert "8000:8000" in service["ports"]
    assert "nnplay-data:/data" in service["volumes"]
    assert service["restart"] == "unless-stopped"
    assert service["stop_grace_period"] == "10s"
    assert "nnplay-data" in compose["volumes"]


CLUSTER_SERVICES = ("redis", "postgres", "web1", "web2", "worker", "proxy")


def test_compose_cluster_profile() -> None:
    """The classroom profile: every variable a real setting, every command one the CLI parses, both web
    replicas one token and one owner secret, a proxy that passes WebSockets, workers reading the image's MNIST."""
    yaml = pytest.importorskip("yaml")
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert "profiles" not in services["nnplay"]  # `docker compose up` still starts the single-process service
    for name in CLUSTER_SERVICES:
        assert services[name]["profiles"] == ["cluster"], name
    fields = set(Settings.model_fields)
    for name in ("web1", "web2", "worker"):
        env = services[name]["environment"]
        for key in env:
            assert key.removeprefix("NNPLAY_").lower() in fields, f"{name}: {key} is not a setting"
        assert env["NNPLAY_BROKER_URL"].startswith("redis://redis:")
        assert env["NNPLAY_DATABASE_URL"].startswith("postgresql://") and "@postgres:" in env["NNPLAY_DATABASE_URL"]
        assert env["NNPLAY_TOKEN"] == "${NNPLAY_TOKEN:-}"  # the same given token on both replicas
        assert {"redis", "postgres"} <= set(services[name]["depends_on"])
        assert all(d["condition"] == "service_healthy" for d in services[name]["depends_on"].values())
    assert services["web1"] == services["web2"]
    assert "nnplay-web-data:/data" in services["web1"]["volumes"]  # owner-secret shared by the replicas
    serve = shlex.split(services["web1"]["command"][-1].rsplit(";", 1)[1])
    assert serve[:2] == ["exec", "nnplay"]
    build_parser().parse_args(serve[2:])
    assert services["worker"]["command"] == ["nnplay", "worker"]
    build_parser().parse_args(services["worker"]["command"][1:])
    assert services["worker"]["environment"]["NNPLAY_DATA_DIR"] == str(SEED)
    nginx = compose["configs"]["nginx-nnplay"]["content"]
    for needed in ("server web1:8000", "server web2:8000", "proxy_set_header Upgrade", "proxy_set_header Host"):
        assert needed in nginx, needed
    assert set(services["proxy"]["depends_on"]) == {"web1", "web2"}


def healthcheck_code() -> str:
    args = final_stage()
    check = next(a for w, a in args if w == "HEALTHCHECK")
    argv = json.loads(check[check.index("CMD") + 3 :].strip())
    assert argv[:2] == ["python", "-c"], "the health check must not need curl"
    return str(argv[2])


def test_healthcheck_passes_against_a_live_server(live_server: LiveServer) -> None:
    port = live_server.url.rsplit(":", 1)[1]
    env = {**os.environ, "NNPLAY_PORT": port}
    result = subprocess.run([sys.executable, "-c", healthcheck_code()], env=env, timeout=30, capture_output=True)
    assert result.returncode == 0, result.stderr


def test_healthcheck_fails_when_nothing_answers() -> None:
    env = {**os.environ, "NNPLAY_PORT": str(free_port())}
    result = subprocess.run([sys.executable, "-c", healthcheck_code()], env=env, timeout=30, capture_output=True)
    assert result.returncode != 0


@pytest.mark.slow
@pytest.mark.skipif(
    not (os.environ.get("NNPLAY_CONTAINER_IMAGE") and shutil.which("docker")),
    reason="set NNPLAY_CONTAINER_IMAGE to a built image (docker build -t nnplay .) and have docker on PATH",
)
def test_built_image_serves_predicts_and_stops_on_sigterm() -> None:
    image = os.environ["NNPLAY_CONTAINER_IMAGE"]
    port = free_port()
    cid = subprocess.run(
        ["docker", "run", "-d", "--rm", "-p", f"127.0.0.1:{port}:8000", image],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        health: dict[str, object] = {}
        while time.monotonic() < deadline:
            try:
                health = json.load(urllib.request.urlopen(f"{base}/api/health", timeout=2))
                break
            except OSError:
                time.sleep(0.5)
        assert health.get("mnist") == "ready" and health.get("default_model") == "ready", health
        pixels = [[1.0 if 5 <= r <= 22 and 13 <= c <= 14 else 0.0 for c in range(28)] for r in range(28)]
        request = urllib.request.Request(
            f"{base}/api/predict",
            data=json.dumps({"pixels": pixels}).encode(),
            headers={"content-type": "application/json"},
        )
        assert json.load(urllib.request.urlopen(request, timeout=10))["digit"] == 1
    finally:
        started = time.monotonic()
        subprocess.run(["docker", "stop", "--time", "10", cid], check=False, capture_output=True)
        stopped_in = time.monotonic() - started
    assert stopped_in < 10, f"the container took {stopped_in:.1f}s to stop: SIGTERM was not handled"
