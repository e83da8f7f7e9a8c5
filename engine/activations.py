"""Element-wise activations and softmax, each with forward and backward.

Every activation is a stateless object: ``forward(z)`` returns ``a`` and ``backward(z, a, grad_a)`` returns
``grad_z``. Both the pre-activation ``z`` and the output ``a`` are passed back so each function can use the
cheaper of the two (sigmoid and tanh derive their slope from ``a``, ReLU from ``z``).
"""

from __future__ import annotations

import numpy as np


class Activation:
    name = "base"

    def forward(self, z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, z: np.ndarray, a: np.ndarray, grad_a: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class Linear(Activation):
    name = "linear"

    def forward(self, z: np.ndarray) -> np.ndarray:
        return z

    def backward(self, z: np.ndarray, a: np.ndarray, grad_a: np.ndarray) -> np.ndarray:
        return grad_a


def stable_sigmoid(z: np.ndarray) -> np.ndarray:
    # exp(-|z|) never overflows; the two branches of the logistic share it.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(z.dtype, copy=False)


class Sigmoid(Activation):
    name = "sigmoid"

    def forward(self, z: np.ndarray) -> np.ndarray:
        return stable_sigmoid(z)

    def backward(self, z: np.ndarray, a: np.ndarray, grad_a: np.ndarray) -> np.ndarray:
        return grad_a * a * (1 - a)


class Tanh(Activation):
    name = "tanh"

    def forward(self, z: np.ndarray) -> np.ndarray:
        return np.tanh(z)

    def backward(self, z: np.ndarray, a: np.ndarray, grad_a: np.ndarray) -> np.ndarray:
        return grad_a * (1 - a * a)


class ReLU(Activation):
    name = "relu"

    def forward(self, z: np.ndarray) -> np.ndarray:
        return np.maximum(z, 0)

    def backward(self, z: np.ndarray, a: np.ndarray, grad_a: np.ndarray) -> np.ndarray:
        return grad_a * (z > 0)


class LeakyReLU(Activation):
    name = "leaky_relu"

    def __init__(self, slope: float = 0.01) -> None:
        self.slope = slope

    def forward(self, z: np.ndarray) -> np.ndarray:
        return np.where(z > 0, z, z * self.slope)

    def backward(self, z: np.ndarray, a: np.ndarray, grad_a: np.ndarray) -> np.ndarray:
        return np.where(z > 0, grad_a, grad_a * self.slope)


def stable_softmax(z: np.ndarray) -> np.ndarray:
    # Subtracting the row max keeps exp() in (0, 1]: no overflow for any finite logits.
    shifted = z - z.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    e /= e.sum(axis=1, keepdims=True)
    return e


def log_softmax(z: np.ndarray) -> np.ndarray:
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


class Softmax(Activation):
    name = "softmax"

    def forward(self, z: np.ndarray) -> np.ndarray:
        return stable_softmax(z)

    def backward(self, z: np.ndarray, a: np.ndarray, grad_a: np.ndarray) -> np.ndarray:
        # Jacobian-vector product of softmax: a * (g - sum(g * a)). Used when softmax is paired with a loss
        # other than cross-entropy (which takes the fused p - y path instead).
        return a * (grad_a - (grad_a * a).sum(axis=1, keepdims=True))


HIDDEN_ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh", "linear")
OUTPUT_ACTIVATIONS = ("softmax", "sigmoid", "linear")

_REGISTRY: dict[str, type[Activation]] = {cls.name: cls for cls in (Linear, Sigmoid, Tanh, ReLU, LeakyReLU, Softmax)}


def get_activation(name: str) -> Activation:
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(_REGISTRY)}") from None
