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


def row_max(z: np.ndarray) -> np.ndarray:
    """The largest of each row of an (n, k) array. NumPy reduces along a row of 10 floats ~4x slower than it
    copies the array transposed and takes the element-wise maximum of its k rows of n (2 against 8 us for
    a batch of 128 logits, a step's most expensive call after the matrix products and Adam)."""
    if z.ndim != 2 or z.shape[1] > 64:
        return z.max(axis=1)
    return np.maximum.reduce(np.ascontiguousarray(z.T), axis=0)


def softmax_parts(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(softmax, row max, row sum of exp(z - max)): the loss reads log-sum-exp from the last two."""
    top = row_max(z)
    # Subtracting the row max keeps exp() in (0, 1]: no overflow for any finite logits.
    e = np.subtract(z, top[:, None])
    np.exp(e, out=e)
    total = e.sum(axis=1)  # (einsum's row sums are 1 us faster, but round differently: saved outputs would move)
    e /= total[:, None]
    return e, top, total


def stable_softmax(z: np.ndarray) -> np.ndarray:
    return softmax_parts(z)[0]


def log_softmax(z: np.ndarray) -> np.ndarray:
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


class Softmax(Activation):
    name = "softmax"

    def __init__(self) -> None:
        # (z, row max, row sum) of the last forward: a cross-entropy on the same z takes its log-sum-exp from
        # them. One tuple, replaced whole, so a reader on another thread sees one call's parts or another's.
        self.last: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def forward(self, z: np.ndarray) -> np.ndarray:
        a, top, total = softmax_parts(z)
        self.last = (z, top, total)
        return a

    def log_sum_exp(self, z: np.ndarray) -> np.ndarray:
        """Per row log(sum(exp(z))), from the last forward's parts when it was on this very z."""
        last = self.last
        if last is None or last[0] is not z:
            _, top, total = softmax_parts(z)
        else:
            _, top, total = last
        return top + np.log(total)

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
