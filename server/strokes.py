"""A drawing sent as its pen strokes (polylines in canvas pixels) is redrawn at MNIST's proportions: the strokes'
centre lines are scaled to a fixed box and drawn again with a pen whose width is a fixed fraction of that box,
then go through the same MNIST preprocessing as an image (server/imaging.py). So a digit drawn 45 px tall with
the page's 20 px pen gives the same 28x28 input as the same digit drawn 200 px tall: the pen no longer swamps a
small digit (drawn small as an image, its strokes were as thick as a third of its height, and 2s, 3s and 7s
were read as 8s)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from server.imaging import ImageError, mnist_preprocess

BOX = 200  # pixels: the strokes' centre lines are scaled so their longer side spans this
PEN_FRACTION = 0.14  # pen width / the centre-line box: MNIST's strokes, about 2.5 px for a 17.5 px centre line
MAX_STROKES = 200
MAX_POINTS = 20_000


def render_strokes(strokes: list[list[list[float]]]) -> np.ndarray:
    """The 28x28 network input in [0, 1] for a drawing given as strokes [[[x, y], ...], ...]."""
    if not strokes or len(strokes) > MAX_STROKES:
        raise ImageError(f"Send 1 to {MAX_STROKES} strokes, each a list of [x, y] points.")
    try:
        lines = [np.asarray(stroke, dtype=np.float64) for stroke in strokes if len(stroke)]
    except (ValueError, TypeError):
        raise ImageError("Each stroke must be a list of [x, y] points.") from None
    if any(line.ndim != 2 or line.shape[1] != 2 for line in lines):  # e.g. [[]] or [[1, 2, 3]]
        raise ImageError("Each stroke must be a list of [x, y] points.")
    if not lines or not 1 <= sum(len(line) for line in lines) <= MAX_POINTS:
        raise ImageError(f"The strokes must hold 1 to {MAX_POINTS} points.")
    points = np.concatenate(lines)
    if not np.isfinite(points).all():
        raise ImageError("Stroke points must be finite numbers.")
    low = points.min(axis=0)
    extent = float((points.max(axis=0) - low).max())
    scale = BOX / max(extent, 1.0)  # a dot (no extent) is drawn as a dot of the pen's width
    pen = round(BOX * PEN_FRACTION)
    margin = pen
    canvas = Image.new("L", (BOX + 2 * margin, BOX + 2 * margin), 0)
    draw = ImageDraw.Draw(canvas)
    radius = pen / 2
    for line in lines:
        xy = [(float(x), float(y)) for x, y in (line - low) * scale + margin]
        if len(xy) > 1:
            draw.line(xy, fill=255, width=pen, joint="curve")
        for x, y in (xy[0], xy[-1]):  # round caps (and a tap's dot)
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
    return mnist_preprocess(np.asarray(canvas, dtype=np.float32) / 255.0)
