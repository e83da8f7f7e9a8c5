"""The run configuration: one pydantic schema for REST, WebSocket and the CLI, and its translation into the
engine's ModelSpec + TrainConfig. Static bounds live here; the configurable limits (Settings) are checked by
``check_limits`` before anything is allocated. Shapes, parameter counts and multiply-adds come from the
engine's ``describe`` and nowhere else."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator, model_validator

from engine.datasets import REGISTRY, DatasetInfo, toy
from engine.spec import (
    BatchNormSpec,
    Conv2DSpec,
    DenseSpec,
    FlattenSpec,
    LayerInfo,
    LayerSpec,
    ModelFormatError,
    ModelSpec,
    OutputSpec,
    PoolSpec,
    describe,
)
from engine.steering import Change
from engine.trainer import TrainConfig

Activation = Literal["relu", "leaky_relu", "sigmoid", "tanh", "linear"]
OutputActivation = Literal["softmax", "sigmoid", "linear"]
Loss = Literal["cross_entropy", "mse"]


class StrictModel(BaseModel):
    # strict: "10" is not an int and 1.5 is not a bool; no NaN/Infinity; unknown fields are an error
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class DenseConfig(StrictModel):
    type: Literal["dense"] = "dense"
    units: Annotated[int, Field(ge=1, le=100_000, description="neurons in this layer")]
    activation: Activation = "relu"
    dropout: Annotated[float, Field(ge=0.0, le=0.9, description="drop probability while training")] = 0.0


class Conv2DConfig(StrictModel):
    type: Literal["conv2d"]
    filters: Annotated[int, Field(ge=1, le=64, description="output channels")] = 8
    kernel: Annotated[int, Field(ge=1, le=7, description="square kernel side")] = 3
    stride: Annotated[int, Field(ge=1, le=2)] = 1
    padding: Literal["same", "valid"] = "same"
    activation: Activation = "relu"


class PoolConfig(StrictModel):
    type: Literal["maxpool2d", "avgpool2d"]
    size: Annotated[int, Field(ge=2, le=3, description="square window; stride = size")] = 2


class BatchNormConfig(StrictModel):
    type: Literal["batchnorm"]


class FlattenConfig(StrictModel):
    type: Literal["flatten"]


def _layer_type(value: Any) -> str:
    # "type" may be left out: every layer list that worked before typed layers is a list of dense layers
    raw = value.get("type", "dense") if isinstance(value, dict) else getattr(value, "type", "dense")
    return "pool" if raw in ("maxpool2d", "avgpool2d") else str(raw)


LayerConfig = Annotated[
    Annotated[DenseConfig, Tag("dense")]
    | Annotated[Conv2DConfig, Tag("conv2d")]
    | Annotated[PoolConfig, Tag("pool")]
    | Annotated[BatchNormConfig, Tag("batchnorm")]
    | Annotated[FlattenConfig, Tag("flatten")],
    Discriminator(_layer_type),
]


def _layer_spec(layer: DenseConfig | Conv2DConfig | PoolConfig | BatchNormConfig | FlattenConfig) -> LayerSpec:
    if isinstance(layer, DenseConfig):
        return DenseSpec(layer.units, layer.activation, layer.dropout)
    if isinstance(layer, Conv2DConfig):
        return Conv2DSpec(layer.filters, layer.kernel, layer.stride, layer.padding, layer.activation)
    if isinstance(layer, PoolConfig):
        return PoolSpec(layer.size, layer.type)
    if isinstance(layer, BatchNormConfig):
        return BatchNormSpec()
    return FlattenSpec()


def _one_layer() -> list[LayerConfig]:
    return [DenseConfig(units=128)]


class Architecture(StrictModel):
    """What a network is, apart from how it is trained: enough to say its shapes and size."""

    dataset: Annotated[str, Field(description="a name from GET /api/datasets")] = "mnist"
    layers: Annotated[list[LayerConfig], Field(max_length=1000)] = Field(default_factory=lambda: _one_layer())
    output_activation: OutputActivation = "softmax"
    loss: Loss = "cross_entropy"
    init: Literal["he", "xavier", "naive"] = "he"
    data: Annotated[
        dict[str, Any] | None,
        Field(description="the data set's options (GET /api/datasets lists them and their bounds); MNIST takes none"),
    ] = None

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, name: str) -> str:
        if name not in REGISTRY:
            raise ValueError(f"unknown data set; choose one of {sorted(REGISTRY)}")
        return name

    @model_validator(mode="after")
    def _network_fits(self) -> Architecture:
        check_data_options(self.dataset_info, self.data)
        if self.dataset_info.task == "regression" and (self.output_activation != "linear" or self.loss != "mse"):
            raise ValueError(f"{self.dataset} is a regression: it needs a linear output and the mse loss")
        if self.loss == "cross_entropy" and self.output_activation == "linear":
            raise ValueError("cross_entropy needs a softmax or sigmoid output activation")
        try:
            self.model_spec()
        except ModelFormatError as exc:  # e.g. a conv after a dense layer, a pool that shrinks below 1x1
            raise ValueError(str(exc).removeprefix("invalid model spec: ")) from None
        return self

    @property
    def dataset_info(self) -> DatasetInfo:
        return REGISTRY[self.dataset]

    def model_spec(self) -> ModelSpec:
        info = self.dataset_info
        shape = info.input_shape if info.input_shape_for is None else info.input_shape_for(self.data or {})
        return ModelSpec(
            input_shape=shape,
            layers=tuple(_layer_spec(layer) for layer in self.layers),
            output=OutputSpec(info.classes, self.output_activation),
            loss=self.loss,
            init=self.init,
        )

    def describe(self) -> list[LayerInfo]:
        return describe(self.model_spec())

    def parameter_count(self) -> int:
        return sum(row.parameters for row in self.describe())


class OptimizerConfig(StrictModel):
    name: Literal["sgd", "momentum", "nesterov", "adam"] = "adam"
    momentum: Annotated[float, Field(ge=0.0, lt=1.0, description="for momentum and nesterov")] = 0.9
    beta1: Annotated[float, Field(ge=0.0, lt=1.0, description="Adam's first-moment decay")] = 0.9
    beta2: Annotated[float, Field(ge=0.0, lt=1.0, description="Adam's second-moment decay")] = 0.999


class ScheduleConfig(StrictModel):
    name: Literal["constant", "step", "cosine", "onecycle"] = "constant"
    step_size: Annotated[int, Field(ge=1, le=1000, description="epochs between decays (step)")] = 5
    gamma: Annotated[float, Field(gt=0.0, le=1.0, description="decay factor (step)")] = 0.5
    warmup: Annotated[
        float, Field(ge=0.0, le=0.9, description="onecycle: fraction of the run rising to the learning rate")
    ] = 0.3


class ChangeIn(StrictModel):
    step: Annotated[int, Field(ge=0, description="global batch index the change applies from")]
    name: Annotated[str, Field(pattern=r"^(learning_rate|l1|l2|batch_size|momentum|dropout\.\d{1,3})$")]
    value: Annotated[float, Field(ge=0.0, le=1_000_000.0)]


class ForkStart(StrictModel):
    run: Annotated[str, Field(pattern=r"^r[0-9a-f]{10}$", description="the run whose checkpoint this one starts from")]
    epoch: Annotated[int, Field(ge=1, description="the epoch after which the checkpoint was taken")]


class RunConfig(Architecture):
    name: Annotated[str, Field(max_length=80, description="a label for the run list")] = ""
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    learning_rate: Annotated[float, Field(gt=0.0, le=1000.0)] = 1e-3
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    batch_size: Annotated[int, Field(ge=1, le=1_000_000)] = 128
    epochs: Annotated[int, Field(ge=1, le=100_000)] = 10
    l2: Annotated[float, Field(ge=0.0, le=10.0, description="weight decay")] = 0.0
    label_smoothing: Annotated[
        float, Field(ge=0.0, le=0.5, description="softmax cross-entropy only: eps of the (1 - eps, eps/K) target")
    ] = 0.0
    l1: Annotated[float, Field(ge=0.0, le=10.0, description="L1 penalty on weights")] = 0.0
    start_paused: Annotated[bool, Field(description="wait paused before the first batch (to step through it)")] = False
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 0
    train_subset: Annotated[int | None, Field(ge=1, description="samples; null = all")] = None
    replay: Annotated[
        list[ChangeIn], Field(max_length=10_000, description="live changes to apply again at their batch indices")
    ] = Field(default_factory=list)
    start: Annotated[ForkStart | None, Field(description="continue from another run's checkpoint (a fork)")] = None

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        if self.optimizer.name == "nesterov" and self.optimizer.momentum == 0:
            raise ValueError("nesterov needs a momentum above 0")
        if self.label_smoothing and not (self.loss == "cross_entropy" and self.output_activation == "softmax"):
            raise ValueError("label_smoothing needs cross_entropy on a softmax output")
        size = self.dataset_info.train_size
        if self.dataset_info.name in toy.GENERATORS:
            _, size, _ = toy.split_sizes(self.data)
        if size is not None and self.train_subset is not None and self.train_subset > size:
            raise ValueError(f"train_subset is larger than the {size} training samples of {self.dataset}")
        if self.batch_size > (self.train_subset or size or self.batch_size):
            raise ValueError("batch_size is larger than the training set")
        return self

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
            warmup=self.schedule.warmup,
            l2=self.l2,
            label_smoothing=self.label_smoothing,
            seed=self.seed,
            train_subset=self.train_subset,
            l1=self.l1,
            replay=tuple(Change(c.step, c.name, c.value) for c in self.replay),
            **(TOY_TRAINING if self.dataset in toy.GENERATORS else {}),
        )


# Generated 2-D sets: pictures every 40 ms (server/frames.py), no histograms (nothing draws them in 2-D mode and
# they would cost more than a toy epoch's training)
TOY_TRAINING: dict[str, Any] = {"tick_every": 0.04, "histogram_bins": 0}


def check_data_options(info: DatasetInfo, data: dict[str, Any] | None) -> None:
    """A run's ``data`` against its data set's declared options: names, types and bounds."""
    declared = {o.name: o for o in info.options}
    unknown = sorted(set(data or {}) - set(declared))
    if unknown:
        allowed = f"one of {sorted(declared)}" if declared else "none"
        raise ValueError(f"data: unknown option(s) {unknown} for {info.name}; it takes {allowed}")
    for name, value in (data or {}).items():
        option = declared[name]
        if option.choices:
            if not isinstance(value, list) or not value or not all(v in option.choices for v in value):
                raise ValueError(f"data.{name} must be a non-empty list of {list(option.choices)}")
            if len(set(value)) != len(value):
                raise ValueError(f"data.{name} names a choice twice")
            continue
        is_int = isinstance(option.default, int)
        ok_type = isinstance(value, int) if is_int else isinstance(value, int | float)
        if isinstance(value, bool) or not ok_type:
            raise ValueError(f"data.{name} must be {'an integer' if is_int else 'a number'}")
        if (option.minimum is not None and value < option.minimum) or (
            option.maximum is not None and value > option.maximum
        ):
            raise ValueError(f"data.{name} must be between {option.minimum:g} and {option.maximum:g}")
