"""The training loop on small synthetic data: learning, events, reproducibility, control, divergence."""

from __future__ import annotations

import threading

import numpy as np

from engine.model import Model, ModelSpec
from engine.spec import DenseSpec
from engine.trainer import BatchProgress, Dataset, EpochEnd, Event, RunEnd, StateChange, TrainConfig, Trainer

SPEC = ModelSpec.mlp(hidden=(DenseSpec(32, dropout=0.1),), input_size=20, output_size=4)


def blobs(n: int = 2000, seed: int = 0) -> Dataset:
    """Four Gaussian clusters in 20 dimensions: learnable to ~100% by any sensible network."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((4, 20)) * 3
    y = rng.integers(0, 4, n)
    x = (centres[y] + rng.standard_normal((n, 20))).astype(np.float32)
    return Dataset(x[: n // 2], y[: n // 2], x[n // 2 :], y[n // 2 :])


def train(config: TrainConfig, data: Dataset | None = None, seed: int = 0) -> tuple[Trainer, list[Event]]:
    events: list[Event] = []
    trainer = Trainer(Model.build(SPEC, seed=seed), config, data or blobs(), on_event=events.append)
    trainer.run()
    return trainer, events


def test_learns_and_reports_every_epoch() -> None:
    _trainer, events = train(TrainConfig(epochs=3, batch_size=32, progress_every=0.0))
    epochs = [e for e in events if isinstance(e, EpochEnd)]
    assert [e.epoch for e in epochs] == [1, 2, 3]
    assert epochs[-1].test_accuracy > 0.95
    assert epochs[-1].train_loss < epochs[0].train_loss
    last = epochs[-1]
    assert len(last.histograms) == 2 and last.histograms[0].shape == (20, 32)
    for h in last.histograms:
        for hist in (h.weights, h.biases, h.gradients):
            assert len(hist.edges) == len(hist.counts) + 1
        assert sum(h.weights.counts) == 20 * 32 or sum(h.weights.counts) == 32 * 4
    assert np.array(last.confusion).sum() == 1000
    assert all(label != pred for _, label, pred in last.misclassified)
    progress = [e for e in events if isinstance(e, BatchProgress)]
    assert progress and progress[0].batches == 32 and np.isfinite(progress[0].loss)
    assert isinstance(events[-1], RunEnd) and events[-1].state == "finished"
    assert [e.state for e in events if isinstance(e, StateChange)] == ["running", "finished"]


def test_same_seed_gives_bit_identical_weights_and_another_seed_does_not() -> None:
    config = TrainConfig(epochs=2, batch_size=50, seed=5)
    a, _ = train(config, seed=5)
    b, _ = train(config, seed=5)
    c, _ = train(TrainConfig(epochs=2, batch_size=50, seed=6), seed=6)
    for (pa, _), (pb, _), (pc, _) in zip(a.model.parameters(), b.model.parameters(), c.model.parameters(), strict=True):
        np.testing.assert_array_equal(pa, pb)
        assert not np.array_equal(pa, pc)


def test_train_subset_uses_that_many_samples() -> None:
    trainer, events = train(TrainConfig(epochs=1, batch_size=10, train_subset=100, progress_every=0.0))
    assert trainer.data.x_train.shape[0] == 100
    assert next(e for e in events if isinstance(e, BatchProgress)).batches == 10


def test_pause_resume_and_stop_from_another_thread() -> None:
    paused = threading.Event()
    events: list[Event] = []

    def on_event(event: Event) -> None:
        events.append(event)
        if isinstance(event, StateChange) and event.state == "paused":
            paused.set()

    trainer = Trainer(Model.build(SPEC), TrainConfig(epochs=200, batch_size=8), blobs(), on_event=on_event)
    thread = threading.Thread(target=trainer.run)
    thread.start()
    trainer.pause()
    assert paused.wait(5)
    batches_seen = len(events)
    assert thread.is_alive()
    threading.Event().wait(0.2)
    assert len(events) == batches_seen  # nothing trains while paused
    trainer.resume()
    trainer.stop()
    thread.join(5)
    assert not thread.is_alive()
    end = events[-1]
    assert isinstance(end, RunEnd) and end.state == "stopped"
    states = [e.state for e in events if isinstance(e, StateChange)]
    assert states[:2] == ["running", "paused"] and states[-1] == "stopped"


def test_divergence_stops_the_run_and_keeps_finite_weights() -> None:
    trainer, events = train(TrainConfig(epochs=5, batch_size=32, optimizer="sgd", learning_rate=1e6))
    end = events[-1]
    assert isinstance(end, RunEnd) and end.state == "diverged"
    assert "learning rate" in end.message
    assert all(np.isfinite(p).all() for p, _ in trainer.model.parameters())
