"""The run configuration: one pydantic schema for REST, WebSocket and the CLI, and its translation into the
engine's ModelSpec + TrainConfig. Static bounds live here; the configurable limits (Settings) are checked by
``check_limits`` before anything is allocated."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.model import HiddenLayer, ModelSpec
from engine.trainer import TrainConfig
from server.settings import Settings

MNIST_TRAIN_SIZE = 60_000

Activation = Literal["relu", "leaky_relu", "sigmoid", "tanh", "linear"]


class StrictModel(BaseModel):
    # strict: "10" is not an int and 1.5 is not a bool; no NaN/Infinity; unknown fields are an error
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class LayerConfig(StrictModel):
    units: Annotated[int, Field(ge=1, le=100_000, description="neurons in this layer")]
    activation: Activation = "relu"
    dropout: Annotated[float, Field(ge=0.0, le=0.9, description="drop probability while training")] = 0.0


class OptimizerConfig(StrictModel):
    name: Literal["sgd", "momentum", "nesterov", "adam"] = "adam"
    momentum: Annotated[float, Field(ge=0.0, lt=1.0, description="for momentum and nesterov")] = 0.9
    beta1: Annotated[float, Field(ge=0.0, lt=1.0, description="Adam's first-moment decay")] = 0.9
    beta2: Annotated[float, Field(ge=0.0, lt=1.0, description="Adam's second-moment decay")] = 0.999


class ScheduleConfig(StrictModel):
    name: Literal["constant", "step", "cosine"] = "constant"
    step_size: Annotated[int, Field(ge=1, le=1000, description="epochs between decays (step)")] = 5
    gamma: Annotated[float, Field(gt=0.0, le=1.0, description="decay factor (step)")] = 0.5


class RunConfig(StrictModel):
    name: Annotated[str, Field(max_length=80, description="a label for the run list")] = ""
    dataset: Literal["mnist"] = "mnist"
    layers: Annotated[list[LayerConfig], Field(max_length=1000)] = Field(
        default_factory=lambda: [LayerConfig(units=128)]
    )
    output_activation: Literal["softmax", "sigmoid", "linear"] = "softmax"
    loss: Literal["cross_entropy", "mse"] = "cross_entropy"
    init: Literal["he", "xavier", "naive"] = "he"
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    learning_rate: Annotated[float, Field(gt=0.0, le=1000.0)] = 1e-3
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    batch_size: Annotated[int, Field(ge=1, le=1_000_000)] = 128
    epochs: Annotated[int, Field(ge=1, le=100_000)] = 10
    l2: Annotated[float, Field(ge=0.0, le=10.0, description="weight decay")] = 0.0
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0
    train_subset: Annotated[int | None, Field(ge=1, le=MNIST_TRAIN_SIZE, description="samples; null = all")] = None

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        if self.loss == "cross_entropy" and self.output_activation == "linear":
            raise ValueError("cross_entropy needs a softmax or sigmoid output activation")
        if self.optimizer.name == "nesterov" and self.optimizer.momentum == 0:
            raise ValueError("nesterov needs a momentum above 0")
        if self.batch_size > (self.train_subset or MNIST_TRAIN_SIZE):
            raise ValueError("batch_size is larger than the training set")
        return self

    def model_spec(self) -> ModelSpec:
        return ModelSpec(
            hidden=tuple(HiddenLayer(h.units, h.activation, h.dropout) for h in self.layers),
            output_activation=self.output_activation,
            loss=self.loss,
            init=self.init,
        )

    def train_config(self) -> TrainConfig:
        return TrainConfig(
            epochs=self.epochs,
            batch_size=self.batch_size,
            optimizer=self.optimizer.name,
            learning_rate=self.learning_rate,
            momentum=self.optimizer.momentum,
            beta1=self.optimizer.beta1,
            beta2=self.optimizer.beta2,
            schedule=self.schedule.name,
            step_size=self.schedule.step_size,
            gamma=self.schedule.gamma,
            l2=self.l2,
            seed=self.seed,
            train_subset=self.train_subset,
        )

    def parameter_count(self) -> int:
        return self.model_spec().parameter_count


class LimitError(ValueError):
    """A request exceeds one of the configured limits; the message names it."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


def check_limits(config: RunConfig, settings: Settings) -> None:
    """Called before any array is allocated."""
    checks = [
        ("max_layers", len(config.layers), settings.max_layers, "hidden layers"),
        (
            "max_units",
            max((h.units for h in config.layers), default=0),
            settings.max_units,
            "units in a layer",
        ),
        ("max_parameters", config.parameter_count(), settings.max_parameters, "parameters"),
        ("max_epochs", config.epochs, settings.max_epochs, "epochs"),
        ("max_batch_size", config.batch_size, settings.max_batch_size, "batch size"),
    ]
    for limit, value, maximum, what in checks:
        if value > maximum:
            raise LimitError(limit, f"{value} {what} exceeds the limit {limit}={maximum}")


def limits_of(settings: Settings) -> dict[str, Any]:
    return {
        "max_layers": settings.max_layers,
        "max_units": settings.max_units,
        "max_parameters": settings.max_parameters,
        "max_epochs": settings.max_epochs,
        "max_batch_size": settings.max_batch_size,
        "max_concurrent_runs": settings.max_concurrent_runs,
        "max_queued_runs": settings.max_queued_runs,
        "max_image_bytes": settings.max_image_bytes,
        "max_canvas_side": settings.max_canvas_side,
        "max_model_bytes": settings.max_model_bytes,
        "train_size": MNIST_TRAIN_SIZE,
    }


class PredictRequest(StrictModel):
    image: Annotated[str | None, Field(description="a PNG as a data URL: data:image/png;base64,...")] = None
    pixels: Annotated[list[list[float]] | None, Field(description="28x28 numbers, 0-1 or 0-255, ink high")] = None
    model: Annotated[
        str | None,
        Field(pattern=r"^(default|[rm][0-9a-f]{10})$", description="a model or run id; the default model if absent"),
    ] = None


class PredictResponse(BaseModel):
    digit: int
    probabilities: list[float]
    input: list[list[float]]  # the 28x28 image the network saw, 0-1, ink high
    model: str


class RunCreated(BaseModel):
    id: str
    state: str


class Preset(BaseModel):
    name: str
    description: str
    config: RunConfig
