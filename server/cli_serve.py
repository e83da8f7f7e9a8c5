"""`nnplay serve`: check the settings, bind the socket first (so "serving on ..." is only printed once it is
really listening), then hand it to uvicorn."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from engine.datasets.mnist import MnistError, load_mnist
from server.settings import Settings


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from server.app import create_app
    from server.auth import ensure_token, token_url
    from server.serving import bind_socket, uvicorn_options

    settings = _serve_settings(args)
    if settings is None:
        return 2
    try:
        options = uvicorn_options(settings)
    except ValueError as exc:
        print(f"nnplay: {exc}", file=sys.stderr)
        return 2
    if not args.no_fetch:
        try:
            load_mnist(settings.data_dir, fetch=True)
        except MnistError as exc:
            print(f"{exc}\n(the server starts anyway and keeps trying in the background)", file=sys.stderr)
    try:
        sock = bind_socket(settings.host, settings.port)
    except OSError as exc:
        print(f"nnplay: cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    port = int(sock.getsockname()[1])  # the real one when --port 0 asked for any free port
    settings, generated = ensure_token(settings.model_copy(update={"port": port}))
    # Training threads hold the GIL between NumPy calls; a shorter switch interval lets the event loop in
    # sooner, which is what keeps WebSocket delivery and /api/predict latency low while a run trains.
    sys.setswitchinterval(float(os.environ.get("NNPLAY_SWITCH_INTERVAL", "0.001")))
    shown_host = f"[{settings.host}]" if ":" in settings.host else settings.host
    print(f"nnplay: serving on http://{shown_host}:{port}  (API docs at /docs)", flush=True)
    if settings.token is not None:
        if generated:  # printed, as Jupyter does, so that it shows in `docker logs`
            url = token_url(settings.host, port, settings.token.get_secret_value())
            print(f"nnplay: this server needs a token; open {url}", flush=True)
        else:
            print("nnplay: this server needs a token: the value of NNPLAY_TOKEN (open /?token=...)", flush=True)
    config = uvicorn.Config(
        create_app(settings),
        ws_max_size=settings.max_ws_message_bytes,
        # Compressing every epoch message once per client cost more CPU than the training thread could spare
        # (py-spy: the top frame with 50 clients); the data is base64 weights, which barely compress anyway.
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=5,
        log_level="info",
        **options,
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def _serve_settings(args: argparse.Namespace) -> Settings | None:
    """Settings from the environment and the command line, or None after one clear line on stderr."""
    overrides: dict[str, Any] = {}
    if args.host is not None:
        overrides["host"] = args.host
    if args.port is not None:
        overrides["port"] = args.port
    if args.data_dir:
        overrides["data_dir"] = Path(args.data_dir)
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(f"NNPLAY_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors())
        print(f"nnplay: invalid setting: {problems}", file=sys.stderr)
        return None
    data_dir = settings.data_dir
    if data_dir.exists() and not data_dir.is_dir():
        print(f"nnplay: invalid setting: NNPLAY_DATA_DIR ({data_dir}) is not a directory", file=sys.stderr)
        return None
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if not data_dir.is_dir():  # an existing read-only data dir is fine: it is served read-only
            print(f"nnplay: invalid setting: NNPLAY_DATA_DIR ({data_dir}): {exc.strerror or exc}", file=sys.stderr)
            return None
    return settings


def cmd_worker(args: argparse.Namespace) -> int:
    """A Celery worker of the cluster mode: trains the runs the web tier queues (server/cluster/worker.py)."""
    settings = _serve_settings(args)
    if settings is None:
        return 2
    if settings.broker_url is None or getattr(settings, "database_url", None) is None:
        print(
            "nnplay: a worker needs NNPLAY_BROKER_URL (redis://host:6379/0) and NNPLAY_DATABASE_URL "
            "(postgresql://user@host/db), the same as the web tier's",
            file=sys.stderr,
        )
        return 2
    from server.cluster.worker import main as worker_main

    worker_main(settings, loglevel=args.loglevel)
    return 0
