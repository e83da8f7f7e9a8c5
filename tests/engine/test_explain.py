"""Attributions computed with the engine's own backward pass: the input gradient against finite differences,
integrated gradients' completeness, occlusion of the ink against occlusion of an empty corner."""

from __future__ import annotations

import numpy as np
import pytest

from engine.explain import integrated_gradients, occlusion, probability_gradient, saliency
from engine.model import Model
from engine.spec import Conv2DSpec, DenseSpec, ModelSpec, OutputSpec, PoolSpec


def _models() -> list[Model]:
    dense = Model.build(ModelSpec.mlp((DenseSpec(12, "tanh"),), input_size=36, output_size=4), seed=1, dtype=np.float64)
    conv = Model.build(
        ModelSpec(
            input_shape=(6, 6, 1), layers=(Conv2DSpec(3, 3, activation="tanh"), PoolSpec(2)), output=OutputSpec(4)
        ),
        seed=2,
        dtype=np.float64,
    )
    sigmoid = Model.build(
        ModelSpec.mlp((DenseSpec(5, "tanh"),), input_size=36, output_size=4, output_activation="sigmoid"),
        seed=3,
        dtype=np.float64,
    )
    return [dense, conv, sigmoid]


@pytest.mark.parametrize("model", _models(), ids=["dense", "conv", "sigmoid-output"])
def test_probability_gradient_matches_central_differences(model: Model) -> None:
    x = np.random.default_rng(0).random((1, 36))
    p, grad = probability_gradient(model, x, 2)
    assert p[0] == pytest.approx(model.probabilities(x)[0, 2])
    eps, numeric = 1e-6, np.zeros(36)
    for i in range(36):
        up, down = x.copy(), x.copy()
        up[0, i] += eps
        down[0, i] -= eps
        numeric[i] = (model.probabilities(up)[0, 2] - model.probabilities(down)[0, 2]) / (2 * eps)
    assert np.linalg.norm(grad[0] - numeric) <= 1e-6 * max(1.0, np.linalg.norm(numeric))
    sal = saliency(model, x[0], 2)
    assert sal.max() == pytest.approx(1.0) and np.argmax(sal) == np.argmax(np.abs(numeric))


@pytest.mark.parametrize("model", _models(), ids=["dense", "conv", "sigmoid-output"])
def test_integrated_gradients_sum_to_the_change_in_probability(model: Model) -> None:
    x = np.random.default_rng(1).random(36)
    attributions, p_x, p_base = integrated_gradients(model, x, 1)
    assert attributions.sum() == pytest.approx(p_x - p_base, rel=0.05, abs=1e-4)


def test_on_a_trained_digit_reader_ink_matters_more_than_an_empty_corner(trained_digit_model: tuple) -> None:
    model, image, label = trained_digit_model
    occ = occlusion(model, image, label, 28)
    ink = image.reshape(28, 28) > 0.5
    assert occ[ink].mean() > occ[:4, :4].mean()
    attributions, p_x, p_base = integrated_gradients(model, image, label)
    assert attributions.sum() == pytest.approx(p_x - p_base, rel=0.05)


@pytest.fixture(scope="module")
def trained_digit_model() -> tuple[Model, np.ndarray, int]:
    """A small dense network trained for one epoch on 5,000 real MNIST digits; a test digit it reads right
    with a probability below 0.99, so occlusion can still move it."""
    from engine.datasets.mnist import load_mnist, mnist_arrays
    from engine.trainer import TrainConfig, Trainer

    data = mnist_arrays(load_mnist(fetch=False))
    model = Model.build(ModelSpec.mlp((DenseSpec(64),)), seed=0)
    Trainer(model, TrainConfig(epochs=1, train_subset=5000, histogram_bins=0), data).run()
    probs = model.probabilities(data.x_test[:500])
    ok = np.flatnonzero((probs.argmax(axis=1) == data.y_test[:500]) & (probs.max(axis=1) < 0.99))
    i = int(ok[0])
    return model, data.x_test[i], int(data.y_test[i])
