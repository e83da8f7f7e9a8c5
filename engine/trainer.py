"""The training loop: epochs of shuffled mini-batches, reported through events rather than prints.

A ``Trainer`` runs in whatever thread calls ``run()``; ``pause()``, ``resume()``, ``stop()``, ``step(n)`` (train
exactly n batches, then pause) and ``set_rates()`` (learning rate, L1, L2 from the next batch) may be called from
any other thread and take effect between batches.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from engine.layers import Layer
from engine.metrics import Histogram, accuracy, confusion_matrix
from engine.model import Model
from engine.optimizers import make_optimizer
from engine.schedules import learning_rate


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10  # passes over the training set
    batch_size: int = 128  # samples per gradient step
    optimizer: str = "adam"  # "sgd", "momentum", "nesterov" or "adam"
    learning_rate: float = 1e-3  # base step size, before the schedule
    momentum: float = 0.9  # for "momentum" and "nesterov"
    beta1: float = 0.9  # Adam's first-moment decay
    beta2: float = 0.999  # Adam's second-moment decay
    schedule: str = "constant"  # "constant", "step" or "cosine"
    step_size: int = 5  # epochs between decays for the "step" schedule
    gamma: float = 0.5  # decay factor for the "step" schedule
    l2: float = 0.0  # weight decay coefficient on weight matrices (not biases)
    l1: float = 0.0  # L1 penalty coefficient on weight matrices (not biases)
    seed: int = 0  # one integer makes the whole run reproducible, bit for bit
    train_subset: int | None = None  # train on this many samples (a seeded random subset); None = all
    histogram_bins: int = 30  # bins of every weight/bias/gradient histogram; 0 turns histograms off
    progress_every: float = 0.33  # seconds between BatchProgress events
    misclassified_kept: int = 24  # test samples listed per epoch as misclassified
    divergence_factor: float = 1e3  # a batch loss this many times the first batch's (or non-finite) = diverged
    tick_every: float = 0.0  # seconds between Tick events (live pictures); 0 = none


# ---- events -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchProgress:
    epoch: int  # 1-based epoch being trained
    batch: int  # batches done in this epoch
    batches: int  # batches per epoch
    loss: float  # mean training loss over the batches since the previous BatchProgress
    learning_rate: float


@dataclass(frozen=True)
class LayerHistograms:
    layer: int  # index in the spec's layer list (the output layer is the last)
    type: str  # the spec layer's type: dense, conv2d, batchnorm
    shape: tuple[int, ...]  # of its weights (W, or gamma for batchnorm)
    weights: Histogram
    biases: Histogram
    gradients: Histogram  # of the weight gradients at the epoch's last batch


@dataclass(frozen=True)
class EpochEnd:
    epoch: int
    epochs: int
    train_loss: float  # mean loss over the epoch's batches (dropout active)
    train_accuracy: float  # accuracy on those batches as they were trained
    test_loss: float
    test_accuracy: float
    seconds: float  # wall time of the epoch, evaluation included
    learning_rate: float  # at the end of the epoch
    histograms: list[LayerHistograms]
    confusion: list[list[int]]  # test set, rows true, columns predicted
    misclassified: list[tuple[int, int, int]]  # (test index, true label, predicted)


@dataclass(frozen=True)
class Tick:
    """Sent every ``tick_every`` seconds of training, before training starts, whenever the run pauses and at
    its end: a moment to look at the model (from the training thread, so it is never mid-step)."""

    step: int  # optimizer steps taken so far
    epoch: int  # epochs finished
    reason: str = "interval"  # "start", "interval", "pause" or "end"


@dataclass(frozen=True)
class StateChange:
    state: str  # running, paused, finished, stopped, diverged


@dataclass(frozen=True)
class RunEnd:
    state: str  # finished, stopped or diverged
    message: str
    epochs_done: int


Event = BatchProgress | EpochEnd | StateChange | RunEnd | Tick


def layer_histograms(index: int, layer: Layer, bins: int) -> LayerHistograms:
    """A layer's first parameter is its weights (W, or gamma), its second its biases (b, or beta)."""
    (w_name, weights), (_, biases) = list(layer.params.items())[:2]
    return LayerHistograms(
        layer=index,
        type=layer.kind,
        shape=tuple(int(n) for n in weights.shape),
        weights=Histogram.of(weights, bins),
        biases=Histogram.of(biases, bins),
        gradients=Histogram.of(layer.grads[w_name], bins),
    )


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
    _steps_left: int | None = field(default=None, repr=False)  # step mode: batches to train before pausing

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
        """Train exactly this many batches, then pause."""
        self._steps_left = max(1, batches)
        self._resume.set()

    def set_rates(self, learning_rate: float | None = None, l1: float | None = None, l2: float | None = None) -> None:
        """Applied from the next batch (the schedule then scales the new base learning rate)."""
        c = self.config
        self.config = dataclasses.replace(
            c,
            learning_rate=c.learning_rate if learning_rate is None else learning_rate,
            l1=c.l1 if l1 is None else l1,
            l2=c.l2 if l2 is None else l2,
        )
        if l1 is not None:
            self.optimizer.l1 = l1
        if l2 is not None:
            self.optimizer.l2 = l2

    # ---- the loop ------------------------------------------------------------------------------

    def _set_state(self, state: str) -> None:
        self.state = state
        self.on_event(StateChange(state))

    def _lr(self, progress: float) -> float:
        c = self.config
        return learning_rate(c.schedule, c.learning_rate, progress, c.epochs, step_size=c.step_size, gamma=c.gamma)

    def run(self) -> RunEnd:
        c, d, model = self.config, self.data, self.model
        n = d.x_train.shape[0]
        batches = -(-n // c.batch_size)
        self._set_state("running")
        end: RunEnd | None = None
        first_loss: float | None = None
        last_report = time.perf_counter()  # not reset per epoch: short epochs still report progress
        ticking = c.tick_every > 0
        last_tick = last_report
        if ticking:
            self.on_event(Tick(self.optimizer.t, self.epochs_done, "start"))
        for epoch in range(1, c.epochs + 1):
            started = time.perf_counter()
            snapshot = [p.copy() for p, _ in model.parameters()]  # the last weights known to be finite
            order = self._shuffle_rng.permutation(n)
            loss_sum, correct, seen = 0.0, 0, 0
            window_loss, window_batches = 0.0, 0
            for b in range(batches):
                if not self._resume.is_set():
                    if ticking:
                        self.on_event(Tick(self.optimizer.t, self.epochs_done, "pause"))
                    self._set_state("paused")
                    paused_at = time.perf_counter()
                    self._resume.wait()
                    started += time.perf_counter() - paused_at  # paused time is not training time
                    if not self._stop.is_set():
                        self._set_state("running")
                if self._stop.is_set():
                    end = RunEnd("stopped", f"stopped by request during epoch {epoch}", self.epochs_done)
                    break
                idx = order[b * c.batch_size : (b + 1) * c.batch_size]
                xb = d.x_train[idx]  # fancy indexing: ~10x faster than np.take(..., out=), which buffers a copy
                yb = d.y_train[idx]
                self.optimizer.lr = self._lr(epoch - 1 + b / batches)
                with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # checked just below
                    loss, logits = model.loss_and_backward(xb, yb)
                if first_loss is None:
                    first_loss = max(loss, 1.0) if np.isfinite(loss) else 1.0
                if not np.isfinite(loss) or loss > first_loss * c.divergence_factor:
                    if not all(np.isfinite(p).all() for p, _ in model.parameters()):
                        for (p, _), saved in zip(model.parameters(), snapshot, strict=True):
                            p[...] = saved
                    end = RunEnd(
                        "diverged",
                        f"the loss exploded to {loss:.4g} at epoch {epoch}, batch {b + 1} (it started at "
                        f"{first_loss:.3g}): the learning rate is probably too high. "
                        "The last finite weights were kept.",
                        self.epochs_done,
                    )
                    break
                self.optimizer.step()
                loss_sum += loss * idx.size
                correct += int((logits.argmax(axis=1) == yb).sum())
                seen += idx.size
                window_loss += loss
                window_batches += 1
                now = time.perf_counter()
                if self._steps_left is not None:
                    self._steps_left -= 1
                    if self._steps_left <= 0:
                        self._steps_left = None
                        self._resume.clear()  # the next batch waits
                if ticking and now - last_tick >= c.tick_every:
                    self.on_event(Tick(self.optimizer.t, self.epochs_done, "interval"))
                    last_tick = time.perf_counter()  # the tick's own work is not counted as training
                if now - last_report >= c.progress_every:
                    self.on_event(BatchProgress(epoch, b + 1, batches, window_loss / window_batches, self.optimizer.lr))
                    window_loss, window_batches, last_report = 0.0, 0, now
            if end is not None:
                break
            summary = self._epoch_end(epoch, started, loss_sum / seen, correct / seen)
            self.on_event(summary)
            if not np.isfinite(summary.test_loss):
                end = RunEnd("diverged", f"the test loss became {summary.test_loss} at epoch {epoch}", self.epochs_done)
                break
            self.epochs_done = epoch
        if end is None:
            end = RunEnd("finished", f"trained {self.epochs_done} epochs", self.epochs_done)
        if ticking:
            self.on_event(Tick(self.optimizer.t, self.epochs_done, "end"))
        self._set_state(end.state)
        self.on_event(end)
        return end

    def _epoch_end(self, epoch: int, started: float, train_loss: float, train_acc: float) -> EpochEnd:
        c, d, model = self.config, self.data, self.model
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # the caller checks finiteness
            test_loss, predicted = model.evaluate(d.x_test, d.y_test)
        regression = d.y_test.dtype.kind == "f"  # float targets: no classes, no confusion matrix
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
