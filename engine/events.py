"""What a trainer reports, as plain dataclasses: the server turns them into messages and rows, the CLI into
lines. Nothing here knows about either."""

from __future__ import annotations

from dataclasses import dataclass

from engine.health import LayerHealth
from engine.layers import Layer
from engine.metrics import Histogram
from engine.steering import AppliedChange


@dataclass(frozen=True)
class BatchProgress:
    epoch: int  # 1-based epoch being trained
    batch: int  # batches done in this epoch
    batches: int  # batches per epoch
    loss: float  # mean training loss over the batches since the previous BatchProgress
    learning_rate: float
    step: int = 0  # batches trained in the whole run


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
class StateChange:
    state: str  # running, paused, finished, stopped, diverged
    step: int = 0  # batches trained so far in the run


@dataclass(frozen=True)
class RunEnd:
    state: str  # finished, stopped or diverged
    message: str
    epochs_done: int


@dataclass(frozen=True)
class HealthReport:
    epoch: int
    step: int  # global batch index
    layers: list[LayerHealth]


@dataclass(frozen=True)
class Tick:
    """Every ``tick_every`` seconds of training, before training starts, whenever the run pauses and at its end:
    a moment to look at the model (from the training thread, so it is never mid-step)."""

    step: int  # batches trained so far
    epoch: int  # epochs finished
    reason: str = "interval"  # "start", "interval", "pause" or "end"


Event = BatchProgress | EpochEnd | StateChange | RunEnd | AppliedChange | HealthReport | Tick


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
