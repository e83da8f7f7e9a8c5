"""Every REST answer and request body that is not a run config, as pydantic models, so OpenAPI documents them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from server.config import RunConfig, StrictModel
from server.messages import (
    ChangeMessage,
    EpochMessage,
    Extras,
    FeatureMapsOut,
    HealthMessage,
    ImagesOut,
    ProgressMessage,
)

ModelId = Annotated[str, Field(pattern=r"^(default|[rm][0-9a-f]{10})$", description="a model or run id")]


class RunCreated(BaseModel):
    id: str
    state: str


class RunSummary(BaseModel):
    id: str
    name: str
    kind: Literal["user", "default"]
    config: Annotated[dict[str, Any], Field(description="the RunConfig the run was created with")]
    state: str
    message: str
    created_at: float
    started_at: float | None
    finished_at: float | None
    epochs_done: int
    test_accuracy: float | None
    test_loss: float | None
    train_seconds: float
    parameters: int
    has_model: bool
    shared: bool = True  # others may watch it (a run that is not is 404 to them)
    controllable: bool = True  # whether the caller may pause, resume, stop or delete it (owner or token holder)
    worker: str | None = None  # cluster mode: "host:pid" of the worker training it (null in embedded mode)
    queue_position: int | None = None  # while queued: 1 = the next run to start
    attempts: int = 0  # cluster mode: workers that have taken it (more than 1: it changed hands and went on)
    lost_workers: int = 0  # cluster mode: of those, lost while training it (silent, killed)


class RunDetail(RunSummary):
    history: list[EpochMessage]  # every epoch, histograms included
    extras: Extras | None  # the latest epoch's bulky views
    progress: list[ProgressMessage] = []  # the per-batch loss points, as streamed live
    health: list[HealthMessage] = []  # per-layer health at those points
    changes: list[ChangeMessage] = []  # live changes, in order, with the batch each applied from
    checkpoints: list[int] = []  # epochs a fork can start from


class SnapshotMessage(BaseModel):
    """Sent first on every WebSocket connection: the run as GET /api/runs/{id} gives it."""

    type: Literal["snapshot"] = "snapshot"
    run: RunDetail


class ControlAnswer(BaseModel):
    id: str
    state: str


class AppliedOut(BaseModel):
    name: str  # learning_rate, l2, batch_size, momentum or dropout.<layer>
    value: float


class PatchAnswer(BaseModel):
    id: str
    queued: list[AppliedOut]  # applied from the next batch; each comes back as a "change" message


class LayerRow(BaseModel):
    index: int  # position in the layer list; the output layer is last
    type: str
    output_shape: list[int]
    parameters: int
    macs: int  # multiply-adds per sample


class ArchitectureOut(BaseModel):
    input_shape: list[int]
    layers: list[LayerRow]
    parameters: int
    macs: int


class ModelInfo(BaseModel):
    id: str
    name: str
    source: Literal["default", "run", "upload"]
    test_accuracy: float | None


class UploadedModel(BaseModel):
    id: str
    name: str
    spec: dict[str, object]


class DatasetOptionOut(BaseModel):
    name: str
    description: str
    default: object
    minimum: float | None
    maximum: float | None
    choices: list[str]


class DatasetOut(BaseModel):
    name: str
    description: str
    input_shape: list[int]
    task: Literal["classification", "regression"]
    classes: int
    train_size: int | None
    test_size: int | None
    ready: bool
    options: list[DatasetOptionOut]


class DatasetSample(BaseModel):
    """One image of a data set's test split, as POST /api/predict takes it in "pixels"."""

    dataset: str
    index: int  # in the test split
    label: int  # the true class
    pixels: list[list[float]]  # height x width, 0-1, ink high (MNIST: 28x28)


class Latency(BaseModel):
    n: int
    p50: float | None  # milliseconds
    p99: float | None


class Health(BaseModel):
    status: Literal["ok"]
    mnist: Literal["ready", "fetching", "missing"]
    mnist_error: str | None
    default_model: Literal["ready", "training", "failed", "missing"]
    default_model_run: str | None
    default_model_error: str | None
    runs_training: int
    runs_queued: int
    predict_ms: Latency


class Options(BaseModel):
    layer_types: list[str]
    activations: list[str]
    output_activations: list[str]
    losses: list[str]
    optimizers: list[str]
    schedules: list[str]
    inits: list[str]
    paddings: list[str]
    limits: dict[str, int]
    run_config_schema: dict[str, object]  # the JSON schema of RunConfig: bounds and defaults for every field


class Preset(BaseModel):
    name: str
    description: str
    config: RunConfig


class PredictRequest(StrictModel):
    image: Annotated[str | None, Field(description="a PNG as a data URL: data:image/png;base64,...")] = None
    pixels: Annotated[list[list[float]] | None, Field(description="28x28 numbers, 0-1 or 0-255, ink high")] = None
    strokes: Annotated[
        list[list[list[float]]] | None,
        Field(
            max_length=200,
            description="the pen strokes, each a list of [x, y] points: redrawn at MNIST's proportions whatever size",
        ),
    ] = None
    model: Annotated[ModelId | None, Field(description="a model or run id; the default model if absent")] = None
    explain: Annotated[bool, Field(description="add saliency, integrated gradients, occlusion, activations")] = False
    target: Annotated[
        int | None, Field(ge=0, le=9, description="the digit to explain; the predicted one if absent")
    ] = None


class Ranked(BaseModel):
    digit: int
    probability: float


class LayerActivations(BaseModel):
    layer: int  # index in the layer list; the output layer is last
    type: str
    values: list[float] | None  # a dense layer's units
    maps: ImagesOut | None  # a conv or pool layer's feature maps


class Explanation(BaseModel):
    target: int  # the digit explained
    saliency: list[list[float]]  # 28x28, |d p / d input| scaled to 0-1
    integrated_gradients: list[list[float]]  # 28x28, signed; sums to p(input) - p(blank) up to 32-step quadrature
    occlusion: list[list[float]]  # 28x28: the drop in p when a 4x4 grey patch covers each place
    p_input: float  # p(target) for the drawing
    p_baseline: float  # p(target) for a blank image
    activations: list[LayerActivations]
    top3: list[Ranked]


class PredictResponse(BaseModel):
    digit: int
    probabilities: list[float]
    input: list[list[float]]  # the 28x28 image the network saw, 0-1, ink high
    model: str
    feature_maps: list[FeatureMapsOut] = []  # every conv/pool layer's output for this drawing
    explanation: Explanation | None = None  # with "explain": true


class RunPatch(StrictModel):
    """Live changes to a training or paused run; each applies from the next batch."""

    learning_rate: Annotated[float | None, Field(gt=0.0, le=1000.0)] = None
    l2: Annotated[float | None, Field(ge=0.0, le=10.0)] = None
    l1: Annotated[float | None, Field(ge=0.0, le=10.0)] = None
    batch_size: Annotated[int | None, Field(ge=1, le=1_000_000)] = None
    momentum: Annotated[float | None, Field(ge=0.0, lt=1.0)] = None
    dropout: Annotated[
        dict[Annotated[str, Field(pattern=r"^\d{1,3}$")], Annotated[float, Field(ge=0.0, le=0.9)]] | None,
        Field(description="layer index (in the layer list) -> drop probability"),
    ] = None

    def items(self) -> list[tuple[str, float]]:
        """(engine name, value) for every field set."""
        out: list[tuple[str, float]] = [
            (name, float(value))
            for name in ("learning_rate", "l1", "l2", "batch_size", "momentum")
            if (value := getattr(self, name)) is not None
        ]
        out += [(f"dropout.{layer}", rate) for layer, rate in (self.dropout or {}).items()]
        return out


class StepRequest(StrictModel):
    batches: Annotated[int, Field(ge=1, le=1000, description="batches to train before pausing again")] = 1


class ForkRequest(StrictModel):
    epoch: Annotated[int, Field(ge=1, description="fork from the checkpoint after this epoch")]
    changes: RunPatch = Field(default_factory=RunPatch)
