"""Pooling, batch norm, flatten, 4-D activations, a whole conv stack, and float32 end to end."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from engine.conv import Conv2D
from engine.layers import ActivationLayer, Dense, Flatten, Layer
from engine.norm import BatchNorm
from engine.pool import AvgPool2D, MaxPool2D, pool_output_size
from tests.engine.gradcheck import RTOL, check_layer_gradients, numeric_grad, rel_error


def naive_pool(x: np.ndarray, size: int, stride: int, reduce: Callable[..., np.ndarray]) -> np.ndarray:
    n, h, w, c = x.shape
    oh, ow = (h - size) // stride + 1, (w - size) // stride + 1
    out = np.zeros((n, oh, ow, c))
    for y in range(oh):
        for z in range(ow):
            out[:, y, z] = reduce(x[:, y * stride : y * stride + size, z * stride : z * stride + size], axis=(1, 2))
    return out


# ---- pooling ------------------------------------------------------------------------------------------


POOL_CASES = [(2, 2, 5, 7), (2, 2, 6, 8), (3, 3, 7, 8), (2, 1, 5, 4), (3, 2, 7, 6)]  # size, stride, height, width


@pytest.mark.parametrize("pool", [MaxPool2D, AvgPool2D])
@pytest.mark.parametrize(("size", "stride", "h", "w"), POOL_CASES)
def test_pool_gradients_match_finite_differences(pool: type, size: int, stride: int, h: int, w: int) -> None:
    x = np.random.default_rng(6).standard_normal((2, h, w, 3))  # random floats: no ties in max windows
    check_layer_gradients(pool(size, stride), x)


@pytest.mark.parametrize(("pool", "reduce"), [(MaxPool2D, np.max), (AvgPool2D, np.mean)])
@pytest.mark.parametrize(("size", "stride", "h", "w"), POOL_CASES)
def test_pool_forward_matches_naive_loops(pool: type, reduce: Callable, size: int, stride: int, h: int, w: int):
    x = np.random.default_rng(7).standard_normal((2, h, w, 3))
    np.testing.assert_allclose(pool(size, stride).forward(x, True), naive_pool(x, size, stride, reduce))


@pytest.mark.parametrize(("size", "h", "expected"), [(2, 28, 14), (2, 7, 3), (3, 28, 9), (3, 3, 1), (2, 2, 1)])
def test_pool_output_size_drops_the_remainder(size: int, h: int, expected: int) -> None:
    assert pool_output_size(h, size) == expected
    assert MaxPool2D(size).forward(np.zeros((1, h, h, 1)), True).shape == (1, expected, expected, 1)


@pytest.mark.parametrize("stride", [2, 1])
def test_max_pool_sends_a_tied_window_gradient_to_its_first_position_only(stride: int) -> None:
    x = np.zeros((1, 2, 2, 1))  # a window of ReLU zeros
    layer = MaxPool2D(2, stride)
    layer.forward(x, True)
    dx = layer.backward(np.full((1, 1, 1, 1), 3.0))
    np.testing.assert_array_equal(dx[0, :, :, 0], [[3.0, 0.0], [0.0, 0.0]])


@pytest.mark.parametrize("stride", [2, 1])
@pytest.mark.parametrize(
    ("window", "winner"),
    [([[1.0, 2.0], [2.0, 0.0]], (1, 0)), ([[0.0, 3.0], [0.0, 3.0]], (0, 1)), ([[1, 1], [1, 1]], (0, 0))],
)
def test_max_pool_ties_go_to_the_first_maximum_in_column_major_order(
    stride: int, window: list[list[float]], winner: tuple[int, int]
) -> None:
    x = np.array(window, np.float32).reshape(1, 2, 2, 1).repeat(3, axis=3)  # C > 1: the 2x2 path's pairs
    layer = MaxPool2D(2, stride)
    layer.forward(x, True)
    dx = layer.backward(np.full((1, 1, 1, 3), 3.0, np.float32))
    expected = np.zeros((2, 2), np.float32)
    expected[winner] = 3.0
    for channel in range(3):
        np.testing.assert_array_equal(dx[0, :, :, channel], expected)


# ---- batch norm, flatten, activations -----------------------------------------------------------------


@pytest.mark.parametrize("shape", [(6, 4), (3, 4, 3, 2)])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_gradients_match_finite_differences(shape: tuple[int, ...], training: bool) -> None:
    rng = np.random.default_rng(8)
    layer = BatchNorm(shape[-1], dtype=np.float64)
    layer.params["gamma"][:] = rng.standard_normal(shape[-1])
    layer.params["beta"][:] = rng.standard_normal(shape[-1])
    layer.buffers["running_mean"][:] = rng.standard_normal(shape[-1])
    layer.buffers["running_var"][:] = rng.random(shape[-1]) + 0.5
    check_layer_gradients(layer, rng.standard_normal(shape) * 2 + 1, training)


def test_batchnorm_running_statistics_move_in_training_only_and_drive_inference() -> None:
    x = np.random.default_rng(9).standard_normal((8, 3, 3, 2)) * 3 + 5
    layer = BatchNorm(2, momentum=0.9, dtype=np.float64)
    out = layer.forward(x, True)
    mean, var = x.reshape(-1, 2).mean(0), x.reshape(-1, 2).var(0)
    np.testing.assert_allclose(layer.buffers["running_mean"], 0.1 * mean)
    np.testing.assert_allclose(layer.buffers["running_var"], 0.9 + 0.1 * var)
    np.testing.assert_allclose(out.reshape(-1, 2).mean(0), 0, atol=1e-12)  # the batch itself is normalised
    for _ in range(200):
        layer.forward(x, True)
    np.testing.assert_allclose(layer.buffers["running_mean"], mean)
    before = {k: v.copy() for k, v in layer.buffers.items()}
    eval_out = layer.forward(x + 1, False)
    for key, value in before.items():
        np.testing.assert_array_equal(layer.buffers[key], value)
    np.testing.assert_allclose(eval_out, (x + 1 - before["running_mean"]) / np.sqrt(before["running_var"] + 1e-5))


def test_flatten_round_trips_nhwc_row_major() -> None:
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float64).reshape(2, 3, 4, 5)
    layer = Flatten()
    np.testing.assert_array_equal(layer.forward(x, True), x.reshape(2, 60))
    np.testing.assert_array_equal(layer.backward(x.reshape(2, 60)), x)
    check_layer_gradients(layer, x.copy())


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "sigmoid", "tanh", "linear"])
def test_activation_layer_works_on_image_batches(name: str) -> None:
    x = np.random.default_rng(10).standard_normal((2, 3, 3, 2))
    x[np.abs(x) < 1e-3] = 0.5  # keep ReLU's kink away from the probe points
    check_layer_gradients(ActivationLayer(name), x)


def test_whole_conv_stack_gradients_match_finite_differences() -> None:
    rng = np.random.default_rng(11)
    f64 = np.float64
    layers: list[Layer] = [
        Conv2D(1, 3, 3, rng=rng, dtype=f64),  # 10x10x1 -> 10x10x3
        ActivationLayer("relu"),
        MaxPool2D(2),  # -> 5x5x3
        BatchNorm(3, dtype=f64),
        Conv2D(3, 2, 3, padding="valid", init="xavier", rng=rng, dtype=f64),  # -> 3x3x2
        ActivationLayer("tanh"),
        AvgPool2D(2, 1),  # -> 2x2x2
        Flatten(),
        Dense(8, 3, rng=rng, dtype=f64),
    ]
    for layer in layers:
        for p in layer.params.values():
            p += rng.standard_normal(p.shape) * 0.3  # non-zero biases and betas, gammas away from one
    x = rng.standard_normal((3, 10, 10, 1))
    readout = rng.standard_normal((3, 3))

    def run(inp: np.ndarray) -> np.ndarray:
        for layer in layers:
            inp = layer.forward(inp, True)
        return inp

    def loss() -> float:
        return float((run(x) * readout).sum())

    run(x)
    grad = readout
    for layer in reversed(layers):
        grad = layer.backward(grad)
    assert rel_error(grad, numeric_grad(loss, x)) < RTOL
    for layer in layers:
        for key, g in {k: g.copy() for k, g in layer.grads.items()}.items():
            assert rel_error(g, numeric_grad(loss, layer.params[key])) < RTOL, (layer.kind, key)


def test_float32_stays_float32_everywhere() -> None:
    rng = np.random.default_rng(13)
    layers: list[Layer] = [
        Conv2D(1, 4, 5, rng=rng),
        ActivationLayer("relu"),
        MaxPool2D(2),
        BatchNorm(4),
        Conv2D(4, 3, 3, stride=2, rng=rng),
        AvgPool2D(2),
        Flatten(),
    ]
    for training in (True, False):
        x = rng.standard_normal((4, 12, 12, 1)).astype(np.float32)
        for layer in layers:
            x = layer.forward(x, training)
            assert x.dtype == np.float32, layer.kind
        grad = np.ones_like(x)
        for layer in reversed(layers):
            grad = layer.backward(grad)
            arrays = [grad, *layer.params.values(), *layer.grads.values(), *layer.buffers.values()]
            arrays += [a for kept in getattr(layer, "_kept", []) for a in kept.values()]
            assert all(a.dtype == np.float32 for a in arrays), layer.kind


@pytest.mark.parametrize("side", [8, 7])
def test_relu_slope_left_to_the_max_pool_keeps_the_stack_gradients_exact(side: int) -> None:
    """Model.build pairs a conv's fused ReLU with the max pool after it: the pool applies the slope on its
    output. The built chain (planar first layer, strided second) against central differences."""
    from engine.model import Model
    from engine.spec import Conv2DSpec, ModelSpec, PoolSpec

    spec = ModelSpec(
        (side, side, 1),
        (Conv2DSpec(3, 3), PoolSpec(2), Conv2DSpec(4, 3, stride=2), PoolSpec(2)),
    )
    model = Model.build(spec, seed=3, dtype=np.float64)
    conv1, pool1 = model.layers[0], model.layers[1]
    assert isinstance(conv1, Conv2D) and isinstance(pool1, MaxPool2D)
    assert conv1.slope_applied_downstream and pool1.relu_input
    rng = np.random.default_rng(14)
    for layer in model.owners.values():
        for p in layer.params.values():
            p += rng.standard_normal(p.shape) * 0.3  # biases of both signs: some windows are all ReLU zeros
    layers = model.layers[:-1]  # up to the output layer's logits
    x = rng.standard_normal((3, side, side, 1))

    def run(inp: np.ndarray) -> np.ndarray:
        for layer in layers:
            inp = layer.forward(inp, True)
        return inp

    readout = rng.standard_normal(run(x).shape)

    def loss() -> float:
        return float((run(x) * readout).sum())

    run(x)
    grad = readout
    for layer in reversed(layers):
        grad = layer.backward(grad)
    for layer in model.owners.values():
        for key, g in {k: g.copy() for k, g in layer.grads.items()}.items():
            assert rel_error(g, numeric_grad(loss, layer.params[key])) < RTOL, (layer.kind, key)
