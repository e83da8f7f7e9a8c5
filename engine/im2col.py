"""Window geometry and the window-matrix builders of the NHWC convolution (engine/conv.py).

Output sizes and "same" padding like TensorFlow; windows() views every kernel window of an NHWC array; Geometry
holds the sizes of one call. The builders return fill functions over block-sized work arrays (work_array):
forward's window matrix (B*OH*OW, K*K*C), dX's window matrix for the full convolution, and col2im for strided
layers. They build their strided views once per call, not per block.

Single-channel stride-1 input (the first layer on MNIST) takes a faster path for the window matrix: on the
padded images flattened to one line, the pixel under kernel offset (i, j) of output q is q + i*Wp + j, so the
K*K rows of the transposed window matrix are contiguous slices (memcpy-like copies instead of 5-float runs; ~4x
faster), at the price of computing outputs on the whole padded grid and cropping them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

PADDINGS = ("same", "valid")


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


class Geometry(NamedTuple):
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


Col2imPlan = tuple[list[tuple[int, slice, slice, slice, slice, bool]], bool]


def work_array(work: dict[str, np.ndarray], name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A block-sized work array, zeroed when created: every block rewrites the same region of it, so zero
    borders stay zero. A last, smaller block uses a prefix."""
    kept = work.get(name)
    if kept is None or kept.shape != shape or kept.dtype != dtype:
        kept = work[name] = np.zeros(shape, dtype)
    return kept


def window_matrix_views(
    g: Geometry, k: int, s: int, planar: bool, work: dict[str, np.ndarray], dtype: np.dtype
) -> Callable[[np.ndarray, int, int], np.ndarray]:
    """fill(x, lo, hi) writes the window matrix of images lo:hi into a kept array and returns it:
    (B*OH*OW, K*K*C), or on the planar path (K*K + 1, B*Hq*Wq): row (i, j) the padded images shifted by i
    rows and j columns (per phase plane when strided), and a last row of ones. The strided views are built
    once per call, not per block."""
    if planar:
        # Phase plane (a, b) of the padded images holds pixels (s*y + a, s*x + b); kernel offset (i, j) of
        # output (y, x) reads pixel (s*y + i, s*x + j) = plane (i % s, j % s) at (y + i//s, x + j//s). Each
        # plane's images lie at the start of one line (its tail keeps the last shifts in bounds), so row
        # (i, j) is a contiguous slice of a line. Outputs off the crop read past their image (stale or tail
        # values): forward drops them, backward gives them zero gradient.
        q_max = g.block * g.hq * g.wq
        lines = work_array(work, "line", (s, s, q_max + (k - 1) // s * (g.wq + 1)), dtype)
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
        # The matrix of a block of q outputs is the first (K*K + 1) * q floats of one buffer, contiguous whatever
        # the block's size (np.dot copies a strided slice before its product).
        buffer = work_array(work, "cols", ((k * k + 1) * q_max,), dtype)

        def fill_planar(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
            q = (hi - lo) * g.hq * g.wq
            matrix = buffer[: (k * k + 1) * q].reshape(k * k + 1, q)
            for dest, ys, xs in copies:
                dest[: hi - lo] = x[lo:hi, ys, xs, 0]
            planar_rows = matrix[:-1].reshape(k, k, q)
            for (ri, rj), view in shifts:
                np.copyto(planar_rows[ri, rj], view[:, :, :q])
            matrix[-1] = 1  # a row of ones: the bias and its gradient ride in the matrix products
            return matrix

        return fill_planar

    padded = (g.hp, g.wp) != (g.h, g.w)
    grid = work_array(work, "grid", (g.block, g.hp, g.wp, g.c), dtype) if padded else None
    interior = grid[:, g.top : g.top + g.h, g.left : g.left + g.w] if grid is not None else None
    source = windows(grid, k, s, g.oh, g.ow) if grid is not None else None
    cols = work_array(work, "cols", (g.block, g.oh, g.ow, k, k, g.c), dtype)

    def fill(x: np.ndarray, lo: int, hi: int) -> np.ndarray:
        b = hi - lo
        if interior is not None and source is not None:
            interior[:b] = x[lo:hi]
            np.copyto(cols[:b], source[:b])
        else:
            np.copyto(cols[:b], windows(x[lo:hi], k, s, g.oh, g.ow))
        return cols[:b].reshape(b * g.oh * g.ow, -1)

    return fill


def dx_window_matrix(
    g: Geometry, k: int, s: int, f: int, work: dict[str, np.ndarray], dtype: np.dtype
) -> Callable[[np.ndarray], np.ndarray]:
    """dX[y] = sum_i G[y + i] * W[K-1-i]: a stride-1 correlation of the flipped kernel with G, the output
    gradient spread every `stride` pixels on a zero grid, shifted by K-1 minus the low padding.
    fill(grad block) returns G's window matrix, (B*H*W, K*K*F)."""
    grid = work_array(work, "dx_grid", (g.block, g.h + k - 1, g.w + k - 1, f), dtype)
    y0, x0 = k - 1 - g.top, k - 1 - g.left
    spread = grid[:, y0 : y0 + (g.oh - 1) * s + 1 : s, x0 : x0 + (g.ow - 1) * s + 1 : s]
    source = windows(grid, k, 1, g.h, g.w)
    cols = work_array(work, "dx_cols", (g.block, g.h, g.w, k, k, f), dtype)

    def fill(grad: np.ndarray) -> np.ndarray:
        b = len(grad)
        spread[:b] = grad
        np.copyto(cols[:b], source[:b])
        return cols[:b].reshape(b * g.h * g.w, -1)

    return fill


def col2im_plan(g: Geometry, k: int, s: int) -> Col2imPlan:
    """Where each window offset's gradient lands in dX, clipped to the unpadded input: (offset, dX rows,
    dX columns, output rows, output columns, whether it is the first to touch that region, so it can be
    written instead of added). Also whether dX must be zeroed first: some pixel is under no window, or an
    offset that adds also reaches pixels nothing wrote before it."""
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


def col2im_dx(
    g: Geometry, weights: np.ndarray, plan: Col2imPlan, work: dict[str, np.ndarray], dtype: np.dtype
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """fill(grad block, dx block): the window matrix's gradient G W^T, (B*OH*OW, K*K*C), put back onto dX
    window offset by window offset (K*K whole-block strided views, clipped to the unpadded input). With a
    stride of 2 the offsets of each row/column parity cover their pixels of dX, so the first offset of each
    parity writes and the others add: no zeroing, no padded grid to crop. weights: (K, K, C, F)."""
    k, c, f = weights.shape[0], g.c, weights.shape[3]
    weights_t = weights.reshape(-1, f).T  # (F, K*K*C)
    dcols = work_array(work, "dx_cols", (g.block * g.oh * g.ow, k * k * c), dtype)
    offsets, gaps = plan

    def fill(grad: np.ndarray, dx: np.ndarray) -> np.ndarray:
        b = len(grad)
        rows = np.dot(grad.reshape(-1, f), weights_t, out=dcols[: b * g.oh * g.ow])
        parts = rows.reshape(b, g.oh, g.ow, k * k, c)
        if gaps:
            dx[...] = 0
        for t, ys, xs, oys, oxs, first in offsets:
            target, part = dx[:, ys, xs], parts[:, oys, oxs, t]
            if first and not gaps:
                np.copyto(target, part)
            else:
                np.add(target, part, out=target)
        return dx

    return fill
