"""Every WebSocket message, as a pydantic model, and the one encoder. Non-finite floats become null (a diverged
run's loss): pydantic writes them so under ``ser_json_inf_nan="null"``, with no hand-written walk. Engine
events become these messages in server/recorder.py; app.py adds them to the OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class Message(BaseModel):
    model_config = ConfigDict(ser_json_inf_nan="null")

    def encode(self) -> str:
        """The text sent to clients and stored: strict JSON, encoded once for every client."""
        return self.model_dump_json()


class HistogramOut(Message):
    edges: list[float]  # bins + 1, ascending
    counts: list[int]


class LayerHistogramsOut(Message):
    layer: int  # index in the spec's layer list; the output layer is last
    type: str = "dense"  # dense, conv2d or batchnorm
    shape: list[int]  # of the weights
    weights: HistogramOut
    biases: HistogramOut
    gradients: HistogramOut  # of the weight gradients at the epoch's last batch


class ImagesOut(Message):
    count: int
    size: int  # images are size x size
    data: str  # base64 of count*size*size uint8, row-major; mid-grey (128) is zero for weights


class MisclassifiedItem(Message):
    index: int  # in the test set
    label: int
    predicted: int


class MisclassifiedOut(Message):
    items: list[MisclassifiedItem]
    data: str  # base64 of len(items) 28x28 uint8 images


class FeatureMapsOut(Message):
    layer: int  # index of the conv (or pool) layer in the layer list
    type: str
    maps: ImagesOut  # one image per channel of the layer's output, each scaled to its own range


class ConvView(Message):
    layer: int  # index of the conv layer in the layer list
    channels: int  # input channels: filters holds filters*channels kernels, filter-major
    filters: ImagesOut  # every kernel, kernel x kernel, mid-grey = 0
    maps: ImagesOut  # the layer's feature maps for the fixed sample digit


class Extras(Message):
    """The bulky per-epoch views, stored for the latest epoch only and sent at most once a second."""

    filters: ImagesOut  # what each first-layer unit (or filter) looks for
    misclassified: MisclassifiedOut
    conv: list[ConvView] = []  # per conv layer, input side first
    sample: MisclassifiedItem | None = None  # the fixed test digit the feature maps show (index, label, predicted)


class ProgressMessage(Message):
    type: Literal["progress"] = "progress"
    run_id: str
    step: int = 0  # global batch index (batches trained so far in the run)
    epoch: int
    epochs: int
    batch: int
    batches: int
    loss: float | None  # mean training loss since the previous progress message
    learning_rate: float
    eta_s: float | None  # seconds of training left, estimated


class EpochMessage(Message):
    type: Literal["epoch"] = "epoch"
    run_id: str
    epoch: int
    epochs: int
    train_loss: float | None
    train_accuracy: float
    test_loss: float | None
    test_accuracy: float
    seconds: float  # wall time of the epoch, evaluation included
    learning_rate: float
    histograms: list[LayerHistogramsOut]
    confusion: list[list[int]]  # test set, rows true, columns predicted
    ended_at: float | None = None  # unix time the epoch ended, so clients can measure delivery
    filters: ImagesOut | None = None  # present when the bulky views go out with this epoch
    misclassified: MisclassifiedOut | None = None
    conv: list[ConvView] | None = None
    sample: MisclassifiedItem | None = None


class ChangeMessage(Message):
    """A live change, applied from batch `step` on (PATCH /api/runs/{id} or the WebSocket action "set")."""

    type: Literal["change"] = "change"
    run_id: str
    step: int
    epoch: int
    name: str  # learning_rate, l1, l2, batch_size, momentum or dropout.<layer index>
    old: float
    new: float
    at: float = 0.0  # position on the curves' epoch axis (epochs done + fraction of the epoch)


class LayerHealthOut(Message):
    layer: int  # index in the layer list; the output layer last
    type: str
    activation: str
    mean: float | None
    std: float | None
    dead: float | None  # fraction of ReLU units zero for the whole batch
    saturated: float | None  # fraction of sigmoid/tanh outputs within 3% of their limits
    grad_norm: float | None
    update_ratio: float | None  # std(update) / std(weights); about 1e-3 is healthy


class HealthMessage(Message):
    type: Literal["health"] = "health"
    run_id: str
    epoch: int
    step: int
    layers: list[LayerHealthOut]


class FrameMessage(Message):
    """A live picture of a 2-D run (server/frames.py), about 25 a second while someone watches. Like progress it
    merges: a slow client gets the newest frame, never a queue of old ones."""

    type: Literal["frame"] = "frame"
    step: int  # optimizer steps taken
    epoch: int  # epochs finished
    train_loss: float | None  # over the whole training set, now
    test_loss: float | None
    grid: int  # the raster's side: grid x grid over [-6, 6]^2, row 0 at x2 = +6, column 0 at x1 = -6
    output: str  # base64 of grid*grid uint8: 0 = class 0 (or the low end, -1), 255 = class 1 (or +1)
    neurons: list[list[str]]  # per hidden layer, per neuron: the same raster, 128 = 0, 0/255 = -/+ its scale
    weights: list[list[list[float]]]  # per dense layer (the output layer last): W as rows of inputs
    learning_rate: float  # the base learning rate in force (it changes live)
    l1: float
    l2: float


class StateMessage(Message):
    type: Literal["state"] = "state"
    run_id: str
    state: str  # queued, running, paused, finished, stopped, diverged, failed, interrupted
    step: int | None = None  # batches trained so far, when the trainer knows it


class EndMessage(Message):
    type: Literal["end"] = "end"
    run_id: str
    state: str
    message: str
    test_accuracy: float | None = None
    has_model: bool = False


def last_messages(
    run_id: str, state: str, message: str, test_accuracy: float | None, has_model: bool
) -> list[tuple[str, str]]:
    """What every watcher of a run hears last, (kind, encoded text): its final state, then its end."""
    end = EndMessage(run_id=run_id, state=state, message=message, test_accuracy=test_accuracy, has_model=has_model)
    return [("state", StateMessage(run_id=run_id, state=state).encode()), ("end", end.encode())]


class ErrorMessage(Message):
    type: Literal["error"] = "error"
    detail: str


class AckMessage(Message):
    type: Literal["ack"] = "ack"
    action: str
    state: str


class ControlMessage(BaseModel):
    """What a client may send over the WebSocket: {"action": "pause"}, or {"action": "set", "learning_rate": 0.01},
    or {"action": "step", "batches": 5}."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    action: Literal["pause", "resume", "stop", "set", "step"]
    batches: Annotated[int | None, Field(ge=1, le=1000, description="step: batches to train, then pause")] = None
    steps: Annotated[int | None, Field(ge=1, le=1000, description="the same as batches (the 2-D page's name)")] = None
    # set: from the next batch (any left out stays)
    learning_rate: float | None = None
    l1: float | None = None
    l2: float | None = None
    batch_size: int | None = None
    momentum: float | None = None
    dropout: dict[str, float] | None = None  # layer index -> rate


ServerMessage = Annotated[
    ProgressMessage
    | EpochMessage
    | FrameMessage
    | StateMessage
    | EndMessage
    | ErrorMessage
    | AckMessage
    | ChangeMessage
    | HealthMessage,
    Field(discriminator="type"),
]
