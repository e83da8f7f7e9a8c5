"""The generated 2-D data sets (engine/datasets/toy.py), MSE on float targets, L1, and the trainer's step mode,
live rates and ticks."""

from __future__ import annotations

import numpy as np
import pytest

from engine.datasets import REGISTRY, toy
from engine.losses import get_loss
from engine.model import Model, ModelSpec
from engine.optimizers import SGD
from engine.spec import DenseSpec
from engine.trainer import Dataset, StateChange, Tick, TrainConfig, Trainer
from tests.engine.test_gradients import numeric_grad, rel_error

NAMES = (*toy.CLASSIFICATION, *toy.REGRESSION)


@pytest.mark.parametrize("name", NAMES)
def test_every_toy_set_is_registered_seeded_and_on_the_square(name: str) -> None:
    info = REGISTRY[name]
    options = {"points": 400, "noise": 0.2, "test_fraction": 0.25, "features": ["x1", "x2"], "seed": 7}
    a, b = info.load(None, options), info.load(None, options)  # type: ignore[arg-type]
    for field in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert a.x_train.shape == (300, 2) and a.x_test.shape == (100, 2)
    assert a.x_train.dtype == np.float32
    assert np.abs(a.x_train).max() <= toy.EXTENT
    other = info.load(None, {**options, "seed": 8})  # type: ignore[arg-type]
    assert not np.array_equal(a.x_train, other.x_train)
    if name in toy.REGRESSION:
        assert info.task == "regression" and info.classes == 1 and a.y_train.dtype.kind == "f"
    else:
        assert info.task == "classification" and info.classes == 2
        assert set(np.unique(a.y_train)) == {0, 1}
        assert 0.3 < a.y_train.mean() < 0.7  # both classes, roughly balanced


def test_shapes_follow_the_playground() -> None:
    pts, labels, _ = toy.generate("circle", {"points": 1000})
    r = np.hypot(pts[:, 0], pts[:, 1])
    assert np.all(r[labels] < 2.5) and np.all(r[~labels] >= 3.5) and r.max() <= 5
    pts, labels, _ = toy.generate("xor", {"points": 1000})
    assert np.all((pts[:, 0] * pts[:, 1] >= 0) == labels) and np.abs(pts).min() >= 0.3
    pts, labels, _ = toy.generate("gauss", {"points": 1000})
    assert np.allclose(pts[labels].mean(axis=0), 2, atol=0.2) and np.allclose(pts[~labels].mean(axis=0), -2, atol=0.2)
    pts, labels, _ = toy.generate("spiral", {"points": 1000})
    assert np.hypot(pts[:, 0], pts[:, 1]).max() <= 5
    pts, target, _ = toy.generate("plane", {"points": 1000})
    assert np.allclose(target, (pts[:, 0] + pts[:, 1]) / 10)
    assert toy.multigauss_target(np.array([-4.0, 0.0]), np.array([2.5, 2.5])).tolist() == [1.0, -1.0]


def test_features_and_input_shape() -> None:
    info = REGISTRY["spiral"]
    assert info.input_shape_for is not None
    assert info.input_shape_for({"features": ["sin_x2", "x1"]}) == (2,)
    data = info.load(None, {"features": ["sin_x1", "x1", "x1x2", "x2_sq"]})  # type: ignore[arg-type]
    pts, _, n_test = toy.generate("spiral", {})
    x1, x2 = pts[: pts.shape[0] - n_test, 0], pts[: pts.shape[0] - n_test, 1]
    expected = np.stack([x1, x2 * x2, x1 * x2, np.sin(x1)], axis=1).astype(np.float32)  # canonical order
    assert np.array_equal(data.x_train, expected)


def test_grid_points_rows_from_top_columns_from_left() -> None:
    g = toy.grid_points(4)
    assert g.shape == (16, 2)
    assert g[0].tolist() == [-4.5, 4.5] and g[3].tolist() == [4.5, 4.5] and g[15].tolist() == [4.5, -4.5]


def test_mse_on_float_targets_gradient() -> None:
    rng = np.random.default_rng(3)
    z = rng.standard_normal((5, 1))
    y = rng.standard_normal(5)
    loss = get_loss("mse", "linear")
    from engine.activations import get_activation

    linear = get_activation("linear")
    value, grad = loss(z, z, y, linear)
    assert value == pytest.approx(0.5 * np.sum((z[:, 0] - y) ** 2) / 5)
    assert rel_error(grad, numeric_grad(lambda: loss(z, z, y, linear)[0], z)) < 1e-6


def test_regression_model_learns_a_plane() -> None:
    spec = ModelSpec.mlp((DenseSpec(8, "tanh"),), input_size=2, output_size=1, output_activation="linear", loss="mse")
    data = REGISTRY["plane"].load(None, {"points": 400})  # type: ignore[arg-type]
    trainer = Trainer(Model.build(spec, seed=0), TrainConfig(epochs=30, batch_size=10, learning_rate=0.01), data)
    end = trainer.run()
    assert end.state == "finished"
    loss, _ = trainer.model.evaluate(data.x_test, data.y_test)
    assert loss < 0.01


def test_l1_adds_sign_of_weights_not_biases() -> None:
    w, gw = np.array([[1.0, -2.0, 0.0]]), np.zeros((1, 3))
    b, gb = np.array([3.0]), np.zeros(1)
    SGD([(w, gw), (b, gb)], lr=0.1, l1=0.5).step()
    assert w.tolist() == [[0.95, -1.95, 0.0]] and b.tolist() == [3.0]
    with pytest.raises(ValueError, match="l1"):
        SGD([(w, gw)], lr=0.1, l1=-1)


def _toy_trainer(**config: object) -> Trainer:
    spec = ModelSpec.mlp((DenseSpec(4, "tanh"),), input_size=2, output_size=2)
    data = REGISTRY["xor"].load(None, {"points": 100})  # type: ignore[arg-type]
    return Trainer(Model.build(spec, seed=1), TrainConfig(batch_size=10, **config), data)  # type: ignore[arg-type]


def test_step_mode_trains_exactly_n_batches_then_pauses() -> None:
    import threading

    trainer = _toy_trainer(epochs=3, tick_every=1e-9)
    events: list[object] = []
    paused = threading.Event()

    def on_event(event: object) -> None:
        events.append(event)
        if isinstance(event, StateChange) and event.state == "paused":
            paused.set()

    trainer.on_event = on_event
    trainer.pause()
    thread = threading.Thread(target=trainer.run)
    thread.start()
    assert paused.wait(5)
    assert trainer.optimizer.t == 0
    for expected in (3, 10):
        paused.clear()
        trainer.step(expected - trainer.optimizer.t)
        assert paused.wait(5)
        assert trainer.optimizer.t == expected
        ticks = [e for e in events if isinstance(e, Tick)]
        assert ticks[-1].step == expected  # the picture after a step shows that step
    trainer.set_rates(learning_rate=0.5, l1=0.01)  # applied from the next batch
    trainer.resume()
    thread.join(10)
    assert trainer.state == "finished" and trainer.optimizer.lr == 0.5 and trainer.optimizer.l1 == 0.01


def test_same_seed_same_weights_and_training_bit_for_bit() -> None:
    a, b = _toy_trainer(epochs=2), _toy_trainer(epochs=2)
    a.run(), b.run()
    for (p, _), (q, _) in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert np.array_equal(p, q)


def test_dataset_is_a_plain_dataset() -> None:
    assert isinstance(REGISTRY["moons"].load(None, {}), Dataset)  # type: ignore[arg-type]
