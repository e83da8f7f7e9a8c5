"""Where model files (.npz bytes) are kept: as files in the data directory (embedded mode, as always), or in
the database's ``model_files`` table when the database is shared (cluster mode), so a model a worker saved is
readable by every web replica. ModelRegistry checks ids and caches models; these classes only move bytes.

Each stored file has a stamp that changes whenever it is replaced (the file's mtime, or the row's saved_at):
what the registry's cache keys on.
"""

from __future__ import annotations

import io
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import BinaryIO

from engine.atomic import atomic_copy, atomic_write_bytes
from engine.model import Model
from server.database import Database


class ModelFiles(ABC):
    @abstractmethod
    def stamp(self, model_id: str) -> float | None:
        """Changes whenever the file is replaced; None when there is no such file."""

    @abstractmethod
    def load(self, model_id: str) -> Model:
        """The model, checked (engine/modelfile.py); FileNotFoundError when there is none."""

    @abstractmethod
    def open(self, model_id: str) -> BinaryIO:
        """The whole file as a readable handle, old or new, never half of each; FileNotFoundError when none."""

    @abstractmethod
    def save(self, model_id: str, model: Model) -> int:
        """Store a model atomically; its size in bytes."""

    @abstractmethod
    def write(self, model_id: str, payload: bytes) -> None:
        """Store an already checked .npz payload atomically."""

    @abstractmethod
    def copy(self, source_id: str, target_id: str) -> None:
        """Replace target with source's bytes; FileNotFoundError when source is missing."""

    @abstractmethod
    def delete(self, model_id: str) -> None:
        """Remove it if present (OSError when the directory refuses)."""


class DiskModelFiles(ModelFiles):
    """``<models_dir>/<id>.npz``, each written to a temporary file and renamed (engine/atomic.py)."""

    def __init__(self, models_dir: Path) -> None:
        self.models_dir = models_dir

    def path(self, model_id: str) -> Path:
        return self.models_dir / f"{model_id}.npz"

    def stamp(self, model_id: str) -> float | None:
        try:
            return self.path(model_id).stat().st_mtime
        except OSError:  # missing, or the models directory itself is unusable
            return None

    def load(self, model_id: str) -> Model:
        return Model.load(self.path(model_id))

    def open(self, model_id: str) -> BinaryIO:
        # the caller streams from the handle: a DELETE that unlinks the file meanwhile cannot cut it short
        return self.path(model_id).open("rb")

    def save(self, model_id: str, model: Model) -> int:
        path = self.path(model_id)
        model.save(path)
        return path.stat().st_size

    def write(self, model_id: str, payload: bytes) -> None:
        atomic_write_bytes(self.path(model_id), payload)

    def copy(self, source_id: str, target_id: str) -> None:
        atomic_copy(self.path(source_id), self.path(target_id))

    def delete(self, model_id: str) -> None:
        self.path(model_id).unlink(missing_ok=True)


class DatabaseModelFiles(ModelFiles):
    """Rows of ``model_files`` (id, data, saved_at): one statement each, so atomic by construction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def stamp(self, model_id: str) -> float | None:
        saved_at = self.db.scalar("SELECT saved_at FROM model_files WHERE id=?", (model_id,))
        return None if saved_at is None else float(saved_at)

    def _bytes(self, model_id: str) -> bytes:
        data = self.db.scalar("SELECT data FROM model_files WHERE id=?", (model_id,))
        if data is None:
            raise FileNotFoundError(f"no model file {model_id!r} in the database")
        return bytes(data)

    def load(self, model_id: str) -> Model:
        return Model.load(self._bytes(model_id))

    def open(self, model_id: str) -> BinaryIO:
        return io.BytesIO(self._bytes(model_id))

    def save(self, model_id: str, model: Model) -> int:
        payload = model.to_bytes()
        self.write(model_id, payload)
        return len(payload)

    def write(self, model_id: str, payload: bytes) -> None:
        self.db.execute(
            "INSERT INTO model_files (id, data, saved_at) VALUES (?,?,?) "
            "ON CONFLICT (id) DO UPDATE SET data=excluded.data, saved_at=excluded.saved_at",
            (model_id, payload, time.time()),
        )

    def copy(self, source_id: str, target_id: str) -> None:
        copied = self.db.execute(
            "INSERT INTO model_files (id, data, saved_at) SELECT ?, data, ? FROM model_files WHERE id=? "
            "ON CONFLICT (id) DO UPDATE SET data=excluded.data, saved_at=excluded.saved_at",
            (target_id, time.time(), source_id),
        )
        if copied == 0:
            raise FileNotFoundError(f"no model file {source_id!r} in the database")

    def delete(self, model_id: str) -> None:
        self.db.execute("DELETE FROM model_files WHERE id=?", (model_id,))


def model_files_for(db: Database, models_dir: Path) -> ModelFiles:
    """Files on disk with the embedded SQLite database (existing data directories keep working); the
    database's table when it is shared."""
    return DiskModelFiles(models_dir) if db.dialect == "sqlite" else DatabaseModelFiles(db)
