"""Where an engine epoch's time goes, per epoch: every layer's forward/backward, the loss, the optimizer, the
evaluation and the events are timed by wrapping those calls on the live objects (exclusive time: a call's
children are not counted twice); shuffling + batch gathering is replayed apart with the epoch's own
permutation; what is left is the training loop's own bookkeeping.

Dense (and conv) forward is its GEMM plus the bias add, backward its two GEMMs plus the bias-gradient sum;
the pure GEMM time of the same shapes is printed too (the sgemm floor of bench_speed.py, training part).

usage: PYTHONPATH=. python benchmarks/profile_engine.py [--hidden 128] [--epochs 4]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np

import engine.trainer as trainer_module
from engine.datasets.mnist import load_mnist, mnist_arrays
from engine.model import Model, ModelSpec
from engine.spec import DenseSpec
from engine.trainer import BatchProgress, EpochEnd, Event, TrainConfig, Trainer

FORWARD, BACKWARD, ELEMENTWISE = "forward GEMMs (+ bias add)", "backward GEMMs (+ bias sum)", "element-wise"
LOSS, OPTIMIZER, EVALUATION, EVENTS = "loss (softmax-CE)", "optimizer (Adam)", "evaluation (test set)", "events"
GATHER, LOOP = "shuffle + batch gather", "loop bookkeeping (rest)"
ORDER = (FORWARD, BACKWARD, ELEMENTWISE, LOSS, OPTIMIZER, GATHER, LOOP, EVALUATION, EVENTS)
STICKY = (EVALUATION, EVENTS)  # everything called inside these counts as them


class Clock:
    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self.stack: list[list[Any]] = []

    def timed(self, fn: Callable[..., Any], category: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            cat = self.stack[-1][0] if self.stack and self.stack[-1][0] in STICKY else category
            self.stack.append([cat, 0.0])
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.perf_counter() - started
                _, children = self.stack.pop()
                self.totals[cat] += spent - children
                if self.stack:
                    self.stack[-1][1] += spent

        return call

    def wrap(self, obj: Any, name: str, category: str) -> None:
        setattr(obj, name, self.timed(getattr(obj, name), category))


class TimedLoss:
    """The model calls ``self.loss(...)``: a stand-in object that times the call and passes the rest on."""

    def __init__(self, loss: Any, clock: Clock) -> None:
        self._loss, self._call = loss, clock.timed(loss.__call__, LOSS)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loss, name)


def instrument(model: Model, clock: Clock) -> None:
    for layer in model.layers:
        gemm = "W" in layer.params
        clock.wrap(layer, "forward", FORWARD if gemm else ELEMENTWISE)
        clock.wrap(layer, "backward", BACKWARD if gemm else ELEMENTWISE)
    model.loss = TimedLoss(model.loss, clock)  # type: ignore[assignment]
    clock.wrap(model, "evaluate", EVALUATION)


def gather_seconds(data_x: np.ndarray, data_y: np.ndarray, seed: int, batch: int) -> float:
    """The shuffle and the per-batch gathers of one epoch, replayed on their own."""
    started = time.perf_counter()
    order = np.random.default_rng(seed).permutation(data_x.shape[0])
    for b in range(0, data_x.shape[0], batch):
        idx = order[b : b + batch]
        data_x[idx], data_y[idx]
    return time.perf_counter() - started


def one_epoch(spec: ModelSpec, data: trainer_module.Dataset, seed: int) -> dict[str, float]:
    clock = Clock()
    model = Model.build(spec, seed=seed)
    instrument(model, clock)

    def on_event(event: Event) -> None:  # what the server does with every event: encode it
        if isinstance(event, BatchProgress | EpochEnd):
            json.dumps(event.__dict__, default=lambda o: o.__dict__)

    config = TrainConfig(epochs=1, batch_size=128, seed=seed, histogram_bins=30, progress_every=0.2)
    trainer = Trainer(model, config, data, on_event=clock.timed(on_event, EVENTS))
    clock.wrap(trainer.optimizer, "step", OPTIMIZER)
    if hasattr(trainer, "_train_loss"):  # the training loss the trainer hands the model
        trainer._train_loss = TimedLoss(trainer._train_loss, clock)
    clock.wrap(trainer, "_epoch_end", EVALUATION)
    original = trainer_module.layer_histograms
    trainer_module.layer_histograms = clock.timed(original, EVENTS)
    try:
        started = time.perf_counter()
        trainer.run()
        total = time.perf_counter() - started
    finally:
        trainer_module.layer_histograms = original
    times = dict(clock.totals)
    times[GATHER] = gather_seconds(data.x_train, data.y_train, seed, config.batch_size)
    times[LOOP] = total - sum(times.values())
    times["total"] = total
    return times


def gemm_seconds(sizes: list[int], n: int, batch: int) -> tuple[float, float]:
    """(forward, backward) seconds of the training GEMMs alone, same shapes as one epoch."""
    rng = np.random.default_rng(0)
    ws = [rng.random((a, b), np.float32) for a, b in itertools.pairwise(sizes)]
    xs = [rng.random((batch, a), np.float32) for a in sizes]
    fwd = bwd = 0.0
    for _ in range(-(-n // batch)):
        t0 = time.perf_counter()
        for x, w in zip(xs, ws, strict=False):
            x @ w
        t1 = time.perf_counter()
        for i, w in enumerate(ws):
            xs[i].T @ xs[i + 1]
            if i > 0:
                xs[i + 1] @ w.T
        t2 = time.perf_counter()
        fwd, bwd = fwd + t1 - t0, bwd + t2 - t1
    return fwd, bwd


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden", type=int, nargs="+", default=[128])
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    data = mnist_arrays(load_mnist())
    spec = ModelSpec.mlp(hidden=tuple(DenseSpec(h, "relu") for h in args.hidden))
    runs, gemms = [], []
    for epoch in range(args.epochs + 1):
        times = one_epoch(spec, data, seed=epoch)
        if epoch:  # the first is a warm-up
            runs.append(times)
            gemms.append(gemm_seconds([784, *args.hidden, 10], data.x_train.shape[0], 128))
    med = {k: statistics.median(r.get(k, 0.0) for r in runs) for k in (*ORDER, "total")}
    shape = "-".join(str(n) for n in (784, *args.hidden, 10))
    print(f"{shape} relu, softmax-CE, Adam, batch 128, float32; medians of {args.epochs} epochs (ms per epoch)")
    for name in ORDER:
        print(f"  {name:<30} {med[name] * 1e3:7.1f}  {med[name] / med['total'] * 100:5.1f}%")
    print(f"  {'total (wall)':<30} {med['total'] * 1e3:7.1f}")
    fwd, bwd = (statistics.median(g[i] for g in gemms) for i in (0, 1))
    print(f"  pure sgemm of the same training shapes: forward {fwd * 1e3:.1f}, backward {bwd * 1e3:.1f}")


if __name__ == "__main__":
    main()
