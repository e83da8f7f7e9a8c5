"""A run's complete state after an epoch: weights and buffers, the optimizer's moments and step count, the
random generators' states (shuffling and dropout), the batch counter and the live hyperparameters. Restoring it
into a freshly built trainer of the same config continues exactly as the original did, bit for bit; that is
what forking a run from epoch k stands on. Stored as .npz with a JSON header: no pickle."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

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
