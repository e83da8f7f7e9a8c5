"""The speed work: flat parameter buffers and the fused optimizer path (same arithmetic as pair by pair, for any
layer with params/grads dicts), in-place ReLU, label smoothing, the one-cycle schedule."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from engine.activations import get_activation, log_softmax
from engine.flat import find_flat, flatten
from engine.layers import Layer
from engine.losses import get_loss
from engine.model import Model, ModelSpec
from engine.optimizers import make_optimizer
from engine.schedules import learning_rate
from engine.spec import DenseSpec
from engine.trainer import Dataset, TrainConfig, Trainer


class FakeConv(Layer):
    """Parameters shaped like a conv layer's (4-D weights) and a batchnorm's (gamma, beta, and a buffer)."""

    def __init__(self, rng: np.random.Generator, dtype: type) -> None:
        super().__init__()
        self.params = {"W": rng.standard_normal((3, 3, 2, 4)).astype(dtype), "b": rng.standard_normal(4).astype(dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}


class FakeNorm(Layer):
    def __init__(self, dtype: type) -> None:
        super().__init__()
        self.params = {"gamma": np.ones(4, dtype), "beta": np.zeros(4, dtype)}
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.buffers = {"running_mean": np.zeros(4, dtype)}


def layers(seed: int, dtype: type = np.float64) -> list[Layer]:
    rng = np.random.default_rng(seed)
    return [FakeConv(rng, dtype), FakeNorm(dtype), FakeConv(rng, dtype)]


def pairs(ls: list[Layer]) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(layer.params[k], layer.grads[k]) for layer in ls for k in layer.params]


def test_flatten_keeps_values_and_puts_weights_first() -> None:
    plain, flat_layers = layers(0), layers(0)
    buffer_before = flat_layers[1].buffers["running_mean"]
    flat = flatten(flat_layers)
    assert flat is not None and flat.params.size == sum(p.size for p, _ in pairs(plain))
    assert flat.decayed == 2 * 3 * 3 * 2 * 4  # the two 4-D weight tensors, then every 1-D parameter
    for (a, _), (b, g) in zip(pairs(plain), pairs(flat_layers), strict=True):
        np.testing.assert_array_equal(a, b)
        assert b.base is flat.params and g.base is flat.grads and b.shape == a.shape
    assert flat_layers[1].buffers["running_mean"] is buffer_before  # buffers are not trained: left alone
    found = find_flat(pairs(flat_layers))
    assert found is not None and found.decayed == flat.decayed
    assert find_flat(pairs(flat_layers)[:-1]) is None  # a subset: updated pair by pair, the rest untouched
    assert find_flat(pairs(plain)) is None


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam"])
@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_fused_update_matches_pair_by_pair(name: str, l2: float) -> None:
    plain, fused = layers(1), layers(1)
    flatten(fused)
    opt_plain = make_optimizer(name, pairs(plain), lr=0.01, l2=l2)
    opt_fused = make_optimizer(name, pairs(fused), lr=0.01, l2=l2)
    assert opt_fused.fused and not opt_plain.fused
    rng = np.random.default_rng(2)
    for _ in range(4):
        for (_, ga), (_, gb) in zip(pairs(plain), pairs(fused), strict=True):
            ga[...] = gb[...] = rng.standard_normal(ga.shape)
        opt_plain.step()
        opt_fused.step()
    for (a, ga), (b, gb) in zip(pairs(plain), pairs(fused), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(ga, gb)  # L2 never writes into the layers' gradients


def test_l2_on_flat_buffers_decays_weights_only() -> None:
    ls = layers(3)
    flatten(ls)
    before = [p.copy() for p, _ in pairs(ls)]
    make_optimizer("sgd", pairs(ls), lr=0.1, l2=0.5).step()  # gradients are zero: only decay moves anything
    for (p, _), old in zip(pairs(ls), before, strict=True):
        np.testing.assert_allclose(p, old * (1 - 0.05) if p.ndim > 1 else old)


def test_model_parameters_are_views_of_one_buffer_and_training_uses_the_fused_path() -> None:
    model = Model.build(ModelSpec.mlp(hidden=(DenseSpec(8),), input_size=5, output_size=3), seed=0)
    assert model.flat is not None
    assert all(p.base is model.flat.params and g.base is model.flat.grads for p, g in model.parameters())
    rng = np.random.default_rng(0)
    x = rng.random((40, 5)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    trainer = Trainer(model, TrainConfig(epochs=1, batch_size=8), Dataset(x, y, x, y))
    assert trainer.optimizer.fused
    trainer.run()
    assert trainer.epochs_done == 1


def test_relu_model_gradients_match_finite_differences() -> None:
    model = Model.build(
        ModelSpec.mlp(hidden=(DenseSpec(6), DenseSpec(5)), input_size=4, output_size=3), dtype=np.float64
    )
    rng = np.random.default_rng(4)
    x, labels = rng.standard_normal((7, 4)), rng.integers(0, 3, 7)
    for p, _ in model.parameters():  # zero biases would put a sample whose units all died exactly on a kink
        p[...] = rng.standard_normal(p.shape)
    model.loss_and_backward(x, labels)
    for p, g in model.parameters():
        analytic, numeric = g.copy(), np.zeros_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + 1e-6
            up = model.loss.value(*model.forward(x), labels, model.output_activation.fn)
            p[i] = old - 1e-6
            down = model.loss.value(*model.forward(x), labels, model.output_activation.fn)
            p[i] = old
            numeric[i] = (up - down) / 2e-6
        np.testing.assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)


def test_label_smoothing_loss_and_gradient() -> None:
    rng = np.random.default_rng(5)
    z, labels, eps = rng.standard_normal((6, 10)) * 3, rng.integers(0, 10, 6), 0.1
    act = get_activation("softmax")
    loss_fn = get_loss("cross_entropy", "softmax", label_smoothing=eps)
    target = np.full((6, 10), eps / 10)
    target[np.arange(6), labels] += 1 - eps
    loss, grad = loss_fn(z, act.forward(z), labels, act)
    assert loss == pytest.approx(-(target * log_softmax(z)).sum() / 6, rel=1e-12)
    np.testing.assert_allclose(grad, (act.forward(z) - target) / 6, atol=1e-15)
    assert loss_fn.value(z, act.forward(z), labels, act) == pytest.approx(loss, rel=1e-12)
    with pytest.raises(ValueError, match="label smoothing"):
        get_loss("mse", "softmax", label_smoothing=0.1)


def test_onecycle_schedule() -> None:
    lr = 3e-3
    assert learning_rate("onecycle", lr, 0.0, 10, warmup=0.3) == pytest.approx(lr / 25)
    assert learning_rate("onecycle", lr, 3.0, 10, warmup=0.3) == pytest.approx(lr)
    assert learning_rate("onecycle", lr, 10.0, 10, warmup=0.3) == pytest.approx(lr / 1e4)
    rates = [learning_rate("onecycle", lr, e / 10, 10, warmup=0.3) for e in range(101)]
    peak = int(np.argmax(rates))
    assert peak == 30 and all(a <= b for a, b in itertools.pairwise(rates[: peak + 1]))
    assert all(a >= b for a, b in itertools.pairwise(rates[peak:]))
    assert learning_rate("onecycle", lr, 0.0, 10, warmup=0.0) == pytest.approx(lr)
