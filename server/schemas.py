"""Every REST answer and request body that is not a run config, as pydantic models, so OpenAPI documents them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from server.config import RunConfig, StrictModel
from server.messages import EpochMessage, Extras, FeatureMapsOut

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


class RunDetail(RunSummary):
    history: list[EpochMessage]  # every epoch, histograms included
    extras: Extras | None  # the latest epoch's bulky views


class SnapshotMessage(BaseModel):
    """Sent first on every WebSocket connection: the run as GET /api/runs/{id} gives it."""

    type: Literal["snapshot"] = "snapshot"
    run: RunDetail


class ControlAnswer(BaseModel):
    id: str
    state: str


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
    model: Annotated[ModelId | None, Field(description="a model or run id; the default model if absent")] = None


class PredictResponse(BaseModel):
    digit: int
    probabilities: list[float]
    input: list[list[float]]  # the 28x28 image the network saw, 0-1, ink high
    model: str
    feature_maps: list[FeatureMapsOut] = []  # every conv/pool layer's output for this drawing
