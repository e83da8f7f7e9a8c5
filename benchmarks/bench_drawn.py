"""How well models read digits drawn the way people draw them, not the way MNIST was made.

Each MNIST test digit is redrawn on a 280x280 pad as the page's canvas would send it (dark ink on a
transparent PNG) at a given height, with a given pen width and position, then goes through the server's own
preprocessing (server/imaging.py `prepare`) and each model. A person's pen does not shrink with the digit: a
small digit drawn with the page's 20 px pen has far thicker strokes, relative to its size, than MNIST's.

Kinds: large (200 px tall, 20 px pen), medium (100, 20), small (45, 20: 1/6 of the pad), thick (150, 40),
thin (150, 8), off-centre (100, 20, in a corner). MNIST's own strokes are about 2.5 px in its 20 px box, so a
digit scaled by s has strokes of about 2.5 s; the pen is simulated by dilating (or eroding) to the pen width.

usage: python benchmarks/bench_drawn.py MODEL.npz [MODEL.npz ...] [--n 1000]
       (a model may be "default": the data dir's default model)
"""

from __future__ import annotations

import argparse
import base64
import io
import time

import numpy as np
from PIL import Image, ImageFilter

from engine.datasets.mnist import load_mnist
from engine.model import Model
from server.imaging import prepare
from server.settings import Settings

PAD = 280
KINDS: dict[str, tuple[int, int, str]] = {  # name: (digit height px, pen width px, placement)
    "large": (200, 20, "centre"),
    "medium": (100, 20, "centre"),
    "small": (45, 20, "centre"),
    "thick": (150, 40, "centre"),
    "thin": (150, 8, "centre"),
    "off-centre": (100, 20, "corner"),
}
MNIST_STROKE = 2.5  # px, in MNIST's 20 px digit box


def redraw(digit: np.ndarray, height: int, pen: int, placement: str, rng: np.random.Generator) -> str:
    """A 28x28 MNIST digit as the page's canvas would send it: a PNG data URL, ink in the alpha channel."""
    rows, cols = np.nonzero(digit > 30)
    crop = digit[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    scale = height / crop.shape[0]
    width = max(1, round(crop.shape[1] * scale))
    big = Image.fromarray(crop).resize((width, height), Image.Resampling.BILINEAR)
    grow = (pen - MNIST_STROKE * scale) / 2  # pixels to add (or remove) on each side of a stroke
    size = 2 * round(abs(grow)) + 1
    if size >= 3:
        big = big.filter(ImageFilter.MaxFilter(size) if grow > 0 else ImageFilter.MinFilter(size))
    mask = np.asarray(big, dtype=np.uint8)
    mask = np.where(mask > 100, 255, 0).astype(np.uint8)  # a pen is solid ink
    canvas = np.zeros((PAD, PAD), np.uint8)
    h, w = min(mask.shape[0], PAD), min(mask.shape[1], PAD)
    if placement == "centre":
        top, left = (PAD - h) // 2, (PAD - w) // 2
    else:  # a corner, picked at random, 10 px from the edges
        top = 10 if rng.random() < 0.5 else PAD - h - 10
        left = 10 if rng.random() < 0.5 else PAD - w - 10
    top, left = max(0, top), max(0, left)
    canvas[top : top + h, left : left + w] = mask[:h, :w]
    rgba = np.zeros((PAD, PAD, 4), np.uint8)
    rgba[..., 3] = canvas  # the page draws black ink on a transparent canvas
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--n", type=int, default=1000, help="test digits per kind")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    settings = Settings()
    mnist = load_mnist(settings.data_dir, fetch=False)
    models = {name: Model.load(settings.default_model_path if name == "default" else name) for name in args.models}
    rng = np.random.default_rng(args.seed)
    picks = rng.choice(len(mnist.test_labels), size=args.n, replace=False)
    print(f"{args.n} MNIST test digits per kind, redrawn on a {PAD}x{PAD} pad, read through server/imaging.py")
    header = f"{'kind':12} {'height':>6} {'pen':>4} " + " ".join(f"{name[-24:]:>24}" for name in models)
    print(header)
    started = time.perf_counter()
    for kind, (height, pen, placement) in KINDS.items():
        images = np.stack(
            [
                prepare(
                    redraw(mnist.test_images[i], height, pen, placement, rng), None, max_bytes=1 << 22, max_side=PAD
                )
                for i in picks
            ]
        ).reshape(args.n, -1)
        labels = mnist.test_labels[picks]
        scores = [
            float((model.probabilities(images.astype(model.dtype)).argmax(axis=1) == labels).mean())
            for model in models.values()
        ]
        print(f"{kind:12} {height:6d} {pen:4d} " + " ".join(f"{s:24.3f}" for s in scores))
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
