"""The training loop: shuffled mini-batches reported through events. It runs in the thread that calls run();
pause, resume, stop, step and live changes (controls.request) come from any thread, between batches."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from engine.checkpoint import Checkpoint, capture, restore
from engine.events import (
    BatchProgress,
    EpochEnd,
    Event,
    HealthReport,
    RunEnd,
    StateChange,
    Tick,
    layer_histograms,
)
from engine.health import measure, weights_before
from engine.layers import Dropout
from engine.losses import get_loss
from engine.metrics import accuracy, confusion_matrix
from engine.model import Model
from engine.optimizers import make_optimizer
from engine.parallel import single_blas
from engine.schedules import learning_rate
from engine.steering import Change, Controls, apply_due

__all__ = [  # the events are defined in engine/events.py and re-exported: callers import them from here
    "BatchProgress",
    "Dataset",
    "EpochEnd",
    "Event",
    "HealthReport",
    "RunEnd",
    "StateChange",
    "Tick",
    "TrainConfig",
    "Trainer",
]


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10  # passes over the training set
    batch_size: int = 128  # samples per gradient step
    optimizer: str = "adam"  # "sgd", "momentum", "nesterov" or "adam"
    learning_rate: float = 1e-3  # base step size, before the schedule
    momentum: float = 0.9  # for "momentum" and "nesterov"
    beta1: float = 0.9  # Adam's first-moment decay
    beta2: float = 0.999  # Adam's second-moment decay
    schedule: str = "constant"  # "constant", "step", "cosine" or "onecycle"
    warmup: float = 0.3  # "onecycle": fraction of the run spent rising to learning_rate
    step_size: int = 5  # epochs between decays for the "step" schedule
    gamma: float = 0.5  # decay factor for the "step" schedule
    l2: float = 0.0  # weight decay coefficient on weight matrices (not biases)
    l1: float = 0.0  # L1 penalty coefficient on weight matrices (not biases)
    label_smoothing: float = 0.0  # softmax cross-entropy trains towards (1 - eps) one-hot + eps / classes
    seed: int = 0  # one integer makes the whole run reproducible, bit for bit
    train_subset: int | None = None  # train on this many samples (a seeded random subset); None = all
    histogram_bins: int = 30  # bins of every weight/bias/gradient histogram; 0 turns histograms off
    progress_every: float = 0.33  # seconds between BatchProgress events
    misclassified_kept: int = 24  # test samples listed per epoch as misclassified
    divergence_factor: float = 1e3  # a batch loss this many times the first batch's (or non-finite) = diverged
    health: bool = True  # per-layer health statistics at every progress tick
    replay: tuple[Change, ...] = ()  # changes to apply at their recorded batch indices (a run reproduced)
    tick_every: float = 0.0  # seconds between Tick events (live pictures of the model); 0 = none


@dataclass
class Dataset:
    x_train: np.ndarray  # (n, features) floats, flat rows (an image model reshapes them to NHWC)
    y_train: np.ndarray  # (n,) integer labels
    x_test: np.ndarray
    y_test: np.ndarray


@dataclass
class Trainer:
    model: Model
    config: TrainConfig
    data: Dataset
    on_event: Callable[[Event], None] = lambda event: None
    state: str = "ready"
    epochs_done: int = 0
    _resume: threading.Event = field(default_factory=threading.Event, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)

    def __post_init__(self) -> None:
        self._resume.set()
        c = self.config
        if c.epochs < 1 or c.batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")
        shuffle_seq, subset_seq = np.random.SeedSequence([c.seed, 1]).spawn(2)
        self._shuffle_rng = np.random.default_rng(shuffle_seq)
        n = self.data.x_train.shape[0]
        if c.train_subset is not None and c.train_subset < n:
            if c.train_subset < 1:
                raise ValueError("train_subset must be at least 1")
            keep = np.sort(np.random.default_rng(subset_seq).permutation(n)[: c.train_subset])
            self.data = Dataset(self.data.x_train[keep], self.data.y_train[keep], self.data.x_test, self.data.y_test)
        spec = self.model.spec
        # the training loss (test loss stays the model's plain one); refused unless softmax cross-entropy
        self._train_loss = get_loss(spec.loss, spec.output.activation, label_smoothing=c.label_smoothing)
        self.dropouts = {
            i: layer
            for layer, i in zip(self.model.layers, self.model.spec_index, strict=True)
            if isinstance(layer, Dropout)
        }
        hyper = {"learning_rate": c.learning_rate, "l2": c.l2, "l1": c.l1, "batch_size": c.batch_size}
        if c.optimizer != "adam":  # Adam has no momentum to change (its beta1 is not one)
            hyper["momentum"] = c.momentum if c.optimizer != "sgd" else 0.0
        self.controls = Controls({**hyper, **{f"dropout.{i}": d.rate for i, d in self.dropouts.items()}}, c.replay)
        self.step_count = 0  # batches trained, over the whole run
        self.start_epoch = 1  # a run restored from a checkpoint goes on after it
        self.optimizer = make_optimizer(
            c.optimizer,
            self.model.parameters(),
            lr=c.learning_rate,
            momentum=c.momentum,
            beta1=c.beta1,
            beta2=c.beta2,
            l2=c.l2,
            l1=c.l1,
        )

    # ---- control, from any thread --------------------------------------------------------------

    def pause(self) -> None:
        self._resume.clear()

    def resume(self) -> None:
        self._resume.set()

    def stop(self) -> None:
        self._stop.set()
        self._resume.set()  # a paused run must wake up to notice it was stopped

    def step(self, batches: int = 1) -> None:
        """Train exactly `batches` batches, then pause again (from a paused run)."""
        self.controls.steps_left = max(1, batches)
        self._resume.set()

    def set_rates(self, learning_rate: float | None = None, l1: float | None = None, l2: float | None = None) -> None:
        """Live learning rate and regularisation, from the next batch (recorded like any change)."""
        for name, value in (("learning_rate", learning_rate), ("l1", l1), ("l2", l2)):
            if value is not None:
                self.controls.request(name, value)

    # ---- checkpoints --------------------------------------------------------------------------------

    def checkpoint(self, epoch: int) -> Checkpoint:
        """The whole state after `epoch` (call it from the EpochEnd event, in the training thread)."""
        return capture(self, epoch)

    def restore(self, checkpoint: Checkpoint) -> None:
        """Continue from a checkpoint of a run with the same config (before run())."""
        restore(self, checkpoint)

    # ---- the loop ------------------------------------------------------------------------------

    def _set_state(self, state: str) -> None:
        self.state = state
        self.on_event(StateChange(state, self.step_count))

    def _lr(self, progress: float) -> float:
        c = self.config
        return learning_rate(
            c.schedule,
            self.controls.hyper["learning_rate"],  # the live base: a change moves the whole schedule
            progress,
            c.epochs,
            step_size=c.step_size,
            gamma=c.gamma,
            warmup=c.warmup,
        )

    def run(self) -> RunEnd:
        self._set_state("running")
        # over/invalid/divide are expected from a diverging run and checked after each batch
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"), single_blas(self.model.sharded):
            end = self._epochs()
            if self.config.tick_every > 0:
                self.on_event(Tick(self.step_count, self.epochs_done, "end"))
        self._set_state(end.state)
        self.on_event(end)
        return end

    def _epochs(self) -> RunEnd:
        c, d, model = self.config, self.data, self.model
        n = d.x_train.shape[0]
        optimizer, train_loss, x_train, y_train = self.optimizer, self._train_loss, d.x_train, d.y_train
        controls, hyper = self.controls, self.controls.hyper
        predicted = np.empty(n, np.intp)  # each batch's predictions, scored once at the epoch's end
        first_loss: float | None = None
        last_report = time.perf_counter()  # not reset per epoch: short epochs still report progress
        ticking, last_tick = c.tick_every > 0, last_report
        if ticking:
            self.on_event(Tick(self.step_count, self.epochs_done, "start"))
        for epoch in range(self.start_epoch, c.epochs + 1):
            started = time.perf_counter()
            snapshot = [p.copy() for p, _ in model.parameters()]  # the last weights known to be finite
            order = self._shuffle_rng.permutation(n)
            loss_sum, window_loss, window_batches = 0.0, 0.0, 0
            lo, b = 0, 0  # a sample cursor, not a batch index: the batch size may change between batches
            while lo < n:
                if not self._resume.is_set():
                    if ticking:
                        self.on_event(Tick(self.step_count, self.epochs_done, "pause"))
                    self._set_state("paused")
                    paused_at = time.perf_counter()
                    self._resume.wait()
                    started += time.perf_counter() - paused_at  # paused time is not training time
                    if not self._stop.is_set():
                        self._set_state("running")
                if self._stop.is_set():
                    return RunEnd("stopped", f"stopped by request during epoch {epoch}", self.epochs_done)
                for change in apply_due(self, epoch, epoch - 1 + lo / n):
                    self.on_event(change)
                size = int(hyper["batch_size"])
                hi = min(lo + size, n)
                idx = order[lo:hi]
                xb = x_train[idx]  # fancy indexing: ~10x faster than np.take(..., out=), which buffers a copy
                yb = y_train[idx]
                optimizer.lr = self._lr(epoch - 1 + lo / n)
                loss, logits = model.loss_and_backward(xb, yb, train_loss)
                if first_loss is None:
                    first_loss = max(loss, 1.0) if math.isfinite(loss) else 1.0
                if not math.isfinite(loss) or loss > first_loss * c.divergence_factor:
                    if not all(np.isfinite(p).all() for p, _ in model.parameters()):
                        for (p, _), saved in zip(model.parameters(), snapshot, strict=True):
                            p[...] = saved
                    return RunEnd(
                        "diverged",
                        f"the loss exploded to {loss:.4g} at epoch {epoch}, batch {b + 1} (it started at "
                        f"{first_loss:.3g}): the learning rate is probably too high. "
                        "The last finite weights were kept.",
                        self.epochs_done,
                    )
                now = time.perf_counter()
                report = now - last_report >= c.progress_every
                before = weights_before(model) if report and c.health else None
                optimizer.step()
                np.argmax(logits, axis=1, out=predicted[lo:hi])
                loss_sum += loss * (hi - lo)
                window_loss += loss
                window_batches += 1
                b, lo = b + 1, hi
                self.step_count += 1
                if report:
                    batches = b + -(-(n - lo) // size)
                    mean_loss = window_loss / window_batches
                    self.on_event(BatchProgress(epoch, b, batches, mean_loss, optimizer.lr, self.step_count))
                    if before is not None:
                        self.on_event(HealthReport(epoch, self.step_count, measure(model, before)))
                    window_loss, window_batches, last_report = 0.0, 0, now
                if ticking and now - last_tick >= c.tick_every:
                    self.on_event(Tick(self.step_count, self.epochs_done, "interval"))
                    last_tick = time.perf_counter()  # the tick's own work is not counted as training
                if controls.steps_left is not None:
                    controls.steps_left -= 1
                    if controls.steps_left <= 0:
                        controls.steps_left = None
                        self._resume.clear()  # step mode: pause before the next batch
            train_acc = accuracy(predicted, y_train[order])
            summary = self._epoch_end(epoch, started, loss_sum / n, train_acc)
            self.on_event(summary)
            if not np.isfinite(summary.test_loss):
                return RunEnd(
                    "diverged", f"the test loss became {summary.test_loss} at epoch {epoch}", self.epochs_done
                )
            self.epochs_done = epoch
        return RunEnd("finished", f"trained {self.epochs_done} epochs", self.epochs_done)

    def _epoch_end(self, epoch: int, started: float, train_loss: float, train_acc: float) -> EpochEnd:
        c, d, model = self.config, self.data, self.model
        test_loss, predicted = model.evaluate(d.x_test, d.y_test)  # under run()'s errstate; finiteness checked
        regression = d.y_test.dtype.kind == "f"  # float targets: no classes, no accuracy, no confusion matrix
        wrong = np.flatnonzero(predicted != d.y_test)[: c.misclassified_kept] if not regression else np.zeros(0, int)
        bins = c.histogram_bins
        hists = [layer_histograms(i, layer, bins) for i, layer in model.owners.items()] if bins > 0 else []
        return EpochEnd(
            epoch=epoch,
            epochs=c.epochs,
            train_loss=train_loss,
            train_accuracy=train_acc if not regression else 0.0,
            test_loss=test_loss,
            test_accuracy=accuracy(predicted, d.y_test) if not regression else 0.0,
            seconds=time.perf_counter() - started,
            learning_rate=self._lr(epoch),
            histograms=hists,
            confusion=[] if regression else confusion_matrix(predicted, d.y_test, model.spec.output.units).tolist(),
            misclassified=[(int(i), int(d.y_test[i]), int(predicted[i])) for i in wrong],
        )
