"""A run's complete state after an epoch: weights and buffers, the optimizer's moments and step count, the
random generators' states (shuffling and dropout), the batch counter and the live hyperparameters. Restoring it
into a freshly built trainer of the same config continues exactly as the original did, bit for bit; that is
what forking a run from epoch k stands on. Stored as .npz with a JSON header: no pickle."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from engine.trainer import Trainer

OPTIMIZER_STATE = ("m", "v", "velocity")  # per-group arrays an optimizer may keep between steps


@dataclass
class Checkpoint:
    epoch: int  # epochs completed
    step: int  # batches completed
    hyper: dict[str, float]  # live hyperparameters (learning_rate, l2, batch_size, momentum, dropout.<i>)
    rng: dict[str, Any]  # bit-generator states by name
    optimizer_t: int
    arrays: dict[str, np.ndarray]  # model state (l{i}_{name}) and optimizer state (opt_{name}_{group})

    def to_bytes(self) -> bytes:
        header = {"epoch": self.epoch, "step": self.step, "hyper": self.hyper, "rng": self.rng, "t": self.optimizer_t}
        buf = io.BytesIO()
        np.savez(buf, header=np.array(json.dumps(header)), **self.arrays)  # type: ignore[arg-type]
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, payload: bytes) -> Checkpoint:
        with np.load(io.BytesIO(payload), allow_pickle=False) as data:
            header = json.loads(str(data["header"]))
            arrays = {name: data[name] for name in data.files if name != "header"}
        return cls(header["epoch"], header["step"], header["hyper"], header["rng"], header["t"], arrays)


def optimizer_arrays(optimizer: object) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name in OPTIMIZER_STATE:
        for i, array in enumerate(getattr(optimizer, name, None) or []):
            out[f"opt_{name}_{i}"] = array
    return out


def capture(trainer: Trainer, epoch: int) -> Checkpoint:
    """The trainer's whole state after `epoch`, copied."""
    rng = {"shuffle": trainer._shuffle_rng.bit_generator.state}
    if trainer.dropouts:  # the dropout layers share one generator
        rng["dropout"] = next(iter(trainer.dropouts.values())).rng.bit_generator.state
    arrays = {name: a.copy() for name, a in {**trainer.model.state(), **optimizer_arrays(trainer.optimizer)}.items()}
    return Checkpoint(epoch, trainer.step_count, dict(trainer.controls.hyper), rng, trainer.optimizer.t, arrays)


def restore(trainer: Trainer, checkpoint: Checkpoint) -> None:
    """Into a freshly built trainer of the same config, before run(): it goes on after the checkpoint's epoch."""
    for name, array in {**trainer.model.state(), **optimizer_arrays(trainer.optimizer)}.items():
        array[...] = checkpoint.arrays[name]
    trainer._shuffle_rng.bit_generator.state = checkpoint.rng["shuffle"]
    for dropout in trainer.dropouts.values():
        dropout.rng.bit_generator.state = checkpoint.rng["dropout"]
    trainer.optimizer.t = checkpoint.optimizer_t
    trainer.controls.hyper.update(checkpoint.hyper)
    trainer.step_count, trainer.start_epoch, trainer.epochs_done = (
        checkpoint.step,
        checkpoint.epoch + 1,
        checkpoint.epoch,
    )
