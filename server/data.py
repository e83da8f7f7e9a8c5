"""Data sets for the server: each loaded once through the registry and shared read-only between runs."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from engine.datasets import REGISTRY, DatasetError, get_dataset
from engine.trainer import Dataset


class DataProvider:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._lock = threading.Lock()
        self._loaded: dict[str, Dataset] = {}
        self.fetching: set[str] = set()
        self.errors: dict[str, str] = {}

    def ready(self, name: str = "mnist") -> bool:
        return name in self._loaded or get_dataset(name).is_available(self.data_dir)

    def state(self, name: str = "mnist") -> str:
        if self.ready(name):
            return "ready"
        return "fetching" if name in self.fetching else "missing"

    def get(self, name: str, options: dict[str, Any] | None = None) -> Dataset:
        """The arrays (loading them on first use, from a training thread: this may take seconds). A data set
        with options (the generated 2-D sets) is made per run, in milliseconds, and not kept."""
        if options or get_dataset(name).options:
            return get_dataset(name).load(self.data_dir, options or {})
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = get_dataset(name).load(self.data_dir, {})
            return self._loaded[name]

    def fetch(self, name: str) -> None:
        """Blocking: run the data set's fetch chain (a background thread calls this)."""
        info = get_dataset(name)
        self.fetching.add(name)
        try:
            if info.fetch is not None:
                info.fetch(self.data_dir)
            self.errors.pop(name, None)
        except Exception as exc:  # the message says what was tried and where to put the files
            self.errors[name] = str(exc)
            raise DatasetError(str(exc)) from exc
        finally:
            self.fetching.discard(name)

    @staticmethod
    def names() -> list[str]:
        return list(REGISTRY)
