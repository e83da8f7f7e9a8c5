"""A network built from a spec (engine/spec.py), run forward and backward, saved and loaded as ``.npz`` with a
JSON header. Model files of format 1 (a stack of dense layers, before typed layers existed) still load."""

from __future__ import annotations

import io
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from engine.activations import stable_softmax
from engine.conv import Conv2D
from engine.flat import Flat, flatten
from engine.layers import ActivationLayer, Dense, Dropout, Flatten, Layer
from engine.losses import Loss, get_loss
from engine.modelfile import read_model_file, read_spec, write_model_file
from engine.norm import BatchNorm
from engine.pool import AvgPool2D, MaxPool2D
from engine.spec import (
    BatchNormSpec,
    Conv2DSpec,
    DenseSpec,
    FlattenSpec,
    ModelFormatError,
    ModelSpec,
    PoolSpec,
    describe,
)

__all__ = ["Model", "ModelFormatError", "ModelSpec"]


@dataclass
class Model:
    spec: ModelSpec
    layers: list[Layer]  # the forward chain, output activation last
    loss: Loss
    dtype: type = np.float32
    meta: dict[str, Any] = field(default_factory=dict)  # free-form provenance saved with the model
    owners: dict[int, Layer] = field(default_factory=dict)  # spec index -> the layer holding its parameters
    spec_index: list[int] = field(default_factory=list)  # for each layer in `layers`, its spec layer's index
    flat: Flat | None = None  # the one buffer of all parameters (and one of all gradients) the layers view

    @classmethod
    def build(cls, spec: ModelSpec, *, seed: int = 0, dtype: type = np.float32) -> Model:
        """A freshly initialised network. Separate random streams for weights and dropout keep each
        reproducible from the one seed (the streams are the same as format 1's for dense stacks)."""
        init_seq, dropout_seq = np.random.SeedSequence(seed).spawn(2)
        init_rng, dropout_rng = np.random.default_rng(init_seq), np.random.default_rng(dropout_seq)
        infos = describe(spec)
        layers: list[Layer] = []
        spec_index: list[int] = []
        owners: dict[int, Layer] = {}
        shape = spec.input_shape
        specs = (*spec.layers, DenseSpec(spec.output.units, spec.output.activation))
        for i, (layer_spec, info) in enumerate(zip(specs, infos, strict=True)):
            first = not owners  # nothing before it learns: the input gradient is not needed
            if isinstance(layer_spec, DenseSpec):
                if len(shape) > 1 and layers:  # data arrive as flat rows: only a later image is flattened
                    layers.append(Flatten())
                owner: Layer = Dense(
                    math.prod(shape),
                    layer_spec.units,
                    init=spec.init,
                    rng=init_rng,
                    dtype=dtype,
                    needs_input_grad=not first,
                )
                layers += [owner, ActivationLayer(layer_spec.activation, inplace=True)]  # Dense output: fresh
                if i < len(spec.layers):  # every hidden dense layer, so dropout can be switched on while
                    # training; at rate 0 it passes x through and draws no random numbers: runs are unchanged
                    layers.append(Dropout(layer_spec.dropout, dropout_rng))
                owners[i] = owner
            elif isinstance(layer_spec, Conv2DSpec):
                owner = Conv2D(
                    shape[-1],
                    layer_spec.filters,
                    layer_spec.kernel,
                    stride=layer_spec.stride,
                    padding=layer_spec.padding,
                    init=spec.init,
                    rng=init_rng,
                    dtype=dtype,
                    needs_input_grad=not first,
                    activation="relu" if layer_spec.activation == "relu" else "linear",  # ReLU is fused
                )
                layers.append(owner)
                if layer_spec.activation != "relu":
                    layers.append(ActivationLayer(layer_spec.activation))
                owners[i] = owner
            elif isinstance(layer_spec, PoolSpec):
                pool = MaxPool2D if layer_spec.type == "maxpool2d" else AvgPool2D
                layers.append(pool(layer_spec.size))
            elif isinstance(layer_spec, BatchNormSpec):
                owner = BatchNorm(shape[-1], momentum=layer_spec.momentum, dtype=dtype)
                layers.append(owner)
                owners[i] = owner
            elif isinstance(layer_spec, FlattenSpec) and layers:
                layers.append(Flatten())
            shape = info.output_shape
            spec_index += [i] * (len(layers) - len(spec_index))
        for before, after in itertools.pairwise(layers):  # ReLU then max pool: the pool applies the slope
            if isinstance(before, Conv2D) and before.relu and isinstance(after, MaxPool2D):
                before.slope_applied_downstream = after.relu_input = True
        loss = get_loss(spec.loss, spec.output.activation)
        flat = flatten(owners.values())  # after every layer exists, before any optimizer holds an array
        return cls(spec, layers, loss, dtype, owners=owners, spec_index=spec_index, flat=flat)

    @property
    def output_activation(self) -> ActivationLayer:
        last = self.layers[-1]
        assert isinstance(last, ActivationLayer)
        return last

    @property
    def sharded(self) -> bool:
        """Whether some layer splits its batches over the engine's shards (engine/parallel.py): then BLAS
        should run on one thread while this model trains."""
        return any(isinstance(layer, Conv2D | MaxPool2D | AvgPool2D) for layer in self.layers)

    @property
    def dense_layers(self) -> list[Dense]:
        return [layer for layer in self.layers if isinstance(layer, Dense)]

    def parameters(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(parameter, gradient) pairs in a fixed order, the contract with optimizers."""
        return [(layer.params[k], layer.grads[k]) for layer in self.owners.values() for k in layer.params]

    def _shaped(self, x: np.ndarray) -> np.ndarray:
        # data sets hand over flat rows; image layers want NHWC (a view, no copy)
        first = self.spec.layers[0].type if self.spec.layers else "dense"
        if len(self.spec.input_shape) > 1 and x.ndim == 2 and first not in ("dense", "flatten"):
            return x.reshape(x.shape[0], *self.spec.input_shape)
        return x

    def forward(self, x: np.ndarray, training: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Return (logits, outputs): the last layer's pre-activation and the activated output."""
        x = self._shaped(x)
        for layer in self.layers[:-1]:
            x = layer.forward(x, training)
        return x, self.layers[-1].forward(x, training)

    def activations(self, x: np.ndarray) -> dict[int, np.ndarray]:
        """Inference, keeping each spec layer's output (after its activation; dropout is off): what a conv
        layer's feature maps or a dense layer's units show for this input. The output layer's key is
        len(spec.layers)."""
        out: dict[int, np.ndarray] = {}
        x = self._shaped(np.asarray(x, dtype=self.dtype))
        for layer, index in zip(self.layers, self.spec_index, strict=True):
            x = layer.forward(x, False)
            out[index] = x
        return out

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """The outputs as a distribution over classes whatever the output layer (softmax already is one)."""
        logits, out = self.forward(np.asarray(x, dtype=self.dtype))
        if self.spec.output.activation == "softmax":
            return out
        if self.spec.output.activation == "sigmoid":
            return out / np.maximum(out.sum(axis=1, keepdims=True), 1e-12)
        return stable_softmax(logits)

    def loss_and_backward(
        self, x: np.ndarray, labels: np.ndarray, loss_fn: Loss | None = None
    ) -> tuple[float, np.ndarray]:
        """Forward in training mode, loss (the model's, or a training variant such as a label-smoothed one),
        and backward filling every layer's grads. Returns (mean loss, logits)."""
        logits, out = self.forward(x, training=True)
        loss, grad = (loss_fn or self.loss)(logits, out, labels, self.output_activation.fn)
        for layer in reversed(self.layers[:-1]):  # the output activation's slope is inside the loss gradient
            grad = layer.backward(grad)
        return loss, logits

    def evaluate(self, x: np.ndarray, labels: np.ndarray, chunk: int | None = None) -> tuple[float, np.ndarray]:
        """Mean loss and predicted classes over a data set, in inference mode, `chunk` samples at a time: by
        default 1000 images for a network on images (its feature maps stay a few MB), 5000 rows otherwise."""
        if chunk is None:
            chunk = (
                1000
                if len(self.spec.input_shape) > 1
                and any(not isinstance(layer, DenseSpec | FlattenSpec) for layer in self.spec.layers)
                else 5000
            )
        total, preds = 0.0, []
        for i in range(0, x.shape[0], chunk):
            xb, yb = x[i : i + chunk], labels[i : i + chunk]
            logits, out = self.forward(xb)
            total += self.loss.value(logits, out, yb, self.output_activation.fn) * xb.shape[0]
            preds.append(logits.argmax(axis=1))
        return total / x.shape[0], np.concatenate(preds)

    # ---- persistence -------------------------------------------------------------------------------

    def state(self) -> dict[str, np.ndarray]:
        """Every saved array by name: l{spec index}_{parameter or buffer}."""
        out: dict[str, np.ndarray] = {}
        for i, layer in self.owners.items():
            out.update({f"l{i}_{k}": v for k, v in (*layer.params.items(), *layer.buffers.items())})
        return out

    def save(self, target: str | Path | BinaryIO) -> None:
        write_model_file(target, self.spec.to_dict(), np.dtype(self.dtype).name, self.meta, self.state())

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        self.save(buf)
        return buf.getvalue()

    @staticmethod
    def read_spec(source: bytes) -> ModelSpec:
        """The spec from a model file's header alone (no array is read): for checking limits first."""
        return read_spec(source)

    @classmethod
    def load(cls, source: str | Path | BinaryIO | bytes) -> Model:
        """Load and check a model file (see engine/modelfile.py for what is checked before any array is read)."""
        loaded = read_model_file(source, _shapes_from_spec)
        model = cls.build(loaded.spec, dtype=loaded.dtype)
        model.meta = loaded.meta
        for name, array in model.state().items():
            array[...] = loaded.arrays[name]
        return model


def _shapes_from_spec(spec: ModelSpec) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    shape = spec.input_shape
    specs = (*spec.layers, DenseSpec(spec.output.units, spec.output.activation))
    for i, (layer_spec, info) in enumerate(zip(specs, describe(spec), strict=True)):
        if isinstance(layer_spec, DenseSpec):
            shapes[f"l{i}_W"], shapes[f"l{i}_b"] = (math.prod(shape), layer_spec.units), (layer_spec.units,)
        elif isinstance(layer_spec, Conv2DSpec):
            k, c, f = layer_spec.kernel, shape[-1], layer_spec.filters
            shapes[f"l{i}_W"], shapes[f"l{i}_b"] = (k, k, c, f), (f,)
        elif isinstance(layer_spec, BatchNormSpec):
            for name in ("gamma", "beta", "running_mean", "running_var"):
                shapes[f"l{i}_{name}"] = (shape[-1],)
        shape = info.output_shape
    return shapes
