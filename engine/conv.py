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
product took 36 ms, blocks of 512 KB 21 ms, 768 KB-1 MB 23 ms, 2 MB 24 ms. At 512 KB a block of the second
layer (dX windows of 5x5 over 16 channels on 14x14) is a single image: each loop step is still a whole image's
im2col and sgemm, never a loop over pixels or filters. Rebuilding the windows in backward is cheaper than
keeping them.

Single-channel stride-1 input (the first layer on MNIST) takes a faster path for the window matrix: on the
padded images flattened to one line, the pixel under kernel offset (i, j) of output q is q + i*Wp + j, so the
K*K rows of the transposed window matrix are contiguous slices (memcpy-like copies instead of 5-float runs; ~4x
faster), at the price of computing outputs on the whole padded grid and cropping them.

Work arrays (padded grids, window matrices) are kept between training calls: no allocation, and zero borders
are written once. Inference uses arrays fresh for each call, so concurrent predictions on one model do not race.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, cast

import numpy as np
from numpy.lib.stride_tricks import as_strided

from engine.initializers import init_scale
from engine.layers import Layer
from engine.norm import column_sums

PADDINGS = ("same", "valid")
BLOCK_BYTES = 1 << 19  # window matrix per block of images: stays in a core's L2 cache (2 MB here)


def conv_output_size(size: int, kernel: int, stride: int, padding: str) -> int:
    """Output height (or width): "same" is ceil(size / stride) like TensorFlow, "valid" keeps whole windows."""
    if padding == "same":
        return -(-size // stride)
    if padding == "valid":
        if size < kernel:
            raise ValueError(f"input size {size} is smaller than the kernel {kernel}")
        return (size - kernel) // stride + 1
    raise ValueError(f"unknown padding {padding!r}; choose one of {list(PADDINGS)}")


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's split of the "same" padding: the odd pixel goes to the high side."""
    total = max((conv_output_size(size, kernel, stride, "same") - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def windows(x: np.ndarray, kernel: int, stride: int, out_h: int, out_w: int) -> np.ndarray:
    """Read-only (N, OH, OW, K, K, C) view of every kernel window of an NHWC array; copies nothing."""
    n, _, _, c = x.shape
    sn, sh, sw, sc = x.strides
    shape = (n, out_h, out_w, kernel, kernel, c)
    return as_strided(x, shape, (sn, sh * stride, sw * stride, sh, sw, sc), writeable=False)


class _Geometry(NamedTuple):
    """Sizes of one call, worked out once: input, output, low padding, padded input, images per block."""

    n: int
    h: int
    w: int
    c: int
    oh: int
    ow: int
    top: int
    left: int
    hp: int
    wp: int
    hq: int  # planar path: rows and columns of each of the stride x stride phase planes of the padded input
    wq: int
    block: int


_Col2imPlan = tuple[list[tuple[int, slice, slice, slice, slice, bool]], bool]


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
        self._kept: dict[str, np.ndarray] = {}  # arrays reused between training calls, by name
        self._work: dict[str, np.ndarray] = {}  # _kept in training; a fresh dict per inference call
        self._cached: dict[tuple[object, ...], object] = {}  # per geometry: views of _kept, col2im plans
        self._x: np.ndarray | None = None

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

    def _geometry(self, x: np.ndarray) -> _Geometry:
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
        return _Geometry(n, h, w, c, oh, ow, top, left, hp, wp, hq, wq, block)

    @staticmethod
    def _array(work: dict[str, np.ndarray], name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """A block-sized work array, zeroed when created: every block rewrites the same region of it, so zero
        borders stay zero. A last, smaller block uses a prefix."""
        kept = work.get(name)
        if kept is None or kept.shape != shape or kept.dtype != dtype:
            kept = work[name] = np.zeros(shape, dtype)
        return kept

    def _window_matrix(
        self, x: np.ndarray, g: _Geometry, work: dict[str, np.ndarray]
    ) -> Callable[[int, int], np.ndarray]:
        """fill(lo, hi) for images lo:hi of x; the views behind it are made once per geometry in training."""
        if work is not self._kept:
            make = self._window_matrix_views(g, work, x.dtype)
        else:
            key = ("window", g, x.dtype)
            make = self._cached.get(key)  # type: ignore[assignment]
            if make is None:
                make = self._cached[key] = self._window_matrix_views(g, work, x.dtype)
        return lambda lo, hi: make(x, lo, hi)

    def _window_matrix_views(
        self, g: _Geometry, work: dict[str, np.ndarray], dtype: np.dtype
    ) -> Callable[[np.ndarray, int, int], np.ndarray]:
        """fill(x, lo, hi) writes the window matrix of images lo:hi into a kept array and returns it:
        (B*OH*OW, K*K*C), or on the planar path (K*K + 1, B*Hq*Wq): row (i, j) the padded images shifted by i
        rows and j columns (per phase plane when strided), and a last row of ones. The strided views are built
        once per call, not per block."""
        k, s = self.kernel, self.stride
        if self._planar(g.c):
            # Phase plane (a, b) of the padded images holds pixels (s*y + a, s*x + b); kernel offset (i, j) of
            # output (y, x) reads pixel (s*y + i, s*x + j) = plane (i % s, j % s) at (y + i//s, x + j//s). Each
            # plane's images lie at the start of one line (its tail keeps the last shifts in bounds), so row
            # (i, j) is a contiguous slice of a line. Outputs off the crop read past their image (stale or tail
            # values): forward drops them, backward gives them zero gradient.
            q_max = g.block * g.hq * g.wq
            lines = self._array(work, "line", (s, s, q_max + (k - 1) // s * (g.wq + 1)), dtype)
            step = lines.strides[2]
            copies = []  # (destination in the planar image, source rows and columns of x) per phase plane
            shifts = []  # (rows of the window matrix, strided view of a line) per phase plane
            for a in range(s):
                y0 = (a - g.top) % s  # first input row in plane row-phase a, and its plane row
                rows = slice((y0 + g.top) // s, (y0 + g.top) // s + len(range(y0, g.h, s)))
                for b in range(s):
                    x0 = (b - g.left) % s
                    cols_ = slice((x0 + g.left) // s, (x0 + g.left) // s + len(range(x0, g.w, s)))
                    plane = lines[a, b, :q_max].reshape(g.block, g.hq, g.wq)
                    copies.append((plane[:, rows, cols_], slice(y0, None, s), slice(x0, None, s)))
                    shape = (len(range(a, k, s)), len(range(b, k, s)), q_max)
                    view = as_strided(lines[a, b], shape, (g.wq * step, step, step), writeable=False)
                    shifts.append(((slice(a, None, s), slice(b, None, s)), view))
            with_ones = self._array(work, "cols", (k * k + 1, q_max), dtype)
            if with_ones[-1, 0] != 1:  # a row of ones: the bias and its gradient ride in the matrix products
                with_ones[-1] = 1
            planar = with_ones[:-1].reshape(k, k, q_max)

            def fill_planar(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
                q = (hi - lo) * g.hq * g.wq
                for dest, ys, xs in copies:
                    dest[: hi - lo] = x[lo:hi, ys, xs, 0]
                for (ri, rj), view in shifts:
                    np.copyto(planar[ri, rj, :q], view[:, :, :q])
                return with_ones[:, :q]

            return fill_planar

        padded = (g.hp, g.wp) != (g.h, g.w)
        grid = self._array(work, "grid", (g.block, g.hp, g.wp, g.c), dtype) if padded else None
        interior = grid[:, g.top : g.top + g.h, g.left : g.left + g.w] if grid is not None else None
        source = windows(grid, k, self.stride, g.oh, g.ow) if grid is not None else None
        cols = self._array(work, "cols", (g.block, g.oh, g.ow, k, k, g.c), dtype)

        def fill(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
            b = hi - lo
            if interior is not None and source is not None:
                interior[:b] = x[lo:hi]
                np.copyto(cols[:b], source[:b])
            else:
                np.copyto(cols[:b], windows(x[lo:hi], k, self.stride, g.oh, g.ow))
            return cols[:b].reshape(b * g.oh * g.ow, -1)

        return fill

    def _dx_window_matrix(
        self, g: _Geometry, f: int, work: dict[str, np.ndarray], dtype: np.dtype
    ) -> Callable[[np.ndarray], np.ndarray]:
        """dX[y] = sum_i G[y + i] * W[K-1-i]: a stride-1 correlation of the flipped kernel with G, the output
        gradient spread every `stride` pixels on a zero grid, shifted by K-1 minus the low padding.
        fill(grad block) returns G's window matrix, (B*H*W, K*K*F)."""
        k, s = self.kernel, self.stride
        grid = self._array(work, "dx_grid", (g.block, g.h + k - 1, g.w + k - 1, f), dtype)
        y0, x0 = k - 1 - g.top, k - 1 - g.left
        spread = grid[:, y0 : y0 + (g.oh - 1) * s + 1 : s, x0 : x0 + (g.ow - 1) * s + 1 : s]
        source = windows(grid, k, 1, g.h, g.w)
        cols = self._array(work, "dx_cols", (g.block, g.h, g.w, k, k, f), dtype)

        def fill(grad: np.ndarray) -> np.ndarray:
            b = len(grad)
            spread[:b] = grad
            np.copyto(cols[:b], source[:b])
            return cols[:b].reshape(b * g.h * g.w, -1)

        return fill

    def _col2im_plan(self, g: _Geometry) -> _Col2imPlan:
        """Where each window offset's gradient lands in dX, clipped to the unpadded input: (offset, dX rows,
        dX columns, output rows, output columns, whether it is the first to touch that region, so it can be
        written instead of added). Also whether dX must be zeroed first: some pixel is under no window, or an
        offset that adds also reaches pixels nothing wrote before it."""
        k, s = self.kernel, self.stride
        touched = np.zeros((g.h, g.w), bool)
        plan = []
        zero = False
        for i in range(k):
            oy0, oy1 = max(0, -(-(g.top - i) // s)), min(g.oh, (g.h - 1 + g.top - i) // s + 1)
            for j in range(k):
                ox0, ox1 = max(0, -(-(g.left - j) // s)), min(g.ow, (g.w - 1 + g.left - j) // s + 1)
                if oy0 >= oy1 or ox0 >= ox1:
                    continue
                y0, x0 = s * oy0 + i - g.top, s * ox0 + j - g.left
                ys, xs = slice(y0, y0 + s * (oy1 - oy0 - 1) + 1, s), slice(x0, x0 + s * (ox1 - ox0 - 1) + 1, s)
                first = not touched[ys, xs].any()
                zero = zero or not (first or touched[ys, xs].all())
                touched[ys, xs] = True
                plan.append((i * k + j, ys, xs, slice(oy0, oy1), slice(ox0, ox1), first))
        return plan, zero or not touched.all()

    def _col2im_dx(
        self, g: _Geometry, f: int, work: dict[str, np.ndarray], dtype: np.dtype
    ) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        """fill(grad block, dx block): the window matrix's gradient G W^T, (B*OH*OW, K*K*C), put back onto dX
        window offset by window offset (K*K whole-block strided views, clipped to the unpadded input). With a
        stride of 2 the offsets of each row/column parity cover their pixels of dX, so the first offset of each
        parity writes and the others add: no zeroing, no padded grid to crop."""
        k, c = self.kernel, g.c
        weights_t = self.params["W"].reshape(-1, f).T  # (F, K*K*C)
        dcols = self._array(work, "dx_cols", (g.block * g.oh * g.ow, k * k * c), dtype)
        if ("col2im", g) not in self._cached:
            self._cached["col2im", g] = self._col2im_plan(g)
        plan, gaps = cast(_Col2imPlan, self._cached["col2im", g])

        def fill(grad: np.ndarray, dx: np.ndarray) -> np.ndarray:
            b = len(grad)
            rows = np.matmul(grad.reshape(-1, f), weights_t, out=dcols[: b * g.oh * g.ow])
            parts = rows.reshape(b, g.oh, g.ow, k * k, c)
            if gaps:
                dx[...] = 0
            for t, ys, xs, oys, oxs, first in plan:
                target, part = dx[:, ys, xs], parts[:, oys, oxs, t]
                if first and not gaps:
                    np.copyto(target, part)
                else:
                    np.add(target, part, out=target)
            return dx

        return fill

    # ---- forward and backward ------------------------------------------------------------------------

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        if x.ndim != 4 or x.shape[3] != self.in_channels:
            raise ValueError(f"expected (N, H, W, {self.in_channels}) input, got {x.shape}")
        work = self._kept if training else {}  # local: concurrent inference calls must not share it
        self._x, self._work = x, work
        g, f = self._geometry(x), self.filters
        weights, bias = self.params["W"].reshape(-1, f), self.params["b"]
        out = np.empty((g.n, g.oh, g.ow, f), x.dtype)
        window_matrix = self._window_matrix(x, g, work)
        planar = self._planar(g.c)
        if planar:  # the window matrix's row of ones meets the bias
            weights = np.concatenate([weights, bias[None]])
        for lo in range(0, g.n, g.block):
            hi = min(lo + g.block, g.n)
            cols = window_matrix(lo, hi)
            if planar:  # outputs on the whole padded grid; crop them, applying the ReLU on the way
                grid_out = self._array(work, "grid_out", (g.block * g.hq * g.wq, f), x.dtype)[: cols.shape[1]]
                np.matmul(cols.T, weights, out=grid_out)
                crop = grid_out.reshape(-1, g.hq, g.wq, f)[:, : g.oh, : g.ow]
                if self.relu:
                    np.maximum(crop, 0, out=out[lo:hi])
                else:
                    out[lo:hi] = crop
            else:
                np.matmul(cols, weights, out=out[lo:hi].reshape(-1, f))
        if not planar:
            out += bias
            if self.relu:  # in place: out is this call's own array
                np.maximum(out, 0, out=out)
        self._out = out  # for backward, which also follows inference (engine/explain.py)
        return out

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        assert self._x is not None, "backward before forward"
        x, work, f, k = self._x, self._work, self.filters, self.kernel
        g = self._geometry(x)
        planar = self._planar(g.c)
        slope = self.relu and not self.slope_applied_downstream
        out = self._out if slope else None  # the fused ReLU's slope: 1 where its output is positive
        assert out is not None or not slope, "backward before a training forward"
        if out is not None and not planar:
            grad_out = np.multiply(grad_out, out > 0)
        if not planar:  # on the planar path the bias gradient comes with dW, from the row of ones
            self.grads["b"][...] = column_sums(grad_out.reshape(-1, f))
        dw = self.grads["W"].reshape(-1, f)
        dw[...] = 0
        if planar:
            self.grads["b"][...] = 0
            dw = np.concatenate([dw, self.grads["b"][None]])  # accumulated here, copied back at the end
        part = self._array(work, "dw_part", dw.shape, x.dtype)
        window_matrix = self._window_matrix(x, g, work)  # recomputed per block: cheaper than keeping it in memory
        if self._planar(g.c):  # the planar windows cover the whole padded grid: zero gradient outside the crop
            grad_grid = self._array(work, "grad_grid", (g.block, g.hq, g.wq, f), x.dtype)
        if not self.needs_input_grad:
            dx = np.zeros((g.n, g.h, g.w, 0), x.dtype)
        else:
            dx = np.empty(x.shape, x.dtype)
            if self._col2im():
                col2im = self._col2im_dx(g, f, work, x.dtype)
            else:
                dx_window_matrix = self._dx_window_matrix(g, f, work, x.dtype)
                flipped = self.params["W"][::-1, ::-1].transpose(0, 1, 3, 2).reshape(k * k * f, g.c)  # (K*K*F, C)
        for lo in range(0, g.n, g.block):
            hi = min(lo + g.block, g.n)
            cols, grad = window_matrix(lo, hi), grad_out[lo:hi]
            if planar:
                if out is not None:
                    np.multiply(grad, out[lo:hi] > 0, out=grad_grid[: hi - lo, : g.oh, : g.ow])
                else:
                    grad_grid[: hi - lo, : g.oh, : g.ow] = grad
                np.matmul(cols, grad_grid[: hi - lo].reshape(-1, f), out=part)
                grad = grad_grid[: hi - lo, : g.oh, : g.ow]  # with the slope applied, for dX
            else:
                np.matmul(cols.T, grad.reshape(-1, f), out=part)
            dw += part
            if self.needs_input_grad and self._col2im():
                col2im(grad, dx[lo:hi])
            elif self.needs_input_grad:
                np.matmul(dx_window_matrix(grad), flipped, out=dx[lo:hi].reshape(-1, g.c))
        if planar:
            self.grads["W"].reshape(-1, f)[...] = dw[:-1]
            self.grads["b"][...] = dw[-1]
        return dx
