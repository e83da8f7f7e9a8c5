"""Models usable for prediction: the default model, every run that saved one, and uploaded files. The one
owner of model ids: each is checked against a strict pattern before it names a file (or a row), so no request
can reach a path outside the models directory. Where the bytes live is server/model_files.py's choice."""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections import OrderedDict
from typing import BinaryIO

from engine.model import Model, ModelFormatError
from server.database import FILE_OR_STORAGE_ERRORS
from server.limits import check_spec_limits
from server.model_files import ModelFiles, model_files_for
from server.owners import Caller
from server.schemas import ModelInfo
from server.settings import Settings
from server.store import Store

log = logging.getLogger("nnplay")

ID_PATTERN = re.compile(r"^(default|[rm][0-9a-f]{10})$")


class UnknownModel(LookupError):
    pass


class ModelRegistry:
    def __init__(self, settings: Settings, store: Store, cache_size: int = 8, files: ModelFiles | None = None) -> None:
        self.settings = settings
        self.store = store
        self.files = files or model_files_for(store.db, settings.models_dir)
        self.cache_size = cache_size
        self._cache: OrderedDict[str, tuple[float, Model]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def checked(model_id: str) -> str:
        if not ID_PATTERN.match(model_id):
            raise UnknownModel("no model with this id")
        return model_id

    def default_ready(self) -> bool:
        return self.files.stamp("default") is not None

    def get(self, model_id: str | None) -> tuple[str, Model]:
        model_id = self.checked(model_id or "default")
        stamp = self.files.stamp(model_id)
        if stamp is None:
            if model_id == "default":
                raise UnknownModel(self._default_missing())
            raise UnknownModel("no model with this id")
        with self._lock:
            hit = self._cache.get(model_id)
            if hit is not None and hit[0] == stamp:
                self._cache.move_to_end(model_id)
                return model_id, hit[1]
        try:
            model = self.files.load(model_id)
        except FileNotFoundError:  # deleted since its stamp was read
            raise UnknownModel("no model with this id") from None
        with self._lock:
            self._cache[model_id] = (stamp, model)
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

    def save_run_model(self, run_id: str, model: Model) -> int:
        """Save (atomically: a crash never leaves half a model under the real name); the file's size."""
        return self.files.save(self.checked(run_id), model)

    def open_model(self, model_id: str) -> BinaryIO:
        """The model file, opened: the caller streams from the handle, so a DELETE meanwhile cannot cut the
        download short (an unlinked file lives on until closed; database bytes are read whole), and a file
        replaced atomically is read whole, old or new. UnknownModel when there is none."""
        try:
            return self.files.open(self.checked(model_id))
        except FileNotFoundError:
            raise UnknownModel("no model with this id") from None

    def delete_run_model(self, run_id: str) -> None:
        self._unlink(run_id)

    def delete_upload(self, model_id: str) -> bool:
        """Remove an uploaded model (its row, then its file); False when there is no such upload."""
        if not model_id.startswith("m") or not self.store.delete_model(model_id):
            return False
        self._unlink(model_id)
        return True

    def _unlink(self, model_id: str) -> None:
        # The row is gone already: a file that cannot be removed (read-only directory) is logged and left,
        # rather than failing the request after the fact.
        try:
            self.files.delete(self.checked(model_id))
        except FILE_OR_STORAGE_ERRORS as exc:
            log.warning("could not remove the model file of %s: %s", model_id, exc)
        self.forget(model_id)

    def install_default(self, run_id: str) -> None:
        self.files.copy(self.checked(run_id), "default")
        self.forget("default")

    def upload(self, model_id: str, name: str, payload: bytes, owner: str | None = None) -> Model:
        model = Model.load(payload)  # validates: no pickle, header, spec vs arrays, sizes, finite weights
        check_spec_limits(model.spec, self.settings)  # an upload may be no larger than a run could make
        if model.spec.input_size != 784 or model.spec.output.units != 10:
            raise ModelFormatError("the model must take 784 inputs (28x28 pixels) and give 10 outputs (digits)")
        accuracy = model.meta.get("test_accuracy")
        if not (isinstance(accuracy, float | int) and not isinstance(accuracy, bool) and 0 <= accuracy <= 1):
            accuracy = None  # free-form metadata from the file: only a plausible accuracy is listed
        self.checked(model_id)
        self.files.write(model_id, payload)
        try:
            self.store.add_model(model_id, name, model.spec.to_dict(), accuracy, owner=owner, size=len(payload))
        except Exception:
            with contextlib.suppress(Exception):
                self.files.delete(model_id)  # no file without its row
            raise
        return model

    def listing(self, caller: Caller | None = None) -> list[ModelInfo]:
        out: list[ModelInfo] = []
        if self.default_ready():
            try:
                accuracy = self.get("default")[1].meta.get("test_accuracy")
                out.append(ModelInfo(id="default", name="default model", source="default", test_accuracy=accuracy))
            except (UnknownModel, ModelFormatError):
                pass
        for run in self.store.runs_with_models():
            if caller is not None and not caller.may_see(run["owner"], bool(run["shared"])):
                continue
            if run["kind"] != "default":  # the default model's run is listed as "default"
                name = run["name"] or run["id"]
                out.append(ModelInfo(id=run["id"], name=name, source="run", test_accuracy=run["test_accuracy"]))
        for m in self.store.list_models():
            out.append(ModelInfo(id=m["id"], name=m["name"], source="upload", test_accuracy=m["test_accuracy"]))
        return out
