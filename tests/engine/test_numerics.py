"""Numerical stability at extreme inputs and float32 by default."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from engine.activations import get_activation, log_softmax
from engine.losses import get_loss
from engine.model import Model, ModelSpec
from engine.spec import DenseSpec


@pytest.mark.parametrize("name", ["sigmoid", "softmax", "tanh"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_no_overflow_for_huge_pre_activations(name: str, dtype: type) -> None:
    z = np.array([[-1e4, -50.0, 0.0, 50.0, 1e4]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow RuntimeWarning fails the test
        a = get_activation(name).forward(z)
    assert np.isfinite(a).all()
    assert a.dtype == dtype
    if name == "sigmoid":
        np.testing.assert_allclose(a[0, [0, 2, 4]], [0.0, 0.5, 1.0])
    if name == "softmax":
        np.testing.assert_allclose(a.sum(), 1.0, rtol=1e-6)
        assert a[0, 4] == pytest.approx(1.0)


def test_cross_entropy_is_finite_for_confidently_wrong_logits() -> None:
    z = np.array([[1e4, -1e4, 0.0]])
    act = get_activation("softmax")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, grad = get_loss("cross_entropy", "softmax")(z, act.forward(z), np.array([1]), act)
        bce, _ = get_loss("cross_entropy", "sigmoid")(z, get_activation("sigmoid").forward(z), np.array([1]), act)
    assert loss == pytest.approx(2e4)
    assert np.isfinite(bce) and bce == pytest.approx(2e4, rel=1e-3)
    assert np.isfinite(grad).all()
    np.testing.assert_allclose(log_softmax(np.array([[0.0, 0.0]])), np.log([[0.5, 0.5]]))


def test_model_is_float32_by_default_and_float64_on_request() -> None:
    spec = ModelSpec.mlp(hidden=(DenseSpec(8),), input_size=4, output_size=3)
    m32 = Model.build(spec)
    assert all(p.dtype == np.float32 for p, _ in m32.parameters())
    logits, out = m32.forward(np.ones((2, 4), np.float32))
    assert logits.dtype == np.float32 and out.dtype == np.float32
    m64 = Model.build(spec, dtype=np.float64)
    assert all(p.dtype == np.float64 for p, _ in m64.parameters())


def test_initialisations_have_the_intended_scale() -> None:
    for init, expected in (("he", np.sqrt(2 / 784)), ("xavier", np.sqrt(2 / (784 + 256))), ("naive", 0.01)):
        spec = ModelSpec.mlp(hidden=(DenseSpec(256),), init=init)
        w = Model.build(spec, seed=1).dense_layers[0].params["W"]
        assert w.std() == pytest.approx(expected, rel=0.02)
