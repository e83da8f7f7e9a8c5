"""Is the network healthy? Per layer with parameters, the checks Karpathy's lectures teach: how its outputs are
spread, how many units are dead (ReLU: zero for the whole batch) or saturated (sigmoid/tanh: |out| > 0.97 of
the range), how large its weight gradient is, and the update-to-data ratio (std of the step / std of the
weights; about 1e-3 is healthy: far below and it barely learns, far above and it is unstable).

Measured from what the last batch left in the layers (no extra forward pass), and from the weights just before
and after one optimizer step; the trainer does it only at progress ticks, so it costs a few copies a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.layers import ActivationLayer, Layer
from engine.model import Model


@dataclass(frozen=True)
class LayerHealth:
    layer: int  # index in the spec's layer list (the output layer last)
    type: str  # dense, conv2d, batchnorm
    activation: str  # of the layer's output: relu, tanh, ... ("" when none follows)
    mean: float  # of the layer's activated outputs on the last batch
    std: float
    dead: float  # fraction of ReLU units that are zero for every sample of the batch
    saturated: float  # fraction of sigmoid/tanh outputs beyond 0.97 of the way to their limits
    grad_norm: float  # L2 norm of the weight gradient
    update_ratio: float  # std(W_after - W_before) / std(W_before)


def weights_before(model: Model) -> dict[int, np.ndarray]:
    """Copies of every main weight array (W or gamma), taken just before an optimizer step."""
    return {i: next(iter(layer.params.values())).copy() for i, layer in model.owners.items()}


def measure(model: Model, before: dict[int, np.ndarray]) -> list[LayerHealth]:
    activation_of: dict[int, ActivationLayer] = {}
    for layer, index in zip(model.layers, model.spec_index, strict=True):
        if isinstance(layer, ActivationLayer) and index not in activation_of:
            activation_of[index] = layer
    return [_layer(i, layer, activation_of.get(i), before[i]) for i, layer in model.owners.items() if i in before]


def _layer(index: int, layer: Layer, act: ActivationLayer | None, before: np.ndarray) -> LayerHealth:
    name, weights = next(iter(layer.params.items()))
    grad = layer.grads[name]
    out = act._a if act is not None else None
    mean = std = dead = saturated = 0.0
    kind = act.fn.name if act is not None else ""
    if out is not None and out.size:
        flat = out.reshape(out.shape[0], -1)
        mean, std = float(flat.mean()), float(flat.std())
        if kind == "relu":
            dead = float(np.mean(~(flat > 0).any(axis=0)))
        elif kind == "tanh":
            saturated = float(np.mean(np.abs(flat) > 0.97))
        elif kind == "sigmoid":
            saturated = float(np.mean(np.abs(flat - 0.5) > 0.485))
    spread = float(before.std())
    step = float((weights - before).std())
    return LayerHealth(
        layer=index,
        type=layer.kind,
        activation=kind,
        mean=mean,
        std=std,
        dead=dead,
        saturated=saturated,
        grad_norm=float(np.linalg.norm(grad)),
        update_ratio=step / spread if spread > 0 else 0.0,
    )
