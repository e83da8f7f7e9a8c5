"""Losses. Each takes the network's final pre-activation ``z`` (logits) and output ``a``, so the fused pairs
(softmax + cross-entropy, sigmoid + binary cross-entropy) can return the simple, stable gradient ``a - y``
with respect to ``z`` instead of multiplying two ill-conditioned Jacobians.

All losses are means over the batch. MSE is ``0.5 * sum_k (a_k - y_k)^2`` per sample, the form whose gradient
is ``a - y`` and the one the classic from-scratch tutorials use.
"""

from __future__ import annotations

import numpy as np

from engine.activations import Activation, Softmax, row_max


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

    def value(self, z: np.ndarray, a: np.ndarray, labels: np.ndarray, activation: Activation) -> float:
        """The mean loss alone (evaluation needs no gradient)."""
        return self(z, a, labels, activation)[0]


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
    """Categorical cross-entropy on softmax outputs, from logits: per sample log-sum-exp(z) - z[label].

    The log-sum-exp comes from the softmax the output layer already computed: lse = max(z) + log(s) with
    s = sum(exp(z - max)) its row sum, at least 1 (the largest logit's term), so it never overflows or takes
    log(0), however confident and wrong the logits are. (With another output layer: max(z) - log(max(a)).)

    ``label_smoothing`` (eps) trains towards (1 - eps) one-hot + eps / classes: the loss becomes
    lse - (1 - eps) z[label] - eps mean(z) and the gradient p - target."""

    name = "cross_entropy"

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing

    def _sum(self, z: np.ndarray, a: np.ndarray, picked: np.ndarray, activation: Activation) -> float:
        if isinstance(activation, Softmax):  # the row max and sum its forward computed, not a second pass
            lse = activation.log_sum_exp(z)
        else:
            lse = row_max(z)
            lse -= np.log(row_max(a))
        eps = self.label_smoothing
        total = float(lse.sum()) - (1.0 - eps) * float(np.take(z, picked).sum())
        if eps:
            total -= eps * float(z.sum()) / z.shape[1]
        return total

    def __call__(
        self, z: np.ndarray, a: np.ndarray, labels: np.ndarray, activation: Activation
    ) -> tuple[float, np.ndarray]:
        n, k = z.shape
        picked = np.arange(0, n * k, k) + labels  # flat index of each row's label
        scale = 1.0 / n
        grad = np.multiply(a, scale)  # the fused gradient (p - target) / n
        if self.label_smoothing:
            grad -= self.label_smoothing * scale / k
        grad.ravel()[picked] -= (1.0 - self.label_smoothing) * scale
        return self._sum(z, a, picked, activation) * scale, grad

    def value(self, z: np.ndarray, a: np.ndarray, labels: np.ndarray, activation: Activation) -> float:
        n, k = z.shape
        return self._sum(z, a, np.arange(0, n * k, k) + labels, activation) / n


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


def get_loss(name: str, output_activation: str, *, label_smoothing: float = 0.0) -> Loss:
    if label_smoothing and not (name == "cross_entropy" and output_activation == "softmax"):
        raise ValueError("label smoothing needs cross_entropy on a softmax output")
    if name == "mse":
        return MeanSquaredError()
    if name == "cross_entropy":
        if output_activation == "softmax":
            return SoftmaxCrossEntropy(label_smoothing)
        if output_activation == "sigmoid":
            return SigmoidCrossEntropy()
        raise ValueError("cross_entropy needs a softmax or sigmoid output (it reads outputs as probabilities)")
    raise ValueError(f"unknown loss {name!r}; choose one of {list(LOSSES)}")
