"""2-D convolution on NHWC image batches (N, H, W, C), by im2col and matrix products.

Forward copies the kernel windows of a block of images into a (B*OH*OW, K*K*C) matrix (an as_strided view and
one copy) and multiplies it by the weights seen as (K*K*C, F): one sgemm per block. Backward rebuilds the block's
window matrix for dW (one sgemm) and computes dX as the "full" convolution of the gradient with the flipped
kernel: the gradient spread on a zero grid (dilated by the stride), windowed the same way, one sgemm. That
replaces col2im's K*K strided scatter-adds, which NumPy runs slowly because their contiguous runs are only C
floats long (dX of conv 8->16 5x5 on 128 14x14 images: 12-17 ms with col2im, 5-7 ms as a full convolution).

Blocks: the batch is cut into blocks of about BLOCK_BYTES of window matrix, so each matrix is read by the sgemm
while it is still in the core's cache instead of making a 20-40 MB round trip through memory per batch. On the
benchmark network (benchmarks/bench_conv_layers.py, 1 BLAS thread, interleaved runs) one whole-batch sgemm per
product took 36 ms, blocks of 512 KB 21 ms, 768 KB-1 MB 23 ms, 2 MB 24 ms. Each half of the batch is a shard
run on its own thread (engine/parallel.py), and with two shards at once 1 MB blocks are best (bench_speed.py's
CNN: 8.5 s an epoch against 9.9 s at 512 KB; fewer, larger NumPy calls hold the GIL less); on one thread they
cost the cnn preset a few per cent. The size is fixed, not chosen by thread count, because it sets how dW is
summed: a run must round the same on any machine. Each loop step is still a block of whole images' im2col and
sgemm, never a loop over pixels or filters. Rebuilding the windows in backward is cheaper than keeping them.
The products go through np.dot, which releases the GIL around BLAS for every shape here; np.matmul held it
for the first layer's dW (26 x 10240 by 10240 x 8), so the two shards' products ran one after the other.

The window geometry and the window-matrix builders (with the single-channel fast path) are in engine/im2col.py.

Work arrays (padded grids, window matrices) are kept between training calls, a set per shard: no allocation,
and zero borders are written once. Inference uses arrays fresh for each call, so concurrent predictions on one
model do not race.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import numpy as np

from engine.im2col import (
    PADDINGS,
    Col2imPlan,
    Geometry,
    col2im_dx,
    col2im_plan,
    conv_output_size,
    dx_window_matrix,
    same_padding,
    window_matrix_views,
    windows,
    work_array,
)
from engine.initializers import init_scale
from engine.layers import Layer
from engine.norm import column_sums
from engine.parallel import shards

__all__ = ["BLOCK_BYTES", "PADDINGS", "Conv2D", "conv_output_size", "same_padding", "windows"]

BLOCK_BYTES = 1 << 20  # window matrix per block of images (see above)


class Conv2D(Layer):
    kind = "conv2d"

    def __init__(
        self,
        in_channels: int,
        filters: int,
        kernel: int,
        *,
        stride: int = 1,
        padding: str = "same",
        init: str = "he",
        rng: np.random.Generator,
        dtype: type = np.float32,
        needs_input_grad: bool = True,
        activation: str = "linear",
    ) -> None:
        super().__init__()
        if activation not in ("linear", "relu"):
            raise ValueError(f"a convolution fuses only relu (or linear), got {activation!r}")
        self.relu = activation == "relu"  # applied in place to the output; its slope read back from the output
        # set when a max pool right after applies the ReLU's slope on its smaller output (MaxPool2D.relu_input)
        self.slope_applied_downstream = False
        self._out: np.ndarray | None = None
        for name, value, low, high in (("filters", filters, 1, 64), ("kernel", kernel, 1, 7), ("stride", stride, 1, 2)):
            if not low <= value <= high:
                raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
        if in_channels < 1 or padding not in PADDINGS:
            raise ValueError(f"bad in_channels {in_channels} or padding {padding!r}")
        self.in_channels, self.filters, self.kernel, self.stride = in_channels, filters, kernel, stride
        self.padding = padding
        fan_in, fan_out = kernel * kernel * in_channels, kernel * kernel * filters  # per output / input pixel
        scale = init_scale(init, fan_in, fan_out)
        weights: np.ndarray = (rng.standard_normal((kernel, kernel, in_channels, filters)) * scale).astype(dtype)
        self.params = {"W": weights, "b": np.zeros(filters, dtype)}
        self.grads = {"W": np.zeros_like(self.params["W"]), "b": np.zeros_like(self.params["b"])}
        self.needs_input_grad = needs_input_grad  # the first layer's input is the data: skip its dX
        self._kept: list[dict[str, np.ndarray]] = []  # per shard: arrays reused between training calls, by name
        self._cached: dict[tuple[object, ...], object] = {}  # per geometry and shard: views of _kept; col2im plans
        self._x: np.ndarray | None = None
        self._training = False

    # ---- geometry ------------------------------------------------------------------------------------

    def output_shape(self, h: int, w: int) -> tuple[int, int]:
        k, s, p = self.kernel, self.stride, self.padding
        return conv_output_size(h, k, s, p), conv_output_size(w, k, s, p)

    def _planar(self, c: int) -> bool:
        return c == 1

    def _col2im(self) -> bool:
        """dX by col2im (one sgemm, K*K strided adds) rather than as a full convolution over the gradient
        dilated by the stride, whose window matrix would be stride^2 times larger and mostly zeros."""
        return self.stride > 1

    def _geometry(self, x: np.ndarray) -> Geometry:
        n, h, w, c = x.shape
        oh, ow = self.output_shape(h, w)
        k, s = self.kernel, self.stride
        pads = (same_padding(h, k, s), same_padding(w, k, s)) if self.padding == "same" else ((0, 0), (0, 0))
        (top, bottom), (left, right) = pads
        hp, wp = h + top + bottom, w + left + right
        hq, wq = -(-hp // s), -(-wp // s)
        # images per block: the larger window matrix (forward's or dX's) of one block fills about BLOCK_BYTES
        windows_per_image = hq * wq if self._planar(c) else oh * ow * c
        dx_windows_per_image = 0
        if self.needs_input_grad:  # strided: col2im's (OH*OW, K*K*C) rows; else the full convolution's windows
            dx_windows_per_image = oh * ow * c if self._col2im() else h * w * self.filters
        per_image = self.kernel**2 * max(windows_per_image, dx_windows_per_image) * x.itemsize
        block = max(1, min(n, BLOCK_BYTES // per_image))
        return Geometry(n, h, w, c, oh, ow, top, left, hp, wp, hq, wq, block)

    _array = staticmethod(work_array)

    def _window_matrix(
        self, x: np.ndarray, g: Geometry, work: dict[str, np.ndarray]
    ) -> Callable[[int, int], np.ndarray]:
        """fill(lo, hi) for images lo:hi of x; the views behind it are made once per geometry in training."""
        if not any(work is kept for kept in self._kept):
            make = self._window_matrix_views(g, work, x.dtype)
        else:
            key = ("window", g, x.dtype, id(work))
            make = self._cached.get(key)  # type: ignore[assignment]
            if make is None:
                make = self._cached[key] = self._window_matrix_views(g, work, x.dtype)
        return lambda lo, hi: make(x, lo, hi)

    def _window_matrix_views(
        self, g: Geometry, work: dict[str, np.ndarray], dtype: np.dtype
    ) -> Callable[[np.ndarray, int, int], np.ndarray]:
        """fill(x, lo, hi): the window matrix of images lo:hi (engine/im2col.py)."""
        return window_matrix_views(g, self.kernel, self.stride, self._planar(g.c), work, dtype)

    def _dx_window_matrix(
        self, g: Geometry, f: int, work: dict[str, np.ndarray], dtype: np.dtype
    ) -> Callable[[np.ndarray], np.ndarray]:
        """fill(grad block): the window matrix of dX's full convolution (engine/im2col.py)."""
        return dx_window_matrix(g, self.kernel, self.stride, f, work, dtype)

    def _col2im_plan(self, g: Geometry) -> Col2imPlan:
        return col2im_plan(g, self.kernel, self.stride)

    def _col2im_dx(
        self, g: Geometry, f: int, work: dict[str, np.ndarray], dtype: np.dtype
    ) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        """fill(grad block, dx block): dX by col2im (engine/im2col.py), its plan made once per geometry."""
        if ("col2im", g) not in self._cached:
            self._cached["col2im", g] = self._col2im_plan(g)
        plan = cast(Col2imPlan, self._cached["col2im", g])
        return col2im_dx(g, self.params["W"], plan, work, dtype)

    # ---- forward and backward ------------------------------------------------------------------------

    def _work(self, shard: int, training: bool) -> dict[str, np.ndarray]:
        """The shard's work arrays: kept between training calls, fresh for each inference call. Shards that run
        in turn on one thread share one set (half the memory to keep in cache)."""
        if not training:
            return {}
        if shards().threads == 1:
            shard = 0
        while len(self._kept) <= shard:
            self._kept.append({})
        return self._kept[shard]

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        if x.ndim != 4 or x.shape[3] != self.in_channels:
            raise ValueError(f"expected (N, H, W, {self.in_channels}) input, got {x.shape}")
        self._x, self._training = x, training
        g, f = self._geometry(x), self.filters
        out = np.empty((g.n, g.oh, g.ow, f), x.dtype)
        shards().map(lambda k, lo, hi: self._forward_shard(x, out, g, self._work(k, training), lo, hi), g.n)
        self._out = out  # for backward, which also follows inference (engine/explain.py)
        return out

    def _forward_shard(
        self, x: np.ndarray, out: np.ndarray, g: Geometry, work: dict[str, np.ndarray], start: int, stop: int
    ) -> None:
        """Images start:stop of out, block by block."""
        f = self.filters
        weights, bias = self.params["W"].reshape(-1, f), self.params["b"]
        window_matrix = self._window_matrix(x, g, work)
        planar = self._planar(g.c)
        if planar:  # the window matrix's row of ones meets the bias
            weights = np.concatenate([weights, bias[None]])
        for lo in range(start, stop, g.block):
            hi = min(lo + g.block, stop)
            cols = window_matrix(lo, hi)
            if planar:  # outputs on the whole padded grid; crop them, applying the ReLU on the way
                grid_out = self._array(work, "grid_out", (g.block * g.hq * g.wq, f), x.dtype)[: cols.shape[1]]
                np.dot(cols.T, weights, out=grid_out)
                crop = grid_out.reshape(-1, g.hq, g.wq, f)[:, : g.oh, : g.ow]
                if self.relu:
                    np.maximum(crop, 0, out=out[lo:hi])
                else:
                    out[lo:hi] = crop
            else:
                np.dot(cols, weights, out=out[lo:hi].reshape(-1, f))
        if not planar:
            mine = out[start:stop]
            mine += bias
            if self.relu:  # in place: out is this call's own array
                np.maximum(mine, 0, out=mine)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        assert self._x is not None, "backward before forward"
        x, f = self._x, self.filters
        g = self._geometry(x)
        slope = self.relu and not self.slope_applied_downstream
        out = self._out if slope else None  # the fused ReLU's slope: 1 where its output is positive
        assert out is not None or not slope, "backward before a training forward"
        dx = np.empty(x.shape, x.dtype) if self.needs_input_grad else np.zeros((g.n, g.h, g.w, 0), x.dtype)
        training = self._training
        # each shard's sums over its images: (dW rows, then the bias gradient as a last row)
        parts = shards().map(
            lambda k, lo, hi: self._backward_shard(grad_out, out, dx, g, self._work(k, training), lo, hi), g.n
        )
        total = parts[0]
        for part in parts[1:]:  # in shard order: the same rounding on any number of cores
            total += part
        self.grads["W"].reshape(-1, f)[...] = total[:-1]
        self.grads["b"][...] = total[-1]
        return dx

    def _backward_shard(
        self,
        grad_out: np.ndarray,
        out: np.ndarray | None,
        dx: np.ndarray,
        g: Geometry,
        work: dict[str, np.ndarray],
        start: int,
        stop: int,
    ) -> np.ndarray:
        """dX of images start:stop, and their (K*K*C + 1, F) sum of dW rows and the bias gradient (a new array)."""
        x, f, k = self._x, self.filters, self.kernel
        assert x is not None
        planar = self._planar(g.c)
        grad_out = grad_out[start:stop]
        if out is not None and not planar:
            grad_out = np.multiply(grad_out, out[start:stop] > 0)
        total = np.zeros((k * k * g.c + 1, f), x.dtype)
        dw = total if planar else total[:-1]  # planar: the bias gradient comes with dW, from the row of ones
        if not planar:
            total[-1] = column_sums(grad_out.reshape(-1, f))
        part = self._array(work, "dw_part", dw.shape, x.dtype)
        window_matrix = self._window_matrix(x, g, work)  # recomputed per block: cheaper than keeping it in memory
        if planar:  # the planar windows cover the whole padded grid: zero gradient outside the crop
            grad_grid = self._array(work, "grad_grid", (g.block, g.hq, g.wq, f), x.dtype)
        if self.needs_input_grad:
            if self._col2im():
                col2im = self._col2im_dx(g, f, work, x.dtype)
            else:
                dx_window_matrix = self._dx_window_matrix(g, f, work, x.dtype)
                flipped = self.params["W"][::-1, ::-1].transpose(0, 1, 3, 2).reshape(k * k * f, g.c)  # (K*K*F, C)
        for lo in range(start, stop, g.block):
            hi = min(lo + g.block, stop)
            cols, grad = window_matrix(lo, hi), grad_out[lo - start : hi - start]
            if planar:
                if out is not None:
                    np.multiply(grad, out[lo:hi] > 0, out=grad_grid[: hi - lo, : g.oh, : g.ow])
                else:
                    grad_grid[: hi - lo, : g.oh, : g.ow] = grad
                np.dot(cols, grad_grid[: hi - lo].reshape(-1, f), out=part)
                grad = grad_grid[: hi - lo, : g.oh, : g.ow]  # with the slope applied, for dX
            else:
                np.dot(cols.T, grad.reshape(-1, f), out=part)
            dw += part
            if self.needs_input_grad and self._col2im():
                col2im(grad, dx[lo:hi])
            elif self.needs_input_grad:
                np.dot(dx_window_matrix(grad), flipped, out=dx[lo:hi].reshape(-1, g.c))
        return total
