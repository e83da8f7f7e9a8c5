"""Strokes redrawn at MNIST's proportions: the same digit drawn small or large gives the same network input,
while as an image the small one's strokes swamp it."""

from __future__ import annotations

import numpy as np
import pytest

from server.imaging import ImageError
from server.strokes import render_strokes

SEVEN = [[[0.28, 0.22], [0.72, 0.22], [0.45, 0.82]]]  # the page's test 7, as fractions of the pad


def seven(height_px: float, left: float = 40, top: float = 30) -> list[list[list[float]]]:
    return [[[left + x * height_px / 0.6, top + (y - 0.22) * height_px / 0.6] for x, y in SEVEN[0]]]


def test_a_small_and_a_large_drawing_give_the_same_input() -> None:
    small, large = render_strokes(seven(45)), render_strokes(seven(200, left=10, top=5))
    assert small.shape == (28, 28) and 0.99 <= small.max() <= 1.0
    np.testing.assert_allclose(small, large, atol=1e-5)


def test_the_pen_is_as_thick_as_mnist_strokes() -> None:
    from server.imaging import stroke_width

    image = render_strokes([[[100, 20], [100, 240]]])  # a "1"
    assert 1.5 <= stroke_width(image) <= 3.5  # MNIST's strokes: about 2-3 px in the 28x28 field


@pytest.mark.parametrize(
    "bad",
    [[], [[[]]], [[]], [[[1, 2, 3]]], [[[1]]], [[[float("nan"), 1]]], [[[0, 0]]] * 201, [[[0, 0]] * 20_001]],
)
def test_bad_strokes_are_refused(bad: list) -> None:
    with pytest.raises(ImageError):
        render_strokes(bad)


def test_a_tap_is_a_dot() -> None:
    assert render_strokes([[[50, 50]]]).max() > 0.9
