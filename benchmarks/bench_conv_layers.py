"""Speed of the convolution layers on the small MNIST CNN, batch 128, float32:

    conv 8@5x5 same + relu -> maxpool 2 -> conv 16@5x5 same + relu -> maxpool 2 -> flatten -> dense 10

(each ReLU fused into its conv, as Model.build does)

Prints milliseconds per batch for each layer's forward and backward (median over the iterations) and, next to
each, the "sgemm floor": the median time of the same matrix products (same shapes and transposes, per block of
images as Conv2D runs them) timed alone, interleaved with the network so background load hits both alike; and
the floor of one sgemm per product over the whole batch. Inputs are random (the speed does not depend
on the values); the loss gradient is softmax cross-entropy's (p - y) / N, not timed. An Adam step is timed as
its own row, so "total + adam" compares with a framework's full training step.

usage: python benchmarks/bench_conv_layers.py [--iters 200] [--batch 128] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_info

from engine.conv import Conv2D
from engine.layers import Dense, Flatten, Layer
from engine.optimizers import Adam
from engine.parallel import set_threads, shards, single_blas
from engine.pool import MaxPool2D

Shapes = list[tuple[tuple[int, int], tuple[int, int], bool]]  # (a shape, b shape, a is a transposed view)


def network(rng: np.random.Generator) -> list[tuple[str, Layer]]:
    """As Model.build makes it: each ReLU fused into its conv, its slope applied by the max pool after it."""
    conv1 = Conv2D(1, 8, 5, rng=rng, needs_input_grad=False, activation="relu")
    conv2 = Conv2D(8, 16, 5, rng=rng, activation="relu")
    pool1, pool2 = MaxPool2D(2), MaxPool2D(2)
    for conv, pool in ((conv1, pool1), (conv2, pool2)):
        conv.slope_applied_downstream = pool.relu_input = True
    return [
        ("conv1+relu", conv1),
        ("maxpool1", pool1),
        ("conv2+relu", conv2),
        ("maxpool2", pool2),
        ("flatten", Flatten()),
        ("dense 10", Dense(7 * 7 * 16, 10, rng=rng)),
    ]


def gemm_shapes(layer: Layer, x_shape: tuple[int, ...], whole_batch: bool = False) -> tuple[Shapes, Shapes]:
    """The (forward, backward) matrix products the layer runs on an input of this shape: one set per block of
    images, or with whole_batch one product each for the whole batch (the textbook im2col floor)."""
    if isinstance(layer, Dense):
        n, i, o = x_shape[0], layer.params["W"].shape[0], layer.params["W"].shape[1]
        backward = [((n, i), (n, o), True)] + ([((n, o), (o, i), False)] if layer.needs_input_grad else [])
        return [((n, i), (i, o), False)], backward
    if not isinstance(layer, Conv2D):
        return [], []
    g = layer._geometry(np.empty(x_shape, np.float32))
    k, f = layer.kernel, layer.filters
    blocks = [g.n] if whole_batch else [min(g.block, g.n - lo) for lo in range(0, g.n, g.block)]
    forward: Shapes = []
    backward: Shapes = []
    for b in blocks:
        if g.c == 1 and not whole_batch:  # planar path: products over the padded grid, a row of ones for the bias
            q = b * g.hq * g.wq
            forward.append(((k * k + 1, q), (k * k + 1, f), True))
            backward.append(((k * k + 1, q), (q, f), False))
        else:
            m = b * g.oh * g.ow
            forward.append(((m, k * k * g.c), (k * k * g.c, f), False))
            backward.append(((m, k * k * g.c), (m, f), True))
        if layer.needs_input_grad and layer.stride > 1:  # col2im
            backward.append(((b * g.oh * g.ow, f), (f, k * k * g.c), False))
        elif layer.needs_input_grad:
            backward.append(((b * g.h * g.w, k * k * f), (k * k * f, g.c), False))
    return forward, backward


def gemm_runner(shapes: Shapes, rng: np.random.Generator) -> Callable[[], None]:
    """Times a @ b into a preallocated output, as the layers do. Products of the same shape share their
    operands, as a layer's blocks share its work arrays (so the operands stay in cache for both)."""
    operands: dict[tuple[tuple[int, int], tuple[int, int], bool], tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for a_shape, b_shape, transposed in shapes:
        if (a_shape, b_shape, transposed) not in operands:
            a, b = rng.random(a_shape, np.float32), rng.random(b_shape, np.float32)
            a = a.T if transposed else a
            operands[a_shape, b_shape, transposed] = a, b, np.empty((a.shape[0], b.shape[1]), np.float32)
    triples = [operands[key] for key in shapes]

    def run() -> None:
        for a, b, out in triples:
            np.matmul(a, b, out=out)

    return run


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for the engine's shards (engine/parallel.py; BLAS then runs on one), default: up to 2",
    )
    args = parser.parse_args()
    if args.threads is not None:
        set_threads(args.threads)
    print(f"engine shards on {shards().threads} thread(s)")
    with single_blas():  # as Trainer.run does for a network with convolutions
        bench(args.iters, args.batch)


def bench(iters: int, batch: int) -> None:
    for pool in threadpool_info():
        print(f"BLAS: {pool['internal_api']} {pool['version']} ({pool['architecture']}), {pool['num_threads']} threads")
    rng = np.random.default_rng(0)
    layers = network(rng)
    x = rng.random((batch, 28, 28, 1), np.float32)
    labels = rng.integers(0, 10, batch)
    adam = Adam([(p, layer.grads[k]) for _, layer in layers for k, p in layer.params.items()], lr=1e-3)

    floors: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {}
    whole_batch: list[Callable[[], None]] = []
    shape = x.shape
    for name, layer in layers:
        fwd, bwd = gemm_shapes(layer, shape)
        floors[name] = gemm_runner(fwd, rng), gemm_runner(bwd, rng)
        whole_batch.append(gemm_runner([p for d in gemm_shapes(layer, shape, whole_batch=True) for p in d], rng))
        shape = layer.forward(np.zeros(shape, np.float32), True).shape

    ms: dict[str, list[float]] = defaultdict(list)
    for it in range(iters + 5):  # the first 5 warm up (allocations, BLAS threads)
        row: dict[str, float] = {}
        h = x
        for name, layer in layers:
            start = time.perf_counter()
            h = layer.forward(h, True)
            row[f"{name} fwd"] = (time.perf_counter() - start) * 1e3
        p = np.exp(h - h.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(labels)), labels] -= 1
        grad = p / np.float32(len(labels))
        for name, layer in reversed(layers):
            start = time.perf_counter()
            grad = layer.backward(grad)
            row[f"{name} bwd"] = (time.perf_counter() - start) * 1e3
        row["adam"] = timed(adam.step)
        for name, (fwd_floor, bwd_floor) in floors.items():
            row[f"{name} fwd floor"], row[f"{name} bwd floor"] = timed(fwd_floor), timed(bwd_floor)
        row["whole-batch sgemm"] = sum(timed(products) for products in whole_batch)
        if it >= 5:
            for key, value in row.items():
                ms[key].append(value)
            ms["total"].append(sum(v for k, v in row.items() if k.endswith(("fwd", "bwd"))))
            ms["floor"].append(sum(v for k, v in row.items() if k.endswith("floor")))

    med = {key: statistics.median(values) for key, values in ms.items()}
    print(f"batch {batch}, {iters} iterations, load average {os.getloadavg()[0]:.2f}; ms per batch (median)")
    print(f"{'layer':<14}{'fwd':>8}{'floor':>8}{'bwd':>8}{'floor':>8}")
    for name, _ in layers:
        cells = [med[f"{name} {d}"] for d in ("fwd", "fwd floor", "bwd", "bwd floor")]
        print(f"{name:<14}" + "".join(f"{v:8.2f}" for v in cells))
    print(f"total fwd+bwd  {med['total']:.2f} ms (best {min(ms['total']):.2f}); sgemm floor {med['floor']:.2f} ms")
    print(f"the same products as one sgemm each for the whole batch: {med['whole-batch sgemm']:.2f} ms")
    print(f"adam step      {med['adam']:.2f} ms; total + adam {med['total'] + med['adam']:.2f} ms")


if __name__ == "__main__":
    main()
