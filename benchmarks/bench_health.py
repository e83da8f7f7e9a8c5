"""What the per-layer health statistics cost: epochs of a network with health on and off, alternated in one
process (same library, same data order), medians. Health is measured at every progress tick (every 0.33 s by
default): a copy of each weight array before the optimizer step, then a few reductions.

usage: python benchmarks/bench_health.py [--preset default] [--rounds 4]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

from threadpoolctl import threadpool_info

from engine.datasets.mnist import load_mnist, mnist_arrays
from engine.model import Model
from engine.trainer import Trainer
from server.presets import get_preset


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="default")
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    preset = get_preset(args.preset)
    assert preset is not None, f"no preset {args.preset}"
    data = mnist_arrays(load_mnist(fetch=False))
    base = replace(preset.config.train_config(), epochs=1)
    blas = [(i["internal_api"], i.get("architecture"), i["num_threads"]) for i in threadpool_info()]
    print(f"preset {args.preset}; BLAS {blas}")
    times: dict[bool, list[float]] = {True: [], False: []}
    for round_ in range(args.rounds):
        for health in (round_ % 2 == 0, round_ % 2 == 1):  # alternate which goes first
            model = Model.build(preset.config.model_spec(), seed=round_)
            started = time.perf_counter()
            Trainer(model, replace(base, health=health, seed=round_), data).run()
            times[health].append(time.perf_counter() - started)
    on, off = statistics.median(times[True]), statistics.median(times[False])
    print(f"epoch with health {on:.3f} s, without {off:.3f} s: overhead {100 * (on / off - 1):+.1f}%")
    print(f"all: on {[round(t, 3) for t in times[True]]} off {[round(t, 3) for t in times[False]]}")


if __name__ == "__main__":
    main()
