"""Engine speed on real MNIST against the sgemm floor and PyTorch CPU: see benchmarks/bench_speed.py, which
this runs (every contender in its own process, interleaved rounds, medians; the MLP 784-128-10, the default
preset's 784-256-128-10 and, once engine/conv.py exists, the CNN). PyTorch is looked for in
/work/torchvenv or --torch-python; it is never a dependency of the project.

usage: python benchmarks/bench_engine.py [--rounds 6] [--nets mlp default cnn]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_speed import main

if __name__ == "__main__":
    main()
