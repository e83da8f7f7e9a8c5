"""Pooling and flattening for NHWC image batches.

Pools keep whole windows only ("valid"): rows and columns that do not fill a window are dropped, as in Keras.
Both pools loop over the size*size offsets of the window (4 or 9), each step one whole-batch operation on
strided slices. Measured on (128, 28, 28, 8): the running np.maximum over the 4 slices takes 0.6 ms where
reshaping to (N, OH, 2, OW, 2, C) and reducing over two middle axes takes 3 ms.
"""

from __future__ import annotations

import numpy as np

from engine.layers import Layer
from engine.parallel import shards


def pool_output_size(size: int, pool: int, stride: int | None = None) -> int:
    """Whole windows only: floor((size - pool) / stride) + 1, the stride defaulting to the pool size."""
    stride = pool if stride is None else stride
    if size < pool:
        raise ValueError(f"input size {size} is smaller than the pool {pool}")
    return (size - pool) // stride + 1


class _Pool2D(Layer):
    def __init__(self, size: int, stride: int | None = None) -> None:
        super().__init__()
        stride = size if stride is None else stride
        if not 2 <= size <= 3 or not 1 <= stride <= size:
            raise ValueError(f"pool size must be 2 or 3 and stride in [1, size], got {size} and {stride}")
        self.size, self.stride = size, stride
        self._x: np.ndarray | None = None

    def _slices(self, a: np.ndarray, out_h: int, out_w: int) -> list[np.ndarray]:
        """One strided view per window offset, column by column: element [n, y, x] of view (i, j) is
        a[n, y*s + i, x*s + j]."""
        s, last_h, last_w = self.stride, (out_h - 1) * self.stride + 1, (out_w - 1) * self.stride + 1
        return [a[:, i : i + last_h : s, j : j + last_w : s] for j in range(self.size) for i in range(self.size)]

    def _out_hw(self, x: np.ndarray) -> tuple[int, int]:
        if x.ndim != 4:
            raise ValueError(f"expected an (N, H, W, C) input, got {x.shape}")
        h, w = x.shape[1:3]
        return pool_output_size(h, self.size, self.stride), pool_output_size(w, self.size, self.stride)

    def _overlapping(self) -> bool:
        """Overlapping windows (stride < size) send several gradients to one pixel: add them, don't write."""
        return self.stride < self.size


class MaxPool2D(_Pool2D):
    kind = "maxpool2d"

    def __init__(self, size: int, stride: int | None = None) -> None:
        super().__init__(size, stride)
        self._out: np.ndarray | None = None

        self._pairs: tuple[np.ndarray, np.ndarray] | None = None  # 2x2 path: which half won, per stage
        # Set when the input is a ReLU's output whose layer leaves its slope to this pool (Conv2D's
        # slope_applied_downstream): max and ReLU commute, so the slope is 1 exactly where this pool's output is
        # positive, and applying it here touches a quarter of the values.
        self.relu_input = False

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        out_h, out_w = self._out_hw(x)
        if self.size == 2 and self.stride == 2:
            return self._forward_2x2(x, out_h, out_w, training)
        first, *rest = self._slices(x, out_h, out_w)
        out = first.copy()
        for part in rest:
            np.maximum(out, part, out=out)
        self._x, self._out, self._pairs = x, out, None
        return out

    def _forward_2x2(self, x: np.ndarray, out_h: int, out_w: int, training: bool) -> np.ndarray:
        """Two stages of pairs: the window's top and bottom rows first (runs of W*C contiguous floats), then
        the left and right columns of that half-size result (runs of only C floats, the slow kind, on half
        the data). Each stage keeps which half won (the first on ties, so the window's first maximum in
        column-major order), and backward routes the gradient with two selects. Each half of the batch is a
        shard of its own (engine/parallel.py)."""
        n, c = x.shape[0], x.shape[3]
        rows = x[:, : 2 * out_h, : 2 * out_w].reshape(n, out_h, 2, 2 * out_w, c)  # a view (splits H only)
        cols = np.empty((n, out_h, 2 * out_w, c), x.dtype)  # per column of the window
        pairs = cols.reshape(n, out_h, out_w, 2 * c)
        out = np.empty((n, out_h, out_w, c), x.dtype)
        top = np.empty(cols.shape, bool) if training else None
        left = np.empty(out.shape, bool) if training else None

        def shard(_: int, lo: int, hi: int) -> None:
            upper, lower, pair = rows[lo:hi, :, 0], rows[lo:hi, :, 1], pairs[lo:hi]
            np.maximum(upper, lower, out=cols[lo:hi])
            np.maximum(pair[..., :c], pair[..., c:], out=out[lo:hi])
            if top is not None and left is not None:
                np.greater_equal(upper, lower, out=top[lo:hi])
                np.greater_equal(pair[..., :c], pair[..., c:], out=left[lo:hi])

        shards().map(shard, n)
        self._x, self._out = x, out  # after inference, backward takes the general path
        self._pairs = (top, left) if top is not None and left is not None else None
        return out

    def _backward_2x2(self, grad_out: np.ndarray) -> np.ndarray:
        assert self._x is not None and self._pairs is not None and self._out is not None
        x, out, (top, left), relu = self._x, self._out, self._pairs, self.relu_input
        n, out_h, out_w, c = grad_out.shape
        cols = np.empty((n, out_h, out_w, 2 * c), grad_out.dtype)  # the gradient of each window column's max
        cols2 = cols.reshape(n, out_h, 2 * out_w, c)
        dx = np.zeros_like(x) if x.shape[1:3] != (2 * out_h, 2 * out_w) else np.empty_like(x)
        rows = dx[:, : 2 * out_h, : 2 * out_w].reshape(n, out_h, 2, 2 * out_w, c)

        def shard(_: int, lo: int, hi: int) -> None:
            grad = np.multiply(grad_out[lo:hi], out[lo:hi] > 0) if relu else grad_out[lo:hi]
            first, second = cols[lo:hi, ..., :c], cols[lo:hi, ..., c:]
            np.multiply(grad, left[lo:hi], out=first)
            np.subtract(grad, first, out=second)
            upper, lower = rows[lo:hi, :, 0], rows[lo:hi, :, 1]
            np.multiply(cols2[lo:hi], top[lo:hi], out=upper)
            np.subtract(cols2[lo:hi], upper, out=lower)

        shards().map(shard, n)
        return dx

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        """The whole gradient goes to the window's maximum; on ties, to the first in column-major order (a window
        of ReLU zeros is common, and splitting or copying the gradient there would be wrong)."""
        assert self._x is not None and self._out is not None, "backward before forward"
        if self._pairs is not None:
            return self._backward_2x2(grad_out)
        if self.relu_input:
            grad_out = np.multiply(grad_out, self._out > 0)
        x, out = self._x, self._out
        dx = np.zeros_like(x)
        unclaimed = np.ones(out.shape, bool)  # windows whose winner is not found yet
        hit = np.empty_like(unclaimed)
        for part, target in zip(self._slices(x, *out.shape[1:3]), self._slices(dx, *out.shape[1:3]), strict=True):
            np.equal(part, out, out=hit)
            hit &= unclaimed
            unclaimed ^= hit
            if self._overlapping():
                target += grad_out * hit
            else:
                np.multiply(grad_out, hit, out=target)
        return dx


class AvgPool2D(_Pool2D):
    kind = "avgpool2d"

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        first, *rest = self._slices(x, *self._out_hw(x))
        out = first.copy()
        for part in rest:
            out += part
        out *= 1.0 / self.size**2  # a Python float keeps the array's dtype
        self._x = x
        return out

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        assert self._x is not None, "backward before forward"
        share = grad_out * (1.0 / self.size**2)
        dx = np.zeros_like(self._x)
        for target in self._slices(dx, *grad_out.shape[1:3]):
            if self._overlapping():
                target += share
            else:
                target[...] = share
        return dx
