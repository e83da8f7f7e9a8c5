"""Central-difference gradient checks in float64, the one copy every gradient test uses: the norm-wise relative
error (element-wise ratios blow up on entries that are ~0 in both, where the finite difference itself only has
~1e-10 absolute precision) must stay below RTOL."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from engine.layers import Layer

RTOL = 1e-6


def numeric_grad(f: Callable[[], float], x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        plus = f()
        x[i] = old - h
        minus = f()
        x[i] = old
        grad[i] = (plus - minus) / (2 * h)
    return grad


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(1e-12, np.linalg.norm(a) + np.linalg.norm(b)))


def check_layer_gradients(layer: Layer, x: np.ndarray, training: bool = True, seed: int = 0) -> None:
    """Input and parameter gradients of sum(readout * layer(x)) against central differences."""
    readout = np.random.default_rng(seed).standard_normal(layer.forward(x, training).shape)

    def loss() -> float:
        return float((layer.forward(x, training) * readout).sum())

    layer.forward(x, training)
    dx = layer.backward(readout)
    analytic = {key: g.copy() for key, g in layer.grads.items()}
    assert rel_error(dx, numeric_grad(loss, x)) < RTOL
    for key, g in analytic.items():
        assert rel_error(g, numeric_grad(loss, layer.params[key])) < RTOL, key
