"""The data-set registry: what a run can train on. Each entry declares its name, description, input shape,
task and options, and how to load its arrays. The engine's core (model, trainer) never imports this package:
it only ever sees a ``Dataset`` of arrays.

Adding a data set = one ``DatasetInfo`` in ``REGISTRY``; the server lists it at ``GET /api/datasets`` and
checks run configs against it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.datasets import mnist
from engine.trainer import Dataset


class DatasetError(Exception):
    """A data set that cannot be loaded (missing files, bad options); the message says what to do."""


@dataclass(frozen=True)
class DatasetOption:
    name: str
    description: str
    default: Any
    minimum: float | None = None  # for numbers
    maximum: float | None = None
    choices: tuple[str, ...] = ()  # for a list of names (any subset, at least one)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    input_shape: tuple[int, ...]  # per sample: (features,) or (height, width, channels)
    task: str  # "classification" or "regression"
    classes: int  # output units: classes, or 1 for regression
    train_size: int | None  # samples, when fixed (a generated set's size is an option)
    test_size: int | None
    load: Callable[[Path, dict[str, Any]], Dataset]  # (data dir, options) -> arrays; may fetch nothing
    is_available: Callable[[Path], bool]  # cheap: nothing is parsed
    fetch: Callable[[Path], object] | None = None  # makes it available; None = nothing to fetch
    options: tuple[DatasetOption, ...] = field(default_factory=tuple)


def _load_mnist(data_dir: Path, options: dict[str, Any]) -> Dataset:
    try:
        return mnist.mnist_arrays(mnist.load_mnist(data_dir, fetch=False))
    except mnist.MnistError as exc:
        raise DatasetError(str(exc)) from exc


REGISTRY: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        name="mnist",
        description="Handwritten digits 0-9, 28x28 grey pixels (LeCun, Cortes & Burges)",
        input_shape=(28, 28, 1),
        task="classification",
        classes=10,
        train_size=60_000,
        test_size=10_000,
        load=_load_mnist,
        is_available=mnist.is_available,
        fetch=mnist.fetch_mnist,
    ),
}


def get_dataset(name: str) -> DatasetInfo:
    try:
        return REGISTRY[name]
    except KeyError:
        raise DatasetError(f"unknown data set {name!r}; choose one of {sorted(REGISTRY)}") from None
