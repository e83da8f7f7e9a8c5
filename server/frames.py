"""Live pictures of a 2-D run: on each trainer Tick (about 25 a second, only while someone watches, and always
at start, pause and end) one forward pass of a raster of points over [-6, 6]^2 through the network, keeping
every layer's activations, becomes a ``frame`` message: the output as an image, every hidden neuron as an
image, the weight matrices and the losses over the whole training and test sets. Computed in the training
thread, between two batches, so the model is never read mid-step."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.datasets import toy
from engine.layers import Dense
from engine.model import Model
from engine.trainer import Dataset, Trainer
from server.messages import FrameMessage

GRID = 64  # raster side: 4096 points, a few milliseconds for a playground-sized network


def _bytes(values: np.ndarray) -> str:
    return base64.b64encode(values.astype(np.uint8).tobytes()).decode()


def signed_images(acts: np.ndarray) -> list[str]:
    """(points, units) activations -> one image per unit: 128 is zero; each unit is scaled by the larger of 1
    and its largest magnitude, so tanh units keep the playground's fixed -1..1 scale and ReLU units fit."""
    scale = np.maximum(np.abs(acts).max(axis=0), 1.0).astype(np.float32)
    grey = np.empty(acts.shape[::-1], np.float32)  # (units, points): each unit's image contiguous
    np.multiply(acts.T, 127.5 / scale[:, None], out=grey)
    grey += 128.0  # truncation below rounds to nearest; 128 is zero
    raw = grey.clip(0, 255).astype(np.uint8).tobytes()
    size = acts.shape[0]
    return [base64.b64encode(raw[j * size : (j + 1) * size]).decode() for j in range(acts.shape[1])]


@dataclass
class FrameMaker:
    model: Model
    data: Dataset
    features: tuple[str, ...]
    regression: bool
    grid: int = GRID
    inputs: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.inputs = toy.feature_columns(toy.grid_points(self.grid), self.features, self.model.dtype)

    @classmethod
    def for_run(cls, model: Model, data: Dataset, dataset: str, options: dict[str, Any] | None) -> FrameMaker:
        return cls(model, data, toy.options_of(options)["features"], dataset in toy.REGRESSION)

    def output_image(self, out: np.ndarray) -> str:
        if self.regression:  # targets live in [-1, 1]
            return _bytes(np.rint((np.clip(out[:, 0], -1, 1) + 1) * 127.5))
        activation = self.model.spec.output.activation
        if activation == "softmax":
            p1 = out[:, 1]
        elif activation == "sigmoid":
            p1 = out[:, 1] / np.maximum(out.sum(axis=1), 1e-12)
        else:  # linear output (with mse): the softmax of the outputs, which are the logits
            z = out - out.max(axis=1, keepdims=True)
            e = np.exp(z)
            p1 = e[:, 1] / e.sum(axis=1)
        return _bytes(np.rint(np.nan_to_num(p1, nan=0.5) * 255))

    def frame(self, trainer: Trainer, step: int, epoch: int) -> FrameMessage:
        model, data = self.model, self.data
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            acts = model.activations(self.inputs)
            train_loss, _ = model.evaluate(data.x_train, data.y_train)
            test_loss, _ = model.evaluate(data.x_test, data.y_test)
        n_hidden = len(model.spec.layers)
        out = acts[n_hidden]
        neurons = [signed_images(np.nan_to_num(acts[i])) for i in range(n_hidden)]
        weights = [
            np.round(layer.params["W"].astype(np.float64), 4).tolist()
            for layer in model.owners.values()
            if isinstance(layer, Dense)
        ]
        return FrameMessage(
            step=step,
            epoch=epoch,
            train_loss=train_loss,
            test_loss=test_loss,
            grid=self.grid,
            output=self.output_image(np.nan_to_num(out)),
            neurons=neurons,
            weights=weights,
            learning_rate=trainer.controls.hyper["learning_rate"],
            l1=trainer.controls.hyper["l1"],
            l2=trainer.controls.hyper["l2"],
        )
