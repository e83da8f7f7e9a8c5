"""Engine against PyTorch CPU and the sgemm floor, fairly: every contender in its own process (OpenBLAS and
OpenMP worker threads spin after each call and would slow a neighbour in the same process), all alive at once
and run one epoch at a time in turn, the order rotating each round, with a pause between turns so the last
one's spinning threads have gone to sleep; medians over the rounds.

Same work per epoch for all: MNIST, batch 128, float32, Adam at 1e-3, the engine's own data order (the
permutation its Trainer draws from the epoch's seed), the loss and predictions of every batch read back, the
whole test set evaluated (loss and predictions, chunks of 5000). Contenders:
  engine        Trainer with event reporting as the server runs it (30-bin histograms, progress every 0.2 s
                encoded to JSON), and the same with reporting off;
  floor         this machine's sgemm doing exactly the GEMMs of such an epoch (dense networks only);
  torch         torch.optim.Adam with its default (foreach) implementation, and with fused=True.
Networks: a spec (engine/spec.py ModelSpec) each; the CNN needs engine/conv.py (NHWC here, NCHW in torch).

usage: PYTHONPATH=. python benchmarks/bench_speed.py [--nets mlp default cnn] [--rounds 6]
       [--torch-python /work/torchvenv/bin/python]    (torch is never a dependency of the project)
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BATCH, LR, CHUNK = 128, 1e-3, 5000
NETS = {
    "mlp": {"hidden": [128]},
    "default": {"hidden": [256, 128]},
    "cnn": {"conv": [8, 16]},  # conv 8@5x5 same, relu, maxpool 2, conv 16@5x5 same, relu, maxpool 2, dense 10
}
CONTENDERS = ("engine", "engine-quiet", "floor", "torch", "torch-fused")


def engine_spec(net: str):  # type: ignore[no-untyped-def]
    from engine.model import ModelSpec
    from engine.spec import Conv2DSpec, DenseSpec, OutputSpec, PoolSpec

    if "hidden" in NETS[net]:
        return ModelSpec.mlp(hidden=tuple(DenseSpec(h, "relu") for h in NETS[net]["hidden"]))
    layers: list = []
    for filters in NETS[net]["conv"]:
        layers += [Conv2DSpec(filters, 5, 1, "same", "relu"), PoolSpec(2, "maxpool2d")]
    return ModelSpec((28, 28, 1), tuple(layers), OutputSpec(10, "softmax"), "cross_entropy", "he")


def order_for(seed: int, n: int) -> np.ndarray:
    """The permutation the engine's Trainer draws for an epoch run with this seed (engine/trainer.py)."""
    shuffle_seq, _ = np.random.SeedSequence([seed, 1]).spawn(2)
    return np.random.default_rng(shuffle_seq).permutation(n)


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info

        return "; ".join(
            f"{p['internal_api']} {p.get('version')} kernel {p.get('architecture')} threads {p['num_threads']}"
            for p in threadpool_info()
        )
    except ImportError:
        return "threadpoolctl not installed"


# ---- workers: one process each, one epoch per "go" line on stdin --------------------------------------


def engine_worker(net: str, data_dir: Path, events: bool):  # type: ignore[no-untyped-def]
    from engine.model import Model
    from engine.trainer import BatchProgress, Dataset, EpochEnd, Event, TrainConfig, Trainer

    data = Dataset(*(np.load(data_dir / f"{k}.npy") for k in ("xtr", "ytr", "xte", "yte")))
    model = Model.build(engine_spec(net), seed=0)

    accuracy = [float("nan")]

    def on_event(event: Event) -> None:
        if isinstance(event, EpochEnd):
            accuracy[0] = event.test_accuracy  # the trainer's own evaluation: the test set is not run twice
        if events and isinstance(event, BatchProgress | EpochEnd):
            json.dumps(event.__dict__, default=lambda o: o.__dict__)

    def epoch(seed: int) -> float:
        config = TrainConfig(
            epochs=1,
            batch_size=BATCH,
            learning_rate=LR,
            seed=seed,
            histogram_bins=30 if events else 0,
            progress_every=0.2 if events else float("inf"),
        )
        Trainer(model, config, data, on_event=on_event).run()
        return accuracy[0]

    from engine.parallel import shards

    sharding = f"; engine shards on {shards().threads} threads, BLAS on 1 while they run" if model.sharded else ""
    return epoch, blas_info() + sharding


def floor_worker(net: str, data_dir: Path):  # type: ignore[no-untyped-def]
    sizes = [784, *NETS[net]["hidden"], 10]
    rng = np.random.default_rng(0)
    ws = [rng.random((a, b), np.float32) for a, b in itertools.pairwise(sizes)]
    acts = [rng.random((BATCH, a), np.float32) for a in sizes]
    tests = [rng.random((CHUNK, a), np.float32) for a in sizes]
    n_train, n_test = np.load(data_dir / "ytr.npy").shape[0], np.load(data_dir / "yte.npy").shape[0]

    def epoch(seed: int) -> float:
        for _ in range(-(-n_train // BATCH)):
            for x, w in zip(acts, ws, strict=False):
                x @ w  # forward
            for i, w in enumerate(ws):
                acts[i].T @ acts[i + 1]  # weight gradient
                if i > 0:
                    acts[i + 1] @ w.T  # input gradient (never for the first layer)
        for _ in range(-(-n_test // CHUNK)):
            for x, w in zip(tests, ws, strict=False):
                x @ w
        return float("nan")

    return epoch, blas_info()


def torch_worker(net: str, data_dir: Path, fused: bool):  # type: ignore[no-untyped-def]
    import torch

    torch.manual_seed(0)
    cnn = "conv" in NETS[net]
    x, y = (torch.from_numpy(np.load(data_dir / f"{k}.npy")) for k in ("xtr", "ytr"))
    xt, yt = (torch.from_numpy(np.load(data_dir / f"{k}.npy")) for k in ("xte", "yte"))
    nn = torch.nn
    if cnn:
        layers: list = [nn.Unflatten(1, (1, 28, 28))]
        channels = 1
        for filters in NETS[net]["conv"]:
            layers += [nn.Conv2d(channels, filters, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2)]
            channels = filters
        layers += [nn.Flatten(), nn.Linear(channels * 7 * 7, 10)]
    else:
        sizes = [784, *NETS[net]["hidden"]]
        layers = [m for a, b in itertools.pairwise(sizes) for m in (nn.Linear(a, b), nn.ReLU())]
        layers.append(nn.Linear(sizes[-1], 10))
    model = nn.Sequential(*layers)
    opt = (
        torch.optim.Adam(model.parameters(), lr=LR, fused=True)
        if fused
        else torch.optim.Adam(model.parameters(), lr=LR)
    )
    loss_fn = nn.CrossEntropyLoss()
    n = x.shape[0]

    def epoch(seed: int) -> float:
        order = torch.from_numpy(order_for(seed, n))
        predicted = torch.empty(n, dtype=torch.int64)
        loss_sum = 0.0
        for i in range(0, n, BATCH):
            idx = order[i : i + BATCH]
            opt.zero_grad(set_to_none=True)
            logits = model(x[idx])
            loss = loss_fn(logits, y[idx])
            loss.backward()
            opt.step()
            loss_sum += loss.item() * idx.shape[0]  # the engine reads every batch's loss and predictions too
            predicted[i : i + BATCH] = logits.detach().argmax(1)
        with torch.no_grad():  # the engine evaluates the test set every epoch: loss and predictions
            preds = []
            for i in range(0, xt.shape[0], CHUNK):
                out = model(xt[i : i + CHUNK])
                loss_fn(out, yt[i : i + CHUNK]).item()
                preds.append(out.argmax(1))
            acc = float((torch.cat(preds) == yt).float().mean())
        return acc

    info = (
        f"torch {torch.__version__} threads {torch.get_num_threads()} mkl {torch.backends.mkl.is_available()} "
        f"mkldnn {torch.backends.mkldnn.is_available()} capability {torch.backends.cpu.get_cpu_capability()}"
    )
    return epoch, info


def worker(contender: str, net: str, data_dir: Path) -> None:
    if contender.startswith("engine"):
        epoch, info = engine_worker(net, data_dir, events=contender == "engine")
    elif contender == "floor":
        epoch, info = floor_worker(net, data_dir)
    else:
        epoch, info = torch_worker(net, data_dir, fused=contender == "torch-fused")
    print(json.dumps({"ready": info}), flush=True)
    for line in sys.stdin:
        seed = int(line)
        started = time.perf_counter()
        acc = epoch(seed)
        print(json.dumps({"seconds": time.perf_counter() - started, "accuracy": acc}), flush=True)


# ---- the coordinator ------------------------------------------------------------------------------------


def has_conv() -> bool:
    return Path(__file__).resolve().parents[1].joinpath("engine", "conv.py").exists()


def run(nets: list[str], rounds: int, torch_python: str | None, pause: float) -> None:
    from engine.datasets.mnist import load_mnist, mnist_arrays

    data = mnist_arrays(load_mnist())
    tmp = Path(tempfile.mkdtemp(prefix="bench_speed_"))
    for k, a in zip(("xtr", "ytr", "xte", "yte"), (data.x_train, data.y_train, data.x_test, data.y_test), strict=True):
        np.save(tmp / f"{k}.npy", a)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    print(
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start; "
        f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}"
    )
    results: dict[str, dict[str, list[float]]] = {}
    for net in nets:
        if net == "cnn" and not has_conv():
            print("cnn: engine/conv.py is not here yet; skipped")
            continue
        names = [c for c in CONTENDERS if not (c == "floor" and net == "cnn")]
        names = [c for c in names if torch_python or not c.startswith("torch")]
        procs = {}
        for name in names:
            python = torch_python if name.startswith("torch") and torch_python else sys.executable
            procs[name] = subprocess.Popen(
                [python, __file__, "--worker", name, "--net", net, "--data", str(tmp)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
        infos = {name: json.loads(p.stdout.readline())["ready"] for name, p in procs.items()}  # type: ignore[union-attr]
        times: dict[str, list[float]] = {name: [] for name in names}
        accs: dict[str, float] = {}
        for r in range(rounds + 1):  # round 0 warms every contender up and is not counted
            for name in names[r % len(names) :] + names[: r % len(names)]:
                time.sleep(pause)
                p = procs[name]
                p.stdin.write(f"{r}\n")  # type: ignore[union-attr]
                p.stdin.flush()  # type: ignore[union-attr]
                answer = json.loads(p.stdout.readline())  # type: ignore[union-attr]
                if r:
                    times[name].append(answer["seconds"])
                accs[name] = answer["accuracy"]
        for p in procs.values():
            p.stdin.close()  # type: ignore[union-attr]
            p.wait()
        results[net] = times
        report(net, times, accs, infos, rounds)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


def report(net: str, times: dict[str, list[float]], accs: dict[str, float], infos: dict[str, str], rounds: int) -> None:
    med = {k: statistics.median(v) for k, v in times.items()}
    shape = (
        "-".join(map(str, [784, *NETS[net]["hidden"], 10])) if "hidden" in NETS[net] else "conv8-pool-conv16-pool-10"
    )
    print(f"\n{net} {shape}, batch {BATCH}, float32, Adam; median s/epoch over {rounds} rounds (min-max)")
    for name, t in times.items():
        acc = accs.get(name, float("nan"))
        acc_text = "" if acc != acc else f"  test acc {acc:.4f}"
        print(f"  {name:<13} {med[name]:7.3f}  ({min(t):.3f}-{max(t):.3f}){acc_text}")
    e = med["engine"]
    if "floor" in med:
        print(f"  engine / floor        {e / med['floor']:.2f}x  (goal <= 1.6x)")
    if "engine-quiet" in med:
        print(f"  event overhead        {(e / med['engine-quiet'] - 1) * 100:+.1f}%  (goal <= 5%)")
    goal = 1.0 if net == "cnn" else 0.8  # issue 14: the CNN's goal is parity, the dense nets' 0.8x
    for name in ("torch", "torch-fused"):
        if name in med:
            print(f"  engine / {name:<12} {e / med[name]:.2f}x  (goal <= {goal}x against the faster)")
    for name in ("engine", "floor", "torch"):
        if name in infos:
            print(f"  [{name}] {infos[name]}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nets", nargs="+", default=["mlp", "default", "cnn"], choices=list(NETS))
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--pause", type=float, default=0.3, help="seconds between turns")
    parser.add_argument("--torch-python", default="/work/torchvenv/bin/python")
    parser.add_argument("--worker", choices=CONTENDERS)
    parser.add_argument("--net", choices=list(NETS))
    parser.add_argument("--data", type=Path)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.net, args.data)
        return
    torch_python = args.torch_python if args.torch_python and Path(args.torch_python).exists() else None
    if torch_python is None:
        print("no torch interpreter (python3 -m venv /work/torchvenv && /work/torchvenv/bin/pip install torch numpy)")
    run(args.nets, args.rounds, torch_python, args.pause)


if __name__ == "__main__":
    main()
