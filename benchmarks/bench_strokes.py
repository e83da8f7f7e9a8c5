"""Digits drawn as pen strokes, small and large, read two ways: as the page's PNG (ink drawn with its 20 px pen,
then server/imaging.py) and as strokes (server/strokes.py redraws them at MNIST's proportions). A handful of
hand-made shapes (0-9, as a person draws them with a mouse), each at 45 px and 200 px tall on the 280 px pad.

usage: python benchmarks/bench_strokes.py MODEL.npz [MODEL.npz ...]
"""

from __future__ import annotations

import argparse
import base64
import io
import math

import numpy as np
from PIL import Image, ImageDraw

from engine.model import Model
from server.imaging import prepare
from server.strokes import render_strokes

PAD, PEN = 280, 20


def arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int = 24) -> list[list[float]]:
    return [[cx + rx * math.cos(a), cy + ry * math.sin(a)] for a in np.linspace(a0, a1, n)]


SHAPES: dict[int, list[list[list[float]]]] = {  # in a unit box, y down
    0: [arc(0.5, 0.5, 0.3, 0.45, 0, 2 * math.pi, 40)],
    1: [[[0.45, 0.1], [0.55, 0.05], [0.55, 0.95]]],
    2: [[*arc(0.5, 0.3, 0.25, 0.22, math.pi, 2.2 * math.pi), [0.2, 0.92], [0.8, 0.92]]],
    3: [
        arc(0.45, 0.28, 0.25, 0.2, -0.8 * math.pi, 0.5 * math.pi)
        + arc(0.45, 0.7, 0.28, 0.22, -0.5 * math.pi, 0.8 * math.pi)
    ],
    4: [[[0.6, 0.05], [0.15, 0.65], [0.85, 0.65]], [[0.62, 0.35], [0.62, 0.95]]],
    5: [[[0.75, 0.08], [0.3, 0.08], [0.27, 0.45], *arc(0.48, 0.65, 0.28, 0.25, -0.6 * math.pi, 0.85 * math.pi)]],
    6: [[*arc(0.5, 0.65, 0.27, 0.28, 0, 2 * math.pi, 30), [0.3, 0.4], [0.55, 0.05]]],
    7: [[[0.2, 0.1], [0.8, 0.1], [0.4, 0.95]]],
    8: [
        arc(0.5, 0.28, 0.22, 0.2, 0.5 * math.pi, 2.5 * math.pi, 30),
        arc(0.5, 0.7, 0.28, 0.24, -0.5 * math.pi, 1.5 * math.pi, 30),
    ],
    9: [[*arc(0.5, 0.3, 0.25, 0.22, 0, 2 * math.pi, 30), [0.75, 0.3], [0.72, 0.95]]],
}


def placed(shape: list[list[list[float]]], height: float) -> list[list[list[float]]]:
    left, top = (PAD - height) / 2, (PAD - height) / 2
    return [[[left + x * height, top + y * height] for x, y in stroke] for stroke in shape]


def as_png(strokes: list[list[list[float]]]) -> str:
    img = Image.new("RGBA", (PAD, PAD), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    for stroke in strokes:
        draw.line([tuple(p) for p in stroke], fill=(17, 24, 39, 255), width=PEN, joint="curve")
        for x, y in (stroke[0], stroke[-1]):
            draw.ellipse((x - PEN / 2, y - PEN / 2, x + PEN / 2, y + PEN / 2), fill=(17, 24, 39, 255))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="+")
    args = parser.parse_args()
    for path in args.models:
        model = Model.load(path)
        print(path)
        for height in (45, 200):
            for how in ("image", "strokes"):
                read = []
                for _digit, shape in SHAPES.items():
                    strokes = placed(shape, height)
                    x = (
                        render_strokes(strokes)
                        if how == "strokes"
                        else prepare(as_png(strokes), None, max_bytes=1 << 22, max_side=PAD)
                    )
                    read.append(int(model.probabilities(x.reshape(1, -1)).argmax()))
                right = sum(r == d for d, r in zip(SHAPES, read, strict=True))
                print(f"  {height:3d} px  as {how:7s}: {right}/10 right, read {read}")


if __name__ == "__main__":
    main()
