"""Server-side cost of one /api/predict on a model file, without HTTP: the forward pass alone
(Model.probabilities on one 28x28 image), and the forward plus the feature maps the response carries
(server/recorder.py feature_maps: a second pass keeping every layer's output). Image decoding
(server/imaging.py prepare) is timed separately on a drawn-like PNG. Percentiles over --n calls, 1 BLAS thread.

usage: python benchmarks/bench_predict.py MODEL.npz [MODEL.npz ...] [--n 1000]
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import time
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw
from threadpoolctl import threadpool_limits

from engine.model import Model
from server.imaging import prepare
from server.pictures import feature_maps


def percentiles(fn: Callable[[], object], n: int) -> str:
    """Wall-clock p50 / p99 / max, and the p99 of the thread's CPU time (what the call costs when it is not
    waiting for a core: on a loaded machine the wall-clock tail is mostly other processes' time slices)."""
    for _ in range(20):
        fn()
    wall, cpu = [], []
    for _ in range(n):
        start, start_cpu = time.perf_counter(), time.thread_time()
        fn()
        wall.append((time.perf_counter() - start) * 1e3)
        cpu.append((time.thread_time() - start_cpu) * 1e3)
    p50, p99 = np.percentile(wall, [50, 99])
    return f"{p50:6.2f} / {p99:6.2f} / {max(wall):7.2f}   cpu p99 {np.percentile(cpu, 99):6.2f}"


def drawn_png() -> str:
    image = Image.new("LA", (280, 280), (0, 0))
    ImageDraw.Draw(image).line([(140, 40), (140, 240)], fill=(0, 255), width=20)
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def report(label: str, fn: Callable[[], object], n: int) -> None:
    print(f"{label:44} {percentiles(fn, n)}")


def bench_model(path: str, image: np.ndarray, n: int) -> None:
    model = Model.load(path)
    row = image.reshape(1, -1).astype(model.dtype)
    report(f"{path} forward", lambda: model.probabilities(row), n)
    report(f"{path} forward + feature maps", lambda: (model.probabilities(row), feature_maps(model, row)), n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--n", type=int, default=1000)
    args = parser.parse_args()
    png = drawn_png()
    image = prepare(png, None, max_bytes=1 << 20, max_side=2000)
    load = os.getloadavg()[0]
    print(f"load average {load:.2f}; ms per call: wall p50 / p99 / max, and CPU-time p99, over {args.n} calls")
    with threadpool_limits(1, user_api="blas"):
        report("image decoding (280x280 PNG)", lambda: prepare(png, None, max_bytes=1 << 20, max_side=2000), args.n)
        for path in args.models:
            bench_model(path, image, args.n)


if __name__ == "__main__":
    main()
