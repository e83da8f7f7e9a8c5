"""Engine speed on real MNIST: 784-128-10, ReLU, softmax cross-entropy, Adam, batch 128, float32.

Prints seconds per epoch and ratios measured in the same run (absolute times on shared machines vary):
  * floor:   the engine's epoch against the time this machine's sgemm needs for the same matrix products
             (the exact GEMM shapes of one epoch, forward + backward + test evaluation, timed back to back);
  * pytorch: against PyTorch CPU on the identical setup, when torch is importable (not a dependency:
             `pip install torch==2.13.0`);
  * events:  epoch time with full event reporting (30-bin histograms of every layer, progress events
             encoded to JSON) against reporting turned off.
Epochs of the three contenders are interleaved and the median is reported, so background noise hits all alike.

usage: python benchmarks/bench_engine.py [--epochs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

from engine.datasets.mnist import load_mnist, mnist_arrays
from engine.model import Model, ModelSpec
from engine.spec import DenseSpec
from engine.trainer import BatchProgress, Dataset, EpochEnd, Event, TrainConfig, Trainer

SPEC = ModelSpec.mlp(hidden=(DenseSpec(128, "relu"),))
BATCH = 128


def engine_epoch(data: Dataset, model: Model, seed: int, report: bool) -> tuple[float, float]:
    """One epoch; returns (seconds, test accuracy)."""

    def on_event(event: Event) -> None:
        if report and isinstance(event, BatchProgress | EpochEnd):
            json.dumps(event.__dict__, default=lambda o: o.__dict__)

    config = TrainConfig(
        epochs=1,
        batch_size=BATCH,
        learning_rate=1e-3,
        seed=seed,
        histogram_bins=30 if report else 0,
        progress_every=0.2 if report else float("inf"),
    )
    trainer = Trainer(model, config, data, on_event=on_event)
    started = time.perf_counter()
    trainer.run()
    seconds = time.perf_counter() - started
    _, predicted = model.evaluate(data.x_test, data.y_test)
    return seconds, float(np.mean(predicted == data.y_test))


def sgemm_floor(n_train: int, n_test: int) -> float:
    """Seconds this machine's BLAS needs for exactly the GEMMs of one engine epoch."""
    rng = np.random.default_rng(0)
    f32 = np.float32
    x, w1 = rng.random((BATCH, 784), f32), rng.random((784, 128), f32)
    h, w2 = rng.random((BATCH, 128), f32), rng.random((128, 10), f32)
    g2, g1 = rng.random((BATCH, 10), f32), rng.random((BATCH, 128), f32)
    xt = rng.random((5000, 784), f32)
    ht = rng.random((5000, 128), f32)
    batches = -(-n_train // BATCH)

    def one_epoch() -> None:
        for _ in range(batches):
            x @ w1  # forward, layer 1
            h @ w2  # forward, layer 2
            x.T @ g1  # dW1 (the input gradient of layer 1 is never needed)
            h.T @ g2  # dW2
            g2 @ w2.T  # gradient into the hidden layer
        for _ in range(n_test // 5000):
            xt @ w1
            ht @ w2

    one_epoch()  # warm up
    runs = []
    for _ in range(3):
        started = time.perf_counter()
        one_epoch()
        runs.append(time.perf_counter() - started)
    return min(runs)


def torch_epoch_factory(data: Dataset):  # type: ignore[no-untyped-def]
    try:
        import torch
    except ImportError:
        return None
    torch.manual_seed(0)
    torch.set_num_threads(max(1, len(__import__("os").sched_getaffinity(0))))
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    xt, yt = torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)
    net = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def epoch() -> tuple[float, float]:
        started = time.perf_counter()
        order = torch.randperm(x.shape[0])
        for i in range(0, x.shape[0], BATCH):
            idx = order[i : i + BATCH]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(x[idx]), y[idx])
            loss.backward()
            opt.step()
        with torch.no_grad():  # the engine evaluates the test set every epoch too
            acc = float((net(xt).argmax(1) == yt).float().mean())
            loss_fn(net(xt), yt)
        return time.perf_counter() - started, acc

    return epoch, torch.__version__


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    data = mnist_arrays(load_mnist())
    model_on, model_off = Model.build(SPEC, seed=0), Model.build(SPEC, seed=0)
    torch_run = torch_epoch_factory(data)
    on, off, torch_times, floors = [], [], [], []
    acc_on = acc_torch = 0.0
    for epoch in range(args.epochs):
        # alternate which goes first, so warm caches or clock boosts favour neither
        if epoch % 2 == 0:
            t, acc_on = engine_epoch(data, model_on, epoch, report=True)
            off.append(engine_epoch(data, model_off, epoch, report=False)[0])
        else:
            off.append(engine_epoch(data, model_off, epoch, report=False)[0])
            t, acc_on = engine_epoch(data, model_on, epoch, report=True)
        on.append(t)
        if torch_run is not None:
            t, acc_torch = torch_run[0]()
            torch_times.append(t)
        floors.append(sgemm_floor(data.x_train.shape[0], data.x_test.shape[0]))
    med = statistics.median
    print(f"engine 784-128-10 relu/softmax-CE/adam, batch {BATCH}, float32, {args.epochs} epochs, medians:")
    print(f"  engine, events on       {med(on):.3f} s/epoch   (test accuracy after the run {acc_on:.4f})")
    print(f"  engine, events off      {med(off):.3f} s/epoch")
    print(f"  sgemm floor             {med(floors):.3f} s/epoch")
    print(f"  ratio engine / floor    {med(on) / med(floors):.2f}x   (goal <= 2.0x)")
    print(f"  event overhead          {(med(on) / med(off) - 1) * 100:+.1f}%   (goal <= 5%)")
    if torch_run is not None:
        print(f"  pytorch {torch_run[1]:<15} {med(torch_times):.3f} s/epoch   (test accuracy {acc_torch:.4f})")
        print(f"  ratio engine / pytorch  {med(on) / med(torch_times):.2f}x   (goal <= 0.8x)")
    else:
        print("  pytorch                 not installed (pip install torch==2.13.0 to compare)")


if __name__ == "__main__":
    main()
