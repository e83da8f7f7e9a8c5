"""Everything a request handler may need, created once per app and reached through one dependency."""

from __future__ import annotations

import contextlib
import logging
import shutil
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from engine.mnist import FILES, MnistError, fetch_mnist, mnist_dir
from engine.model import Model
from server.presets import get_preset
from server.registry import ModelRegistry
from server.runs import ActiveRun, MnistProvider, RunManager
from server.settings import Settings
from server.store import Store

log = logging.getLogger("nnplay")


@dataclass
class AppContext:
    settings: Settings
    store: Store
    mnist: MnistProvider
    runs: RunManager
    models: ModelRegistry
    default_model_run: str | None = None  # id of the run training the default model, if any
    default_model_error: str | None = None
    mnist_fetching: bool = False
    predict_times: deque[float] = field(default_factory=lambda: deque(maxlen=5000))  # seconds, server side
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def create(cls, settings: Settings) -> AppContext:
        with contextlib.suppress(OSError):  # a read-only data dir that exists is still served
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        if settings.seed_data_dir is not None:
            seed_from(settings.seed_data_dir, settings)
        store = Store(settings.db_path)
        mnist = MnistProvider(settings)
        ctx = cls(settings, store, mnist, RunManager(settings, store, mnist), ModelRegistry(settings, store))
        ctx.runs.on_default_model.append(ctx._install_default)
        return ctx

    def _install_default(self, run: ActiveRun, state: str, model: Model | None) -> None:
        self.default_model_run = None
        if state != "finished" or model is None:
            self.default_model_error = f"the default model's run ended {state}: {run.id}"
            return
        try:
            self.models.install_default(self.settings.models_dir / f"{run.id}.npz")
            self.default_model_error = None
        except OSError as exc:
            self.default_model_error = f"could not install the default model: {exc}"

    def default_model_state(self) -> str:
        if self.models.default_ready():
            return "ready"
        if self.default_model_run is not None:
            return "training"
        if self.default_model_error:
            return "failed"
        return "missing"

    def ensure_default_model(self) -> None:
        """Start training the default model if it is missing (in the background; the server answers meanwhile)."""
        if self.models.default_ready() or self.default_model_run is not None or not self.mnist.ready():
            return
        preset = get_preset("default")
        assert preset is not None
        try:
            run = self.runs.create(preset.config.model_copy(update={"name": "default model"}), kind="default")
        except Exception as exc:
            self.default_model_error = str(exc)
            log.warning("cannot train the default model: %s", exc)
            return
        self.default_model_run = run.id

    def fetch_mnist_in_background(self, then: object) -> None:
        def work() -> None:
            try:
                fetch_mnist(self.settings.data_dir)
            except MnistError as exc:
                self.mnist.error = str(exc)
                log.error("%s", exc)
            finally:
                self.mnist_fetching = False
            if callable(then):
                then()

        self.mnist_fetching = True
        threading.Thread(target=work, name="mnist-fetch", daemon=True).start()


def seed_from(seed: Path, settings: Settings) -> None:
    """Start an empty data dir from read-only seed data (the Docker image's MNIST and default model), so the
    first start needs no network. Never overwrites what the data dir already has."""
    pairs = [(mnist_dir(seed) / name, mnist_dir(settings.data_dir) / name) for name in FILES.values()]
    pairs.append((seed / "models" / "default.npz", settings.default_model_path))
    for src, dst in pairs:
        if src.is_file() and not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(dst.name + ".tmp")
            shutil.copyfile(src, tmp)
            tmp.replace(dst)


def get_ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


Ctx = Annotated[AppContext, Depends(get_ctx)]
