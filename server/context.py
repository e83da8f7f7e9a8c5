"""Everything a request handler may need, created once per app and reached through one dependency."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from engine.atomic import atomic_copy
from engine.datasets.mnist import FILES, mnist_dir
from engine.model import Model
from server.data import DataProvider
from server.database import FILE_OR_STORAGE_ERRORS
from server.fanout import LocalFanout
from server.presets import get_preset
from server.registry import ModelRegistry
from server.runs import RunManager
from server.settings import Settings
from server.steer import ActiveRun
from server.store import Store

if TYPE_CHECKING:
    from server.cluster.dispatch import ClusterRunManager

log = logging.getLogger("nnplay")


@dataclass
class AppContext:
    settings: Settings
    store: Store
    data: DataProvider
    models: ModelRegistry
    runs: RunManager | ClusterRunManager
    default_model_run: str | None = None  # id of the run training the default model, if any
    default_model_error: str | None = None
    predict_times: deque[float] = field(default_factory=lambda: deque(maxlen=5000))  # seconds, server side

    @classmethod
    def create(cls, settings: Settings) -> AppContext:
        with contextlib.suppress(OSError):  # a read-only data dir that exists is still served
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        if settings.seed_data_dir is not None:
            seed_from(settings.seed_data_dir, settings)
        store = Store.open(settings)
        data = DataProvider(settings.data_dir)
        models = ModelRegistry(settings, store)
        if settings.seed_data_dir is not None and store.dialect != "sqlite":
            seed_default_model(settings.seed_data_dir / "models" / "default.npz", models)
        fanout = LocalFanout(settings.ws_queue_size, settings.ws_queue_bytes)
        if settings.broker_url is not None:  # cluster mode: workers train, this process only serves
            from server.cluster.dispatch import ClusterRunManager

            manager: RunManager | ClusterRunManager = ClusterRunManager(settings, store, data, models, fanout)
        else:
            manager = RunManager(settings, store, data, models, fanout)
        ctx = cls(settings, store, data, models, manager)
        ctx.runs.on_end.append(ctx._install_default)
        return ctx

    @property
    def cluster(self) -> bool:
        return self.settings.broker_url is not None

    def _install_default(self, run: ActiveRun, state: str, model: Model | None) -> None:
        if run.kind != "default":
            return
        self.default_model_run = None  # told of every ending, so a stopped default run is not "training" for ever
        if state != "finished" or model is None:
            self.default_model_error = f"the default model's run ended {state}: {run.id}"
            return
        try:
            self.models.install_default(run.id)
            self.default_model_error = None
        except FILE_OR_STORAGE_ERRORS as exc:
            self.default_model_error = f"could not install the default model: {exc}"

    def default_model_state(self) -> str:
        if self.models.default_ready():
            return "ready"
        if self.cluster:  # a worker trains it and installs it; any replica may have started it
            self.default_model_run = self.runs.default_run_id()
        if self.default_model_run is not None:
            return "training"
        if self.default_model_error:
            return "failed"
        return "missing"

    def ensure_default_model(self) -> None:
        """Start training the default model if it is missing (in the background; the server answers meanwhile)."""
        if self.models.default_ready() or self.default_model_run is not None:
            return
        if self.cluster:  # workers fetch their own MNIST; one default run for the whole cluster
            self.default_model_run = self.runs.default_run_id()
            if self.default_model_run is not None or not self.runs.first_to_start_default():
                return
        elif not self.data.ready("mnist"):
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

    def fetch_in_background(self, dataset: str, then: Callable[[], object]) -> None:
        def work() -> None:
            try:
                self.data.fetch(dataset)
            except Exception as exc:
                log.error("%s", exc)
            then()

        self.data.fetching.add(dataset)  # at once, so health says "fetching" before the thread runs
        threading.Thread(target=work, name=f"fetch-{dataset}", daemon=True).start()


def seed_from(seed: Path, settings: Settings) -> None:
    """Start an empty data dir from read-only seed data (the Docker image's MNIST and default model), so the
    first start needs no network. Never overwrites what the data dir already has."""
    pairs = [(mnist_dir(seed) / name, mnist_dir(settings.data_dir) / name) for name in FILES.values()]
    pairs.append((seed / "models" / "default.npz", settings.default_model_path))
    for src, dst in pairs:
        if src.is_file() and not dst.exists():
            atomic_copy(src, dst)


def seed_default_model(source: Path, models: ModelRegistry) -> None:
    """With a shared database, the seed's default model goes into it (once; never over one already there)."""
    try:
        if source.is_file() and not models.default_ready():
            models.files.write("default", source.read_bytes())
    except FILE_OR_STORAGE_ERRORS as exc:  # the server starts anyway: the default model is trained
        log.warning("could not seed the default model: %s", exc)


def get_ctx(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


Ctx = Annotated[AppContext, Depends(get_ctx)]
