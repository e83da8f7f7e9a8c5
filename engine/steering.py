"""Changing a run while it trains: which hyperparameters may change, their bounds, and the record of each
change. A change is applied between two batches, and recorded with the global batch index it took effect
at, so a run's config plus its changes, replayed at the same batch indices, gives the same weights bit for bit.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.trainer import Trainer

# name -> (minimum, maximum, integer?); "dropout.<spec layer index>" is per dense layer
BOUNDS: dict[str, tuple[float, float, bool]] = {
    "learning_rate": (1e-8, 1000.0, False),
    "l2": (0.0, 10.0, False),
    "l1": (0.0, 10.0, False),
    "batch_size": (1, 1_000_000, True),
    "momentum": (0.0, 0.999, False),
    "dropout": (0.0, 0.9, False),
}


class ChangeError(ValueError):
    """A change that cannot be applied; the message says why."""


@dataclass(frozen=True)
class Change:
    step: int  # global batch index the change applies from (0 = before the first batch)
    name: str  # learning_rate, l2, batch_size, momentum, or dropout.<layer>
    value: float


@dataclass(frozen=True)
class AppliedChange:
    step: int
    epoch: int  # 1-based epoch in which it applied
    name: str
    old: float
    new: float
    at: float = 0.0  # where on an epoch axis: epochs done + the fraction of this epoch's samples already seen


def check(name: str, value: float) -> float:
    base = name.split(".", 1)[0]
    if base not in BOUNDS or (base == "dropout") != ("." in name):
        raise ChangeError(f"{name!r} cannot change while training; choose one of {[*BOUNDS][:-1]} or dropout.<layer>")
    low, high, integer = BOUNDS[base]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ChangeError(f"{name} must be a finite number")
    if integer and value != int(value):
        raise ChangeError(f"{name} must be a whole number")
    if not low <= value <= high:
        raise ChangeError(f"{name} must be between {low} and {high}")
    return int(value) if integer else float(value)


class Controls:
    """What other threads ask of a running trainer, applied between batches: hyperparameter changes (live, or
    replayed at their recorded batch index) and step mode (train exactly n batches, then pause)."""

    def __init__(self, hyper: dict[str, float], replay: tuple[Change, ...] = ()) -> None:
        self.hyper = hyper  # the live values, read by the trainer every batch
        self._lock = threading.Lock()
        self._pending: list[tuple[str, float]] = []
        self._replay = sorted(replay, key=lambda c: c.step)
        self.steps_left: int | None = None  # step mode: batches still to train before pausing

    def request(self, name: str, value: float) -> float:
        """From any thread: validate now (so the caller hears of a bad value), apply at the next batch."""
        value = check(name, value)
        if name not in self.hyper:
            raise ChangeError(f"{name!r} does not exist in this network (dropout.<i> names a dense layer's index)")
        with self._lock:
            self._pending.append((name, value))
        return value

    def due(self, step: int, epoch: int, at: float = 0.0) -> list[AppliedChange]:
        """Called by the trainer before batch `step`: every change that applies from it, applied to `hyper`."""
        with self._lock:
            wanted, self._pending = self._pending, []
        while self._replay and self._replay[0].step <= step:
            change = self._replay.pop(0)
            wanted.append((change.name, change.value))
        applied = []
        for name, value in wanted:
            old = self.hyper[name]
            if old != value:
                self.hyper[name] = value
                applied.append(AppliedChange(step, epoch, name, old, value, at))
        return applied


def apply_due(trainer: Trainer, epoch: int, at: float) -> list[AppliedChange]:
    """Between batches: the changes due from this batch on, put into the optimizer and dropout layers."""
    applied = trainer.controls.due(trainer.step_count, epoch, at)
    hyper = trainer.controls.hyper
    for change in applied:
        if change.name in ("l1", "l2", "momentum"):  # momentum: SGD's (Adam has none, refused when requested)
            setattr(trainer.optimizer, change.name, hyper[change.name])
        elif change.name.startswith("dropout."):
            trainer.dropouts[int(change.name.split(".")[1])].rate = hyper[change.name]
    return applied
