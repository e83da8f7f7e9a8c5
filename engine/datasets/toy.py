"""Generated 2-D data sets, after tensorflow/playground's src/dataset.ts: points on [-6, 6]^2, classification
(labels 0/1; the playground's -1 is class 0, its +1 class 1) or regression (targets in [-1, 1]).

Options (the registry lists them with their bounds): ``noise`` in [0, 0.5] on the playground's scale,
``points`` 50-5000 (train + test), ``test_fraction`` 0.1-0.9, ``features`` (any non-empty subset of
FEATURES, in that canonical order) and ``seed`` (the points' own seed, so "regenerate data" does not change
the initial weights). The same options give the same arrays, bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from engine.trainer import Dataset

EXTENT = 6.0  # points and pictures cover [-EXTENT, EXTENT]^2
FEATURES = ("x1", "x2", "x1_sq", "x2_sq", "x1x2", "sin_x1", "sin_x2")
DEFAULT_FEATURES = ("x1", "x2")
CLASSIFICATION = ("circle", "xor", "gauss", "spiral", "moons", "checkerboard")
REGRESSION = ("plane", "multigauss")

Generator = Callable[[np.random.Generator, int, float], tuple[np.ndarray, np.ndarray]]


def _uniform(rng: np.random.Generator, low: float, high: float, n: int) -> np.ndarray:
    return rng.uniform(low, high, n)


def circle(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Half the points within radius 2.5 (class 1), half in the ring 3.5-5 (class 0); a point's label is
    decided by its noisy position, as in the playground."""
    radius = 5.0
    parts, labels = [], []
    for low, high, count in ((0.0, radius * 0.5, n // 2), (radius * 0.7, radius, n - n // 2)):
        r = _uniform(rng, low, high, count)
        angle = _uniform(rng, 0, 2 * np.pi, count)
        x, y = r * np.sin(angle), r * np.cos(angle)
        nx, ny = _uniform(rng, -radius, radius, count) * noise, _uniform(rng, -radius, radius, count) * noise
        labels.append(np.hypot(x + nx, y + ny) < radius * 0.5)
        parts.append(np.stack([x, y], axis=1))
    return np.concatenate(parts), np.concatenate(labels)


def xor(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Uniform on [-5, 5]^2 pushed 0.3 away from the axes; class 1 where x1 x2 >= 0 (of the noisy point)."""
    padding = 0.3
    x = _uniform(rng, -5, 5, n)
    y = _uniform(rng, -5, 5, n)
    x += np.where(x > 0, padding, -padding)
    y += np.where(y > 0, padding, -padding)
    nx, ny = _uniform(rng, -5, 5, n) * noise, _uniform(rng, -5, 5, n) * noise
    return np.stack([x, y], axis=1), (x + nx) * (y + ny) >= 0


def gauss(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Two gaussians at (2, 2) (class 1) and (-2, -2) (class 0); the variance grows from 0.5 to 4 with noise
    (the playground passes it to normalRandom as the variance)."""
    std = np.sqrt(0.5 + noise / 0.5 * 3.5)
    half = n // 2
    pos = rng.normal(2.0, std, (half, 2))
    neg = rng.normal(-2.0, std, (n - half, 2))
    return np.concatenate([pos, neg]), np.concatenate([np.ones(half, bool), np.zeros(n - half, bool)])


def spiral(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Two arms, 1.75 turns each out to radius 5; class 1 starts at angle 0, class 0 at pi."""
    parts, labels = [], []
    for delta, label, count in ((0.0, True, n // 2), (np.pi, False, n - n // 2)):
        i = np.arange(count)
        r = i / count * 5
        t = 1.75 * i / count * 2 * np.pi + delta
        x = r * np.sin(t) + _uniform(rng, -1, 1, count) * noise
        y = r * np.cos(t) + _uniform(rng, -1, 1, count) * noise
        parts.append(np.stack([x, y], axis=1))
        labels.append(np.full(count, label))
    return np.concatenate(parts), np.concatenate(labels)


def moons(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's two interleaving half circles, centred and scaled by 3.5 to span about [-5, 5]; noise is
    a gaussian of standard deviation 2 * noise (on [-6, 6])."""
    half = n // 2
    t_out, t_in = rng.uniform(0, np.pi, half), rng.uniform(0, np.pi, n - half)
    outer = np.stack([np.cos(t_out), np.sin(t_out)], axis=1)
    inner = np.stack([1 - np.cos(t_in), 0.5 - np.sin(t_in)], axis=1)
    points = (np.concatenate([outer, inner]) - [0.5, 0.25]) * 3.5
    points += rng.normal(0, 2 * noise, points.shape) if noise > 0 else 0.0
    return points, np.concatenate([np.zeros(half, bool), np.ones(n - half, bool)])


def checkerboard(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Uniform on [-6, 6]^2, 4 x 4 squares of side 3; labels from the noisy position, like xor."""
    x, y = _uniform(rng, -EXTENT, EXTENT, n), _uniform(rng, -EXTENT, EXTENT, n)
    nx, ny = _uniform(rng, -5, 5, n) * noise, _uniform(rng, -5, 5, n) * noise
    cells = np.floor((x + nx) / 3) + np.floor((y + ny) / 3)
    return np.stack([x, y], axis=1), cells % 2 == 0


def plane(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Target (x1 + x2) / 10 of the noisy point (the playground's label scale: -1 to 1 for |x1 + x2| <= 10)."""
    x, y = _uniform(rng, -EXTENT, EXTENT, n), _uniform(rng, -EXTENT, EXTENT, n)
    nx, ny = _uniform(rng, -EXTENT, EXTENT, n) * noise, _uniform(rng, -EXTENT, EXTENT, n) * noise
    return np.stack([x, y], axis=1), (x + nx + y + ny) / 10


_GAUSSIANS = ((-4, 2.5, 1), (0, 2.5, -1), (4, 2.5, 1), (-4, -2.5, -1), (0, -2.5, 1), (4, -2.5, -1))


def multigauss_target(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Six bumps of +-1 falling linearly to 0 at distance 2; where they meet, the larger magnitude wins."""
    label = np.zeros_like(x)
    for cx, cy, sign in _GAUSSIANS:
        value = sign * np.clip(1 - np.hypot(x - cx, y - cy) / 2, 0, 1)
        label = np.where(np.abs(value) > np.abs(label), value, label)
    return label


def multigauss(rng: np.random.Generator, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    x, y = _uniform(rng, -EXTENT, EXTENT, n), _uniform(rng, -EXTENT, EXTENT, n)
    nx, ny = _uniform(rng, -EXTENT, EXTENT, n) * noise, _uniform(rng, -EXTENT, EXTENT, n) * noise
    return np.stack([x, y], axis=1), multigauss_target(x + nx, y + ny)


GENERATORS: dict[str, Generator] = {
    "circle": circle,
    "xor": xor,
    "gauss": gauss,
    "spiral": spiral,
    "moons": moons,
    "checkerboard": checkerboard,
    "plane": plane,
    "multigauss": multigauss,
}

DESCRIPTIONS = {
    "circle": "2-D: a disc of one class inside a ring of the other",
    "xor": "2-D: classes by quadrant (exclusive or of the signs)",
    "gauss": "2-D: two gaussian clouds; noise widens them until they overlap",
    "spiral": "2-D: two interleaved spiral arms",
    "moons": "2-D: two interleaving half moons",
    "checkerboard": "2-D: a 4 x 4 checkerboard",
    "plane": "2-D regression: a tilted plane, (x1 + x2) / 10",
    "multigauss": "2-D regression: six bumps of +1 and -1",
}


def canonical_features(features: Sequence[str]) -> tuple[str, ...]:
    chosen = set(features)
    return tuple(f for f in FEATURES if f in chosen)


def feature_columns(points: np.ndarray, features: Sequence[str], dtype: type = np.float32) -> np.ndarray:
    """(n, 2) points -> (n, len(features)) inputs, in the given order (the playground feeds raw values)."""
    x1, x2 = points[:, 0], points[:, 1]
    make = {
        "x1": lambda: x1,
        "x2": lambda: x2,
        "x1_sq": lambda: x1 * x1,
        "x2_sq": lambda: x2 * x2,
        "x1x2": lambda: x1 * x2,
        "sin_x1": lambda: np.sin(x1),
        "sin_x2": lambda: np.sin(x2),
    }
    return np.stack([make[f]() for f in features], axis=1).astype(dtype)


def options_of(raw: dict[str, Any] | None) -> dict[str, Any]:
    """Filled with defaults; the server has already checked names and bounds."""
    raw = raw or {}
    return {
        "noise": float(raw.get("noise", 0.0)),
        "points": int(raw.get("points", 500)),
        "test_fraction": float(raw.get("test_fraction", 0.5)),
        "features": canonical_features(raw.get("features") or DEFAULT_FEATURES),
        "seed": int(raw.get("seed", 0)),
    }


def split_sizes(options: dict[str, Any] | None) -> tuple[int, int, int]:
    """(points, train, test) for these options."""
    o = options_of(options)
    n_test = min(max(1, round(o["points"] * o["test_fraction"])), o["points"] - 1)
    return o["points"], o["points"] - n_test, n_test


def generate(name: str, options: dict[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """(points (n, 2) float64, labels or targets (n,), test count), shuffled by the seed."""
    o = options_of(options)
    rng = np.random.default_rng(np.random.SeedSequence([o["seed"], 2024, sorted(GENERATORS).index(name)]))
    points, labels = GENERATORS[name](rng, o["points"], o["noise"])
    points = np.clip(points, -EXTENT, EXTENT)  # wide gaussians and noisy moons stay on the square (labels kept)
    order = rng.permutation(points.shape[0])
    _, _, n_test = split_sizes(o)
    return points[order], labels[order], n_test


def load(name: str, options: dict[str, Any] | None = None) -> Dataset:
    o = options_of(options)
    points, labels, n_test = generate(name, o)
    x = feature_columns(points, o["features"])
    y = labels.astype(np.float32) if name in REGRESSION else labels.astype(np.int64)
    n_train = points.shape[0] - n_test
    return Dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:])


def grid_points(side: int) -> np.ndarray:
    """The centres of a side x side raster over [-6, 6]^2, row-major: row 0 at x2 = +6, column 0 at x1 = -6."""
    step = 2 * EXTENT / side
    centres = -EXTENT + (np.arange(side) + 0.5) * step
    x1, x2 = np.meshgrid(centres, centres[::-1])
    return np.stack([x1.ravel(), x2.ravel()], axis=1)
