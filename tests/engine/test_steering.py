"""Steering a run: live changes applied between batches and replayed bit for bit, step mode, checkpoints that
a fork continues from exactly, and the per-layer health statistics."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from engine.events import HealthReport
from engine.model import Model, ModelSpec
from engine.spec import DenseSpec
from engine.steering import AppliedChange, Change, ChangeError
from engine.trainer import BatchProgress, Dataset, Event, TrainConfig, Trainer

SPEC = ModelSpec.mlp((DenseSpec(16, dropout=0.0), DenseSpec(8, "tanh")), input_size=10, output_size=3)


def data() -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.random((300, 10), dtype=np.float32)
    y = (x[:, 0] * 3).astype(np.int64).clip(0, 2)
    return Dataset(x, y, x[:60], y[:60])


def weights(model: Model) -> list[np.ndarray]:
    return [p.copy() for p, _ in model.parameters()]


def test_live_changes_are_recorded_and_replay_to_identical_weights() -> None:
    config = TrainConfig(epochs=3, batch_size=20, learning_rate=0.01, seed=3, histogram_bins=0, progress_every=0)
    applied: list[AppliedChange] = []
    model = Model.build(SPEC, seed=3)
    trainer: Trainer

    def on_event(event: Event) -> None:
        if isinstance(event, AppliedChange):
            applied.append(event)
        if isinstance(event, BatchProgress) and trainer.step_count == 7:  # as if a user clicked mid-epoch
            trainer.controls.request("learning_rate", 0.05)
            trainer.controls.request("batch_size", 32)
            trainer.controls.request("dropout.0", 0.3)
            trainer.controls.request("l2", 0.001)

    trainer = Trainer(model, config, data(), on_event=on_event)
    trainer.run()
    assert [(c.step, c.name, c.old, c.new) for c in applied] == [
        (7, "learning_rate", 0.01, 0.05),
        (7, "batch_size", 20, 32),
        (7, "dropout.0", 0.0, 0.3),
        (7, "l2", 0.0, 0.001),
    ]
    replay = tuple(Change(c.step, c.name, c.new) for c in applied)
    again = Model.build(SPEC, seed=3)
    Trainer(again, TrainConfig(**{**config.__dict__, "replay": replay}), data()).run()
    for a, b in zip(weights(model), weights(again), strict=True):
        np.testing.assert_array_equal(a, b)
    untouched = Model.build(SPEC, seed=3)
    Trainer(untouched, config, data()).run()
    assert not np.array_equal(weights(untouched)[0], weights(model)[0])  # the changes did change the run


def test_bad_changes_are_refused_with_the_reason() -> None:
    trainer = Trainer(Model.build(SPEC), TrainConfig(epochs=1), data())
    for name, value, reason in [
        ("learning_rate", -1.0, "between"),
        ("batch_size", 2.5, "whole number"),
        ("beta1", 0.5, "cannot change"),
        ("dropout.7", 0.1, "does not exist"),
        ("momentum", 0.5, "does not exist"),  # Adam has no momentum
        ("l2", float("nan"), "finite"),
    ]:
        with pytest.raises(ChangeError, match=reason):
            trainer.controls.request(name, value)


def test_step_mode_trains_exactly_n_batches_then_pauses() -> None:
    trainer = Trainer(Model.build(SPEC), TrainConfig(epochs=50, batch_size=10, histogram_bins=0), data())
    trainer.pause()
    thread = threading.Thread(target=trainer.run)
    thread.start()
    try:
        for expected in (5, 6, 106):
            trainer.step(expected - trainer.step_count)
            deadline = 0
            while (trainer.state != "paused" or trainer.step_count != expected) and deadline < 500:
                threading.Event().wait(0.01)
                deadline += 1
            assert trainer.step_count == expected and trainer.state == "paused"
    finally:
        trainer.stop()
        thread.join(10)


def test_a_fork_from_a_checkpoint_retraces_the_original_exactly() -> None:
    config = TrainConfig(epochs=4, batch_size=25, seed=5, histogram_bins=0)
    spec = ModelSpec.mlp((DenseSpec(16, dropout=0.2),), input_size=10, output_size=3)  # dropout: its RNG too
    checkpoints = {}
    original = Model.build(spec, seed=5)
    trainer: Trainer

    def keep(event: Event) -> None:
        if type(event).__name__ == "EpochEnd":
            checkpoints[event.epoch] = trainer.checkpoint(event.epoch).to_bytes()  # type: ignore[union-attr]

    trainer = Trainer(original, config, data(), on_event=keep)
    trainer.run()
    from engine.checkpoint import Checkpoint

    fork = Model.build(spec, seed=5)
    forked = Trainer(fork, config, data())
    forked.restore(Checkpoint.from_bytes(checkpoints[2]))
    end = forked.run()
    assert end.state == "finished" and forked.epochs_done == 4 and forked.step_count == trainer.step_count
    for a, b in zip(weights(original), weights(fork), strict=True):
        np.testing.assert_array_equal(a, b)


def test_health_reports_dead_relus_and_update_ratios() -> None:
    reports: list[HealthReport] = []
    model = Model.build(SPEC, seed=1)
    model.owners[0].params["b"][:8] = -100.0  # half the first layer's ReLUs can never fire: dead
    config = TrainConfig(
        epochs=1, batch_size=30, progress_every=0, histogram_bins=0, optimizer="sgd", learning_rate=0.1
    )
    Trainer(model, config, data(), on_event=lambda e: reports.append(e) if isinstance(e, HealthReport) else None).run()
    first = reports[-1].layers[0]
    assert first.activation == "relu" and 0.5 <= first.dead < 1  # the 8 forced ones, perhaps one more
    tanh = reports[-1].layers[1]
    assert tanh.activation == "tanh" and 0 <= tanh.saturated <= 1 and tanh.dead == 0
    assert all(1e-6 < layer.update_ratio < 1 and layer.grad_norm > 0 for layer in reports[-1].layers)
    assert [layer.layer for layer in reports[-1].layers] == [0, 1, 2]
