"""Models usable for prediction: the default model, every run that saved one, and uploaded files.
Ids are checked against a strict pattern before they become file names, so no request can reach a path
outside the models directory."""

from __future__ import annotations

import re
import shutil
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from engine.model import Model, ModelFormatError
from server.settings import Settings
from server.store import Store

ID_PATTERN = re.compile(r"^(default|[rm][0-9a-f]{10})$")


class UnknownModel(LookupError):
    pass


class ModelRegistry:
    def __init__(self, settings: Settings, store: Store, cache_size: int = 8) -> None:
        self.settings = settings
        self.store = store
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[float, Model]] = OrderedDict()
        self._lock = threading.Lock()

    def path_of(self, model_id: str) -> Path:
        if not ID_PATTERN.match(model_id):
            raise UnknownModel("no model with this id")
        return self.settings.models_dir / f"{model_id}.npz"

    def default_ready(self) -> bool:
        return self.settings.default_model_path.is_file()

    def get(self, model_id: str | None) -> tuple[str, Model]:
        model_id = model_id or "default"
        path = self.path_of(model_id)
        try:
            mtime = path.stat().st_mtime
        except OSError:  # missing, or the models directory itself is unusable
            if model_id == "default":
                raise UnknownModel(self._default_missing()) from None
            raise UnknownModel("no model with this id") from None
        with self._lock:
            hit = self._cache.get(model_id)
            if hit is not None and hit[0] == mtime:
                self._cache.move_to_end(model_id)
                return model_id, hit[1]
        model = Model.load(path)
        with self._lock:
            self._cache[model_id] = (mtime, model)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return model_id, model

    def _default_missing(self) -> str:
        if not self.settings.train_default_model:
            return (
                "the default model is not available: this server does not train it (NNPLAY_TRAIN_DEFAULT_MODEL=0)."
                " Make it with `nnplay train --preset default --out DATA_DIR/models/default.npz`, start the server"
                " with NNPLAY_TRAIN_DEFAULT_MODEL=1, or name another model ('model', see GET /api/models)"
            )
        return "the default model is not ready yet (it is being trained); try again soon"

    def forget(self, model_id: str) -> None:
        with self._lock:
            self._cache.pop(model_id, None)

    def install_default(self, source: Path) -> None:
        target = self.settings.default_model_path
        tmp = target.with_name("default.npz.tmp")
        shutil.copyfile(source, tmp)
        tmp.replace(target)
        self.forget("default")

    def upload(self, model_id: str, name: str, payload: bytes) -> Model:
        model = Model.load(payload)  # validates: no pickle, header, spec vs arrays, sizes, finite weights
        if model.spec.input_size != 784 or model.spec.output_size != 10:
            raise ModelFormatError("the model must take 784 inputs (28x28 pixels) and give 10 outputs (digits)")
        accuracy = model.meta.get("test_accuracy")
        if not (isinstance(accuracy, float | int) and not isinstance(accuracy, bool) and 0 <= accuracy <= 1):
            accuracy = None  # free-form metadata from the file: only a plausible accuracy is listed
        self.settings.models_dir.mkdir(parents=True, exist_ok=True)
        path = self.path_of(model_id)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(payload)
        tmp.replace(path)
        try:
            self.store.add_model(model_id, name, model.spec.to_dict(), accuracy)
        except Exception:
            path.unlink(missing_ok=True)  # no file without its row
            raise
        return model

    def listing(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self.default_ready():
            out.append({"id": "default", "name": "default model", "source": "default", "test_accuracy": None})
            try:
                meta = self.get("default")[1].meta
                out[0]["test_accuracy"] = meta.get("test_accuracy")
            except (UnknownModel, ModelFormatError):
                out.pop()
        for run in self.store.list_runs():
            if run["has_model"]:
                out.append(
                    {
                        "id": run["id"],
                        "name": run["name"] or run["id"],
                        "source": "run",
                        "test_accuracy": run["test_accuracy"],
                    }
                )
        for m in self.store.list_models():
            out.append({"id": m["id"], "name": m["name"], "source": "upload", "test_accuracy": m["test_accuracy"]})
        return out
