"""Batch normalisation over every axis but the last: per feature after Dense (N, F), per channel after a
convolution (N, H, W, C)."""

from __future__ import annotations

import numpy as np

from engine.layers import Layer


class BatchNorm(Layer):
    """Training normalises with the batch's mean and (biased) variance and moves the running statistics toward
    them: running = momentum * running + (1 - momentum) * batch. Inference normalises with the running ones,
    which are kept in `buffers` (saved with the model, never touched by an optimizer)."""

    kind = "batchnorm"

    def __init__(self, channels: int, *, momentum: float = 0.9, eps: float = 1e-5, dtype: type = np.float32) -> None:
        super().__init__()
        if channels < 1 or not 0.0 <= momentum < 1.0 or eps <= 0.0:
            raise ValueError(f"bad batchnorm settings: channels {channels}, momentum {momentum}, eps {eps}")
        self.momentum, self.eps = momentum, eps
        self.params = {"gamma": np.ones(channels, dtype), "beta": np.zeros(channels, dtype)}
        self.grads = {"gamma": np.zeros(channels, dtype), "beta": np.zeros(channels, dtype)}
        self.buffers = {"running_mean": np.zeros(channels, dtype), "running_var": np.ones(channels, dtype)}
        self._x_hat: np.ndarray | None = None  # normalised input, as (rows, channels)
        self._inv_std: np.ndarray | None = None
        self._batch_stats = False  # whether the last forward normalised with the batch's own statistics

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        channels = self.params["gamma"].shape[0]
        if x.shape[-1] != channels:
            raise ValueError(f"expected {channels} channels on the last axis, got {x.shape}")
        rows = x.reshape(-1, channels)
        m = rows.shape[0]
        if training:
            mean = column_sums(rows) / m
            centered = rows - mean
            var = column_sums(centered * centered) / m
            for name, batch in (("running_mean", mean), ("running_var", var)):
                running = self.buffers[name]
                running *= self.momentum
                running += (1.0 - self.momentum) * batch
        else:
            var = self.buffers["running_var"]
            centered = rows - self.buffers["running_mean"]
        inv_std = 1.0 / np.sqrt(var + self.eps)
        centered *= inv_std  # now x_hat
        self._batch_stats, self._inv_std, self._x_hat = training, inv_std, centered
        out = centered * self.params["gamma"]
        out += self.params["beta"]
        return out.reshape(x.shape)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        assert self._x_hat is not None and self._inv_std is not None, "backward before forward"
        x_hat = self._x_hat
        grad = grad_out.reshape(x_hat.shape)
        self.grads["gamma"][...] = column_sums(grad * x_hat)
        self.grads["beta"][...] = column_sums(grad)
        scale = self.params["gamma"] * self._inv_std
        if not self._batch_stats:  # fixed statistics: the layer is an affine map per channel
            return (grad * scale).reshape(grad_out.shape)
        # the batch mean and variance depend on every row: their paths remove the gradient's mean and its
        # component along x_hat
        d_x = x_hat * (self.grads["gamma"] * (1.0 / x_hat.shape[0]))
        d_x += self.grads["beta"] * (1.0 / x_hat.shape[0])
        np.subtract(grad, d_x, out=d_x)
        d_x *= scale
        return d_x.reshape(grad_out.shape)


def column_sums(a: np.ndarray) -> np.ndarray:
    """Sums over the rows of a tall, narrow (rows, channels) array. einsum's loop is ~5x faster than
    a.sum(axis=0), which NumPy walks row by row, and unlike a ones-vector gemv it never waits for a BLAS thread
    (a 2-thread gemv took 12 ms instead of 0.12 ms while another process held the second core)."""
    return np.einsum("ij->j", a)
