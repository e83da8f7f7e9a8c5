"""Where a training epoch's time goes, layer by layer: every layer's forward and backward, Adam's step and the
test-set evaluation are timed by wrapping those calls on the live objects during real Trainer epochs (the
benchmark's settings, events off). For a network with convolutions this is the breakdown profile_engine.py
gives for dense ones. The evaluation's own forward calls are counted in the layer rows too.

usage: PYTHONPATH=. python benchmarks/profile_layers.py [--net cnn|mlp|default] [--epochs 2] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from bench_speed import NETS, engine_spec

from engine.datasets.mnist import load_mnist, mnist_arrays
from engine.model import Model
from engine.parallel import set_threads, shards
from engine.trainer import TrainConfig, Trainer


def timed(totals: dict[str, float], key: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[key] += time.perf_counter() - started

    return call


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--net", choices=list(NETS), default="cnn")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs, after one warm-up epoch")
    parser.add_argument("--threads", type=int, help="threads for the engine's shards (default: up to 2)")
    args = parser.parse_args()
    if args.threads is not None:
        set_threads(args.threads)
    data = mnist_arrays(load_mnist())
    model = Model.build(engine_spec(args.net), seed=0)
    totals: dict[str, float] = defaultdict(float)
    names = []
    for i, layer in enumerate(model.layers):
        name = f"{i} {layer.kind}"
        names.append(name)
        layer.forward = timed(totals, f"{name} forward", layer.forward)  # type: ignore[method-assign]
        layer.backward = timed(totals, f"{name} backward", layer.backward)  # type: ignore[method-assign]
    model.evaluate = timed(totals, "evaluation (test set)", model.evaluate)  # type: ignore[method-assign]
    runs: list[dict[str, float]] = []
    for epoch in range(args.epochs + 1):
        totals.clear()
        config = TrainConfig(epochs=1, batch_size=128, seed=epoch, histogram_bins=0, progress_every=float("inf"))
        trainer = Trainer(model, config, data)
        trainer.optimizer.step = timed(totals, "optimizer (Adam)", trainer.optimizer.step)  # type: ignore[method-assign]
        started = time.perf_counter()
        trainer.run()
        if epoch:  # the first is a warm-up
            runs.append({**totals, "total (wall)": time.perf_counter() - started})
    rows = [f"{n} {part}" for n in names for part in ("forward", "backward")]
    rows += ["optimizer (Adam)", "evaluation (test set)", "total (wall)"]
    print(f"{args.net}, batch 128, float32, Adam; engine shards on {shards().threads} thread(s)")
    print(f"median ms per epoch over {args.epochs} epochs")
    for row in rows:
        value = statistics.median(r.get(row, 0.0) for r in runs) * 1e3
        if value >= 0.5 or row == "total (wall)":
            print(f"  {row:<28} {value:8.1f}")


if __name__ == "__main__":
    main()
