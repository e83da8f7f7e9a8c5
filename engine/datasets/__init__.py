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

from engine.datasets import mnist, toy
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
    # the input shape for these (checked) options, when they change it; None = input_shape always
    input_shape_for: Callable[[dict[str, Any]], tuple[int, ...]] | None = None


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

TOY_OPTIONS = (
    DatasetOption("noise", "label noise, on tensorflow/playground's scale", 0.0, 0.0, 0.5),
    DatasetOption("points", "points generated (training + test)", 500, 50, 5000),
    DatasetOption("test_fraction", "share of the points held out for testing", 0.5, 0.1, 0.9),
    DatasetOption(
        "features", "inputs computed from each point (at least one)", list(toy.DEFAULT_FEATURES), choices=toy.FEATURES
    ),
    DatasetOption("seed", "the points' own seed: another value regenerates the data", 0, 0, 2**32 - 1),
)


def _toy(name: str) -> DatasetInfo:
    def load(data_dir: Path, options: dict[str, Any]) -> Dataset:
        return toy.load(name, options)

    regression = name in toy.REGRESSION
    return DatasetInfo(
        name=name,
        description=toy.DESCRIPTIONS[name],
        input_shape=(len(toy.DEFAULT_FEATURES),),
        task="regression" if regression else "classification",
        classes=1 if regression else 2,
        train_size=None,
        test_size=None,
        load=load,
        is_available=lambda data_dir: True,
        options=TOY_OPTIONS,
        input_shape_for=lambda options: (len(toy.options_of(options)["features"]),),
    )


REGISTRY.update({name: _toy(name) for name in (*toy.CLASSIFICATION, *toy.REGRESSION)})


def get_dataset(name: str) -> DatasetInfo:
    try:
        return REGISTRY[name]
    except KeyError:
        raise DatasetError(f"unknown data set {name!r}; choose one of {sorted(REGISTRY)}") from None
