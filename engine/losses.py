"""Losses. Each takes the network's final pre-activation ``z`` (logits) and output ``a``, so the fused pairs
(softmax + cross-entropy, sigmoid + binary cross-entropy) can return the simple, stable gradient ``a - y``
with respect to ``z`` instead of multiplying two ill-conditioned Jacobians.

All losses are means over the batch. MSE is ``0.5 * sum_k (a_k - y_k)^2`` per sample, the form whose gradient
is ``a - y`` and the one the classic from-scratch tutorials use.
"""

from __future__ import annotations

import numpy as np

from engine.activations import Activation, log_softmax


def one_hot(labels: np.ndarray, classes: int, dtype: np.dtype | type = np.float32) -> np.ndarray:
    out = np.zeros((labels.shape[0], classes), dtype=dtype)
    out[np.arange(labels.shape[0]), labels] = 1
    return out


class Loss:
    name = "base"

    def __call__(
        self, z: np.ndarray, a: np.ndarray, labels: np.ndarray, activation: Activation
    ) -> tuple[float, np.ndarray]:
        """Return (mean loss, gradient of the mean loss with respect to the logits z)."""
        raise NotImplementedError


class MeanSquaredError(Loss):
    name = "mse"

    def __call__(
        self, z: np.ndarray, a: np.ndarray, labels: np.ndarray, activation: Activation
    ) -> tuple[float, np.ndarray]:
        n = labels.shape[0]
        # integer labels are classes (one-hot targets); float labels are regression targets, one row each
        target = (
            labels.reshape(n, -1).astype(a.dtype) if labels.dtype.kind == "f" else one_hot(labels, a.shape[1], a.dtype)
        )
        diff = a - target
        loss = 0.5 * float(np.einsum("ij,ij->", diff, diff)) / n
        return loss, activation.backward(z, a, diff / n)


class SoftmaxCrossEntropy(Loss):
    """Categorical cross-entropy on softmax outputs, computed from logits with log-sum-exp."""

    name = "cross_entropy"

    def __call__(
        self, z: np.ndarray, a: np.ndarray, labels: np.ndarray, activation: Activation
    ) -> tuple[float, np.ndarray]:
        n = labels.shape[0]
        rows = np.arange(n)
        loss = -float(log_softmax(z)[rows, labels].sum()) / n
        grad = a.copy()
        grad[rows, labels] -= 1  # the fused gradient p - y
        grad /= n
        return loss, grad


class SigmoidCrossEntropy(Loss):
    """Binary cross-entropy per output unit (one-vs-rest), from logits: log(1 + e^z) - y z, stable form."""

    name = "cross_entropy"

    def __call__(
        self, z: np.ndarray, a: np.ndarray, labels: np.ndarray, activation: Activation
    ) -> tuple[float, np.ndarray]:
        n = labels.shape[0]
        y = one_hot(labels, z.shape[1], z.dtype)
        per_unit = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
        return float(per_unit.sum()) / n, (a - y) / n


LOSSES = ("cross_entropy", "mse")


def get_loss(name: str, output_activation: str) -> Loss:
    if name == "mse":
        return MeanSquaredError()
    if name == "cross_entropy":
        if output_activation == "softmax":
            return SoftmaxCrossEntropy()
        if output_activation == "sigmoid":
            return SigmoidCrossEntropy()
        raise ValueError("cross_entropy needs a softmax or sigmoid output (it reads outputs as probabilities)")
    raise ValueError(f"unknown loss {name!r}; choose one of {list(LOSSES)}")
