"""Conv2D: float64 finite-difference gradients, a naive loop reference, output sizes, blocks."""

from __future__ import annotations

import numpy as np
import pytest

import engine.conv
from engine.conv import Conv2D, conv_output_size, same_padding
from engine.layers import Layer
from engine.pool import MaxPool2D
from tests.engine.gradcheck import check_layer_gradients


def random_conv(c: int, f: int, k: int, stride: int, padding: str, seed: int = 1, **kw: object) -> Conv2D:
    rng = np.random.default_rng(seed)
    layer = Conv2D(c, f, k, stride=stride, padding=padding, rng=rng, dtype=np.float64, **kw)  # type: ignore[arg-type]
    layer.params["b"][:] = rng.standard_normal(f)
    return layer


# ---- naive references ---------------------------------------------------------------------------------


def naive_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, padding: str) -> np.ndarray:
    n, h, wd, _ = x.shape
    k = w.shape[0]
    if padding == "same":  # TensorFlow: output ceil(size / stride), odd padding pixel at the bottom/right
        oh, ow = -(-h // stride), -(-wd // stride)
        ph, pw = max((oh - 1) * stride + k - h, 0), max((ow - 1) * stride + k - wd, 0)
        x = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    else:
        oh, ow = (h - k) // stride + 1, (wd - k) // stride + 1
    out = np.zeros((n, oh, ow, w.shape[3]))
    for i in range(n):
        for y in range(oh):
            for z in range(ow):
                patch = x[i, y * stride : y * stride + k, z * stride : z * stride + k, :]
                out[i, y, z] = np.tensordot(patch, w, axes=3) + b
    return out


CONV_CASES = [  # padding, stride, kernel, in channels, filters, height, width
    ("same", 1, 1, 2, 3, 5, 4),
    ("same", 1, 3, 1, 2, 5, 5),  # single channel, stride 1: the planar path
    ("same", 1, 5, 3, 2, 6, 5),
    ("same", 1, 2, 2, 2, 5, 6),  # even kernel: uneven padding
    ("same", 2, 3, 2, 3, 7, 6),
    ("same", 2, 5, 1, 2, 7, 7),
    ("same", 2, 4, 2, 2, 6, 7),
    ("valid", 1, 3, 2, 2, 6, 5),
    ("valid", 1, 5, 1, 3, 7, 6),  # planar path, valid
    ("valid", 2, 3, 3, 2, 7, 8),
    ("valid", 2, 1, 2, 2, 5, 5),
    ("valid", 2, 5, 4, 1, 8, 9),
]


def _wb(layer: Layer) -> dict[str, np.ndarray]:
    return {"w": layer.params["W"], "b": layer.params["b"]}


@pytest.fixture(params=["one block", "blocks of 2"])
def blocks(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run a test with the whole batch in one block, and again in blocks of two images (the last one short)."""
    if request.param == "blocks of 2":
        geometry = Conv2D._geometry
        monkeypatch.setattr(Conv2D, "_geometry", lambda self, x: geometry(self, x)._replace(block=min(2, len(x))))


@pytest.mark.usefixtures("blocks")
@pytest.mark.parametrize(("padding", "stride", "k", "c", "f", "h", "w"), CONV_CASES)
def test_conv_gradients_match_finite_differences(padding: str, stride: int, k: int, c: int, f: int, h: int, w: int):
    x = np.random.default_rng(2).standard_normal((3, h, w, c))
    check_layer_gradients(random_conv(c, f, k, stride, padding), x)


@pytest.mark.usefixtures("blocks")
@pytest.mark.parametrize(("padding", "stride", "k", "c", "f", "h", "w"), CONV_CASES)
def test_conv_forward_matches_naive_loops(padding: str, stride: int, k: int, c: int, f: int, h: int, w: int):
    layer = random_conv(c, f, k, stride, padding)
    x = np.random.default_rng(3).standard_normal((3, h, w, c))
    expected = naive_conv(x, **_wb(layer), stride=stride, padding=padding)
    np.testing.assert_allclose(layer.forward(x, True), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.forward(x, False), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.usefixtures("blocks")
@pytest.mark.parametrize(("padding", "stride", "k", "c", "f", "h", "w"), CONV_CASES)
def test_conv_with_fused_relu_matches_naive_loops_and_finite_differences(
    padding: str, stride: int, k: int, c: int, f: int, h: int, w: int
) -> None:
    layer = random_conv(c, f, k, stride, padding, activation="relu")
    x = np.random.default_rng(3).standard_normal((3, h, w, c))
    expected = np.maximum(naive_conv(x, **_wb(layer), stride=stride, padding=padding), 0)
    assert (expected == 0).any() and (expected > 0).any()
    np.testing.assert_allclose(layer.forward(x, False), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.forward(x, True), expected, rtol=1e-12, atol=1e-12)
    check_layer_gradients(layer, x)


def test_conv_relu_is_fused_into_the_model_and_other_activations_are_not() -> None:
    from engine.model import Model
    from engine.spec import Conv2DSpec, ModelSpec

    for activation, chain in (("relu", ["Conv2D"]), ("tanh", ["Conv2D", "ActivationLayer"])):
        spec = ModelSpec((6, 6, 1), (Conv2DSpec(2, 3, activation=activation),))
        model = Model.build(spec)
        assert [type(layer).__name__ for layer in model.layers[: len(chain)]] == chain
    with pytest.raises(ValueError):
        Conv2D(1, 2, 3, rng=np.random.default_rng(0), activation="tanh")


@pytest.mark.usefixtures("blocks")
def test_conv_reuses_its_work_arrays_across_batch_sizes() -> None:
    rng = np.random.default_rng(4)
    for c in (1, 3):  # planar and general paths
        layer = random_conv(c, 2, 3, 1, "same")
        for n, training in ((2, True), (5, True), (3, False), (1, True), (4, True)):
            x = rng.standard_normal((n, 6, 6, c))
            expected = naive_conv(x, **_wb(layer), stride=1, padding="same")
            np.testing.assert_allclose(layer.forward(x, training), expected)


def test_conv_block_size_bounds_the_window_matrix() -> None:
    layer = Conv2D(8, 16, 5, rng=np.random.default_rng(0))
    x = np.zeros((128, 14, 14, 8), np.float32)
    block = layer._geometry(x).block
    assert 1 <= block < 128 and block * 14 * 14 * 25 * 16 * 4 <= engine.conv.BLOCK_BYTES  # dX's windows: 16 channels
    assert layer._geometry(x[:1]).block == 1


def test_conv_without_input_gradient_still_fills_parameter_gradients() -> None:
    x = np.random.default_rng(5).standard_normal((2, 5, 5, 1))
    full, first = random_conv(1, 2, 3, 1, "same"), random_conv(1, 2, 3, 1, "same", needs_input_grad=False)
    grad = np.ones((2, 5, 5, 2))
    full.forward(x, True)
    first.forward(x, True)
    full.backward(grad)
    assert first.backward(grad).shape == (2, 5, 5, 0)
    np.testing.assert_allclose(first.grads["W"], full.grads["W"])


@pytest.mark.parametrize(
    ("size", "kernel", "stride", "padding", "expected"),
    [
        (28, 5, 1, "same", 28),
        (28, 5, 2, "same", 14),
        (7, 3, 2, "same", 4),
        (28, 5, 1, "valid", 24),
        (7, 3, 2, "valid", 3),
    ],
)
def test_conv_output_size(size: int, kernel: int, stride: int, padding: str, expected: int) -> None:
    assert conv_output_size(size, kernel, stride, padding) == expected


def test_same_padding_puts_the_odd_pixel_low_then_high_like_tensorflow() -> None:
    assert same_padding(28, 5, 2) == (1, 2)
    assert same_padding(28, 5, 1) == (2, 2)
    assert same_padding(7, 4, 1) == (1, 2)


@pytest.mark.parametrize("padding", ["same", "valid"])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("k", [1, 3, 5, 7])
def test_conv_output_shapes_follow_conv_output_size(padding: str, stride: int, k: int) -> None:
    layer = Conv2D(1, 2, k, stride=stride, padding=padding, rng=np.random.default_rng(0))
    for h, w in ((28, 28), (14, 9), (7, 8)):
        out = layer.forward(np.zeros((1, h, w, 1), np.float32), True)
        assert out.shape == (1, conv_output_size(h, k, stride, padding), conv_output_size(w, k, stride, padding), 2)


def test_bad_conv_and_pool_settings_are_refused() -> None:
    rng = np.random.default_rng(0)
    for kwargs in ({"kernel": 8}, {"filters": 65}, {"stride": 3}, {"padding": "full"}):
        args = {"in_channels": 1, "filters": 2, "kernel": 3, "rng": rng} | kwargs
        with pytest.raises(ValueError):
            Conv2D(**args)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        MaxPool2D(4)
    with pytest.raises(ValueError):
        conv_output_size(3, 5, 1, "valid")
    with pytest.raises(ValueError):
        Conv2D(2, 2, 3, rng=rng).forward(np.zeros((1, 5, 5, 1), np.float32), True)  # wrong channel count
