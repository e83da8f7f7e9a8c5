"""A network as data (spec format 2): an input shape, a typed list of layers, an output layer, a loss and an
initialisation. ``describe`` is the one function that says, per layer, its output shape, parameter count and
multiply-adds; the model builder, the server's limits and the page's builder all read it.

    {"input_shape": [28, 28, 1],
     "layers": [{"type": "conv2d", "filters": 8, "kernel": 5}, {"type": "maxpool2d", "size": 2},
                {"type": "dense", "units": 64}],
     "output": {"units": 10, "activation": "softmax"}, "loss": "cross_entropy", "init": "he"}

Image tensors are NHWC, so an input shape is either ``[features]`` or ``[height, width, channels]``. A dense
layer after an image layer flattens its input implicitly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.activations import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS
from engine.initializers import INITS
from engine.losses import LOSSES

FORMAT_VERSION = 2  # of model files; engine/modelfile.py also reads 1
PADDINGS = ("same", "valid")
LAYER_TYPES = ("dense", "conv2d", "maxpool2d", "avgpool2d", "batchnorm", "flatten")


class ModelFormatError(ValueError):
    """A spec or a model file that cannot describe a valid network."""


@dataclass(frozen=True)
class DenseSpec:
    units: int  # neurons in this fully connected layer
    activation: str = "relu"  # one of HIDDEN_ACTIVATIONS
    dropout: float = 0.0  # probability of zeroing each unit while training, in [0, 1)
    type: str = "dense"


@dataclass(frozen=True)
class Conv2DSpec:
    filters: int  # output channels
    kernel: int = 3  # square kernel side
    stride: int = 1
    padding: str = "same"  # "same": output side = ceil(side / stride); "valid": no padding
    activation: str = "relu"
    type: str = "conv2d"


@dataclass(frozen=True)
class PoolSpec:
    size: int = 2  # square window, stride = size; a remainder row/column is dropped
    type: str = "maxpool2d"  # or "avgpool2d"


@dataclass(frozen=True)
class BatchNormSpec:
    momentum: float = 0.9  # running statistics: r = momentum r + (1 - momentum) batch
    type: str = "batchnorm"


@dataclass(frozen=True)
class FlattenSpec:
    type: str = "flatten"


LayerSpec = DenseSpec | Conv2DSpec | PoolSpec | BatchNormSpec | FlattenSpec
_SPEC_CLASSES: dict[str, type] = {
    "dense": DenseSpec,
    "conv2d": Conv2DSpec,
    "maxpool2d": PoolSpec,
    "avgpool2d": PoolSpec,
    "batchnorm": BatchNormSpec,
    "flatten": FlattenSpec,
}


@dataclass(frozen=True)
class OutputSpec:
    units: int = 10  # classes (or regression targets)
    activation: str = "softmax"  # one of OUTPUT_ACTIVATIONS


@dataclass(frozen=True)
class LayerInfo:
    index: int  # position in spec.layers; the output layer comes last, at len(spec.layers)
    type: str
    output_shape: tuple[int, ...]  # per sample
    parameters: int  # trainable numbers
    macs: int  # multiply-adds per sample, forward pass


@dataclass(frozen=True)
class ModelSpec:
    input_shape: tuple[int, ...] = (784,)  # per sample: (features,) or (height, width, channels)
    layers: tuple[LayerSpec, ...] = field(default_factory=lambda: (DenseSpec(128),))
    output: OutputSpec = field(default_factory=OutputSpec)
    loss: str = "cross_entropy"  # "cross_entropy" or "mse"
    init: str = "he"  # "he", "xavier" or "naive" (randn * 0.01)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(self.input_shape))
        object.__setattr__(self, "layers", tuple(self.layers))
        _check_fields(self)
        describe(self)  # shapes must work out

    @classmethod
    def mlp(
        cls,
        hidden: tuple[DenseSpec, ...] = (),
        input_size: int = 784,
        output_size: int = 10,
        output_activation: str = "softmax",
        loss: str = "cross_entropy",
        init: str = "he",
    ) -> ModelSpec:
        """A stack of dense layers on flat inputs: the one kind of network before typed layers."""
        return cls((input_size,), hidden, OutputSpec(output_size, output_activation), loss, init)

    @property
    def parameter_count(self) -> int:
        return sum(info.parameters for info in describe(self))

    @property
    def input_size(self) -> int:
        return math.prod(self.input_shape)

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_shape": list(self.input_shape),
            "layers": [asdict(layer) for layer in self.layers],
            "output": asdict(self.output),
            "loss": self.loss,
            "init": self.init,
        }

    @classmethod
    def from_dict(cls, data: object) -> ModelSpec:
        if not isinstance(data, dict):
            raise ModelFormatError("invalid model spec: expected a JSON object")
        unknown = set(data) - {"input_shape", "layers", "output", "loss", "init"}
        if unknown:
            raise ModelFormatError(f"invalid model spec: unknown keys {sorted(unknown)}")
        layers_raw, output_raw = data.get("layers", []), data.get("output", {})
        if not isinstance(layers_raw, list) or not all(isinstance(x, dict) for x in layers_raw):
            raise ModelFormatError("invalid model spec: layers must be a list of objects")
        if not isinstance(output_raw, dict) or not isinstance(data.get("input_shape", []), list):
            raise ModelFormatError("invalid model spec: output must be an object and input_shape a list")
        try:
            layers = tuple(_layer_from_dict(i, raw) for i, raw in enumerate(layers_raw))
            rest = {k: v for k, v in data.items() if k not in ("layers", "output")}
            return cls(layers=layers, output=OutputSpec(**output_raw), **rest)
        except TypeError as exc:
            raise ModelFormatError(f"invalid model spec: {exc}") from None

    @classmethod
    def from_format1(cls, data: object) -> ModelSpec:
        """Today's saved files (format 1): {"input_size", "output_size", "hidden": [...], "output_activation"}."""
        if not isinstance(data, dict):
            raise ModelFormatError("invalid model spec: expected a JSON object")
        unknown = set(data) - {"hidden", "input_size", "output_size", "output_activation", "loss", "init"}
        if unknown:
            raise ModelFormatError(f"invalid model spec: unknown keys {sorted(unknown)}")
        hidden = data.get("hidden", [])
        if not isinstance(hidden, list) or not all(isinstance(h, dict) for h in hidden):
            raise ModelFormatError("invalid model spec: hidden must be a list of objects")
        try:
            return cls(
                input_shape=(data.get("input_size", 784),),
                layers=tuple(DenseSpec(**h) for h in hidden),
                output=OutputSpec(data.get("output_size", 10), data.get("output_activation", "softmax")),
                loss=data.get("loss", "cross_entropy"),
                init=data.get("init", "he"),
            )
        except TypeError as exc:
            raise ModelFormatError(f"invalid model spec: {exc}") from None


def _layer_from_dict(i: int, raw: dict[str, Any]) -> LayerSpec:
    kind = raw.get("type", "dense")
    cls = _SPEC_CLASSES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ModelFormatError(f"invalid model spec: layers[{i}].type must be one of {list(LAYER_TYPES)}")
    layer: LayerSpec = cls(**{**raw, "type": kind})
    return layer


def _is_int(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _check_fields(spec: ModelSpec) -> None:
    def bad(msg: str) -> ModelFormatError:
        return ModelFormatError(f"invalid model spec: {msg}")

    if len(spec.input_shape) not in (1, 3) or not all(_is_int(s, 1, 1 << 20) for s in spec.input_shape):
        raise bad("input_shape must be [features] or [height, width, channels] of positive integers")
    for i, layer in enumerate(spec.layers):
        where = f"layers[{i}] ({layer.type})"
        if isinstance(layer, DenseSpec):
            if not _is_int(layer.units, 1, 1 << 24):
                raise bad(f"{where}.units must be a positive integer")
            if not isinstance(layer.dropout, int | float) or not 0.0 <= layer.dropout < 1.0:
                raise bad(f"{where}.dropout must be in [0, 1)")
        if isinstance(layer, DenseSpec | Conv2DSpec) and layer.activation not in HIDDEN_ACTIVATIONS:
            raise bad(f"{where}.activation must be one of {list(HIDDEN_ACTIVATIONS)}")
        if isinstance(layer, Conv2DSpec):
            if not _is_int(layer.filters, 1, 64) or not _is_int(layer.kernel, 1, 7):
                raise bad(f"{where}: filters must be 1-64 and kernel 1-7")
            if not _is_int(layer.stride, 1, 2) or layer.padding not in PADDINGS:
                raise bad(f"{where}: stride must be 1-2 and padding one of {list(PADDINGS)}")
        if isinstance(layer, PoolSpec) and (
            layer.type not in ("maxpool2d", "avgpool2d") or not _is_int(layer.size, 2, 3)
        ):
            raise bad(f"{where}.size must be 2 or 3")
        if isinstance(layer, BatchNormSpec) and not (
            isinstance(layer.momentum, int | float) and 0 <= layer.momentum < 1
        ):
            raise bad(f"{where}.momentum must be in [0, 1)")
    if not _is_int(spec.output.units, 1, 1 << 20):
        raise bad("output.units must be a positive integer")
    if spec.output.activation not in OUTPUT_ACTIVATIONS:
        raise bad(f"output.activation must be one of {list(OUTPUT_ACTIVATIONS)}")
    if spec.loss not in LOSSES:
        raise bad(f"loss must be one of {list(LOSSES)}")
    if spec.loss == "cross_entropy" and spec.output.activation == "linear":
        raise bad("cross_entropy needs a softmax or sigmoid output")
    if spec.init not in INITS:
        raise bad(f"init must be one of {list(INITS)}")


def conv_output_side(side: int, kernel: int, stride: int, padding: str) -> int:
    """TensorFlow's rule: "same" gives ceil(side / stride), "valid" floor((side - kernel) / stride) + 1."""
    if padding == "same":
        return -(-side // stride)
    return (side - kernel) // stride + 1


def describe(spec: ModelSpec) -> list[LayerInfo]:
    """Per layer (the output layer last): output shape, parameters and multiply-adds per sample. Raises
    ModelFormatError naming the first layer whose input cannot feed it."""
    shape = spec.input_shape
    rows: list[LayerInfo] = []
    for i, layer in enumerate((*spec.layers, DenseSpec(spec.output.units, "linear"))):
        name = "output" if i == len(spec.layers) else f"layer {i + 1} ({layer.type})"
        params = macs = 0
        if isinstance(layer, DenseSpec):
            fan_in = math.prod(shape)  # an image is flattened first
            shape, params, macs = (layer.units,), fan_in * layer.units + layer.units, fan_in * layer.units
        elif isinstance(layer, FlattenSpec):
            shape = (math.prod(shape),)
        elif isinstance(layer, BatchNormSpec):
            params, macs = 2 * shape[-1], math.prod(shape)
        else:
            if len(shape) != 3:
                raise ModelFormatError(
                    f"{name} needs an image (height x width x channels) but gets a vector of {shape[0]}: "
                    "put convolution and pooling layers before dense layers"
                )
            h, w, c = shape
            if isinstance(layer, Conv2DSpec):
                oh = conv_output_side(h, layer.kernel, layer.stride, layer.padding)
                ow = conv_output_side(w, layer.kernel, layer.stride, layer.padding)
                if oh < 1 or ow < 1:
                    raise ModelFormatError(
                        f"{name}: a {layer.kernel}x{layer.kernel} 'valid' kernel is larger than its {h}x{w} input"
                    )
                fan_in = layer.kernel * layer.kernel * c
                shape = (oh, ow, layer.filters)
                params, macs = fan_in * layer.filters + layer.filters, oh * ow * layer.filters * fan_in
            else:  # pooling
                oh, ow = h // layer.size, w // layer.size
                if oh < 1 or ow < 1:
                    raise ModelFormatError(
                        f"{name}: a {layer.size}x{layer.size} pool shrinks its {h}x{w} input below 1x1"
                    )
                shape = (oh, ow, c)
        rows.append(LayerInfo(i, "dense" if i == len(spec.layers) else layer.type, tuple(shape), params, macs))
    return rows
