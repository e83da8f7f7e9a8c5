"""Every layer, activation and loss backward checked against central finite differences in float64."""

from __future__ import annotations

import numpy as np
import pytest

from engine.activations import get_activation
from engine.layers import ActivationLayer, Dense, Dropout
from engine.losses import get_loss
from engine.model import Model, ModelSpec
from engine.spec import DenseSpec
from tests.engine.gradcheck import RTOL, numeric_grad, rel_error


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "leaky_relu", "linear", "softmax"])
def test_activation_backward_matches_finite_differences(name: str) -> None:
    rng = np.random.default_rng(0)
    z = rng.standard_normal((4, 5))
    z[np.abs(z) < 1e-3] = 0.5  # keep ReLU's kink away from the probe points
    weights = rng.standard_normal((4, 5))  # a random linear read-out makes the loss sensitive to every output
    fn = get_activation(name)

    def loss() -> float:
        return float((fn.forward(z) * weights).sum())

    a = fn.forward(z)
    analytic = fn.backward(z, a, weights)
    assert rel_error(analytic, numeric_grad(loss, z)) < RTOL


def test_dense_backward_matches_finite_differences() -> None:
    rng = np.random.default_rng(1)
    layer = Dense(6, 4, init="xavier", rng=rng, dtype=np.float64)
    layer.params["b"][:] = rng.standard_normal(4)
    x = rng.standard_normal((3, 6))
    readout = rng.standard_normal((3, 4))

    def loss() -> float:
        return float((layer.forward(x, True) * readout).sum())

    layer.forward(x, True)
    dx = layer.backward(readout)
    assert rel_error(dx, numeric_grad(loss, x)) < RTOL
    for key in ("W", "b"):
        analytic = layer.grads[key].copy()
        assert rel_error(analytic, numeric_grad(loss, layer.params[key])) < RTOL


def test_first_dense_layer_skips_input_gradient_but_keeps_weight_gradients() -> None:
    rng = np.random.default_rng(2)
    layer = Dense(5, 3, rng=rng, dtype=np.float64, needs_input_grad=False)
    x = rng.standard_normal((2, 5))
    layer.forward(x, True)
    assert layer.backward(np.ones((2, 3))).shape == (2, 0)
    np.testing.assert_allclose(layer.grads["W"], x.T @ np.ones((2, 3)))


def test_dropout_backward_matches_finite_differences_for_a_fixed_mask() -> None:
    layer = Dropout(0.4, np.random.default_rng(3))
    x = np.random.default_rng(4).standard_normal((5, 7))
    readout = np.random.default_rng(5).standard_normal((5, 7))
    layer.forward(x, True)
    mask = layer._mask
    assert mask is not None

    def loss() -> float:
        return float((x * mask * readout).sum())

    assert rel_error(layer.backward(readout), numeric_grad(loss, x)) < RTOL
    # inverted dropout keeps the expected activation: kept units are scaled by 1 / (1 - p)
    np.testing.assert_allclose(np.unique(mask), [0.0, 1 / 0.6])
    assert layer.forward(x, False) is x


@pytest.mark.parametrize(
    ("loss_name", "output"),
    [
        ("cross_entropy", "softmax"),
        ("cross_entropy", "sigmoid"),
        ("mse", "sigmoid"),
        ("mse", "softmax"),
        ("mse", "linear"),
    ],
)
def test_loss_gradient_wrt_logits_matches_finite_differences(loss_name: str, output: str) -> None:
    rng = np.random.default_rng(6)
    z = rng.standard_normal((4, 10)) * 2
    labels = rng.integers(0, 10, 4)
    act = get_activation(output)
    loss_fn = get_loss(loss_name, output)

    def loss() -> float:
        return loss_fn(z, act.forward(z), labels, act)[0]

    _, analytic = loss_fn(z, act.forward(z), labels, act)
    assert rel_error(analytic, numeric_grad(loss, z)) < RTOL


def test_fused_softmax_cross_entropy_gradient_is_p_minus_y() -> None:
    z = np.array([[1.0, 2.0, 3.0]])
    act = get_activation("softmax")
    p = act.forward(z)
    _, grad = get_loss("cross_entropy", "softmax")(z, p, np.array([2]), act)
    np.testing.assert_allclose(grad, p - np.array([[0, 0, 1.0]]))


@pytest.mark.parametrize(
    "spec",
    [
        ModelSpec.mlp(hidden=(DenseSpec(5, "tanh"), DenseSpec(4, "leaky_relu")), input_size=6, output_size=3),
        ModelSpec.mlp(hidden=(DenseSpec(5, "sigmoid"),), input_size=6, output_size=3, loss="mse", init="naive"),
        ModelSpec.mlp(hidden=(), input_size=6, output_size=3, output_activation="sigmoid"),
    ],
)
def test_whole_model_parameter_gradients_match_finite_differences(spec: ModelSpec) -> None:
    model = Model.build(spec, seed=7, dtype=np.float64)
    rng = np.random.default_rng(8)
    for p, _ in model.parameters():
        p[...] = rng.standard_normal(p.shape) * 0.5  # non-zero biases too
    x = rng.standard_normal((4, 6))
    labels = rng.integers(0, 3, 4)

    def loss() -> float:
        logits, out = model.forward(x, training=True)
        return model.loss(logits, out, labels, model.output_activation.fn)[0]

    model.loss_and_backward(x, labels)
    for p, g in model.parameters():
        analytic = g.copy()
        assert rel_error(analytic, numeric_grad(loss, p)) < RTOL


def test_activation_layer_passes_gradient_through() -> None:
    layer = ActivationLayer("relu")
    out = layer.forward(np.array([[-1.0, 2.0]]), True)
    np.testing.assert_array_equal(out, [[0.0, 2.0]])
    np.testing.assert_array_equal(layer.backward(np.array([[5.0, 5.0]])), [[0.0, 5.0]])
