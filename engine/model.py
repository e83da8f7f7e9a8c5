"""A feed-forward network built from a plain declarative spec, with save/load as ``.npz`` + JSON spec.

The spec is the one description of an architecture that the CLI, the server and saved files share::

    {"input_size": 784, "output_size": 10,
     "hidden": [{"units": 128, "activation": "relu", "dropout": 0.0}],
     "output_activation": "softmax", "loss": "cross_entropy", "init": "he"}
"""

from __future__ import annotations

import io
import itertools
import json
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from numpy.lib.npyio import NpzFile

from engine.activations import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS
from engine.initializers import INITS
from engine.layers import ActivationLayer, Dense, Dropout, Layer
from engine.losses import LOSSES, Loss, get_loss

FORMAT_VERSION = 1


MAX_HEADER_BYTES = 1_000_000  # the stored JSON header (spec + free-form metadata), as a NumPy unicode array


class ModelFormatError(ValueError):
    """A spec or a model file that cannot describe a valid network."""


@dataclass(frozen=True)
class HiddenLayer:
    units: int  # neurons in this fully connected layer
    activation: str = "relu"  # one of HIDDEN_ACTIVATIONS
    dropout: float = 0.0  # probability of zeroing each unit while training, in [0, 1)


@dataclass(frozen=True)
class ModelSpec:
    hidden: tuple[HiddenLayer, ...] = (HiddenLayer(128),)  # hidden layers, input side first
    input_size: int = 784  # features per sample (28 * 28 pixels for MNIST)
    output_size: int = 10  # classes
    output_activation: str = "softmax"  # one of OUTPUT_ACTIVATIONS
    loss: str = "cross_entropy"  # "cross_entropy" or "mse"
    init: str = "he"  # "he", "xavier" or "naive" (randn * 0.01)

    def __post_init__(self) -> None:
        def bad(msg: str) -> ModelFormatError:
            return ModelFormatError(f"invalid model spec: {msg}")

        for name, value in (("input_size", self.input_size), ("output_size", self.output_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise bad(f"{name} must be a positive integer")
        for i, layer in enumerate(self.hidden):
            if not isinstance(layer.units, int) or isinstance(layer.units, bool) or layer.units < 1:
                raise bad(f"hidden[{i}].units must be a positive integer")
            if layer.activation not in HIDDEN_ACTIVATIONS:
                raise bad(f"hidden[{i}].activation must be one of {list(HIDDEN_ACTIVATIONS)}")
            if not isinstance(layer.dropout, int | float) or not 0.0 <= layer.dropout < 1.0:
                raise bad(f"hidden[{i}].dropout must be in [0, 1)")
        if self.output_activation not in OUTPUT_ACTIVATIONS:
            raise bad(f"output_activation must be one of {list(OUTPUT_ACTIVATIONS)}")
        if self.loss not in LOSSES:
            raise bad(f"loss must be one of {list(LOSSES)}")
        if self.loss == "cross_entropy" and self.output_activation == "linear":
            raise bad("cross_entropy needs a softmax or sigmoid output")
        if self.init not in INITS:
            raise bad(f"init must be one of {list(INITS)}")

    @property
    def layer_sizes(self) -> list[int]:
        return [self.input_size, *(h.units for h in self.hidden), self.output_size]

    @property
    def parameter_count(self) -> int:
        sizes = self.layer_sizes
        return sum(a * b + b for a, b in itertools.pairwise(sizes))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"] = [asdict(h) for h in self.hidden]
        return d

    @classmethod
    def from_dict(cls, data: object) -> ModelSpec:
        if not isinstance(data, dict):
            raise ModelFormatError("invalid model spec: expected a JSON object")
        known = {"hidden", "input_size", "output_size", "output_activation", "loss", "init"}
        unknown = set(data) - known
        if unknown:
            raise ModelFormatError(f"invalid model spec: unknown keys {sorted(unknown)}")
        hidden_raw = data.get("hidden", [])
        if not isinstance(hidden_raw, list) or not all(isinstance(h, dict) for h in hidden_raw):
            raise ModelFormatError("invalid model spec: hidden must be a list of objects")
        try:
            hidden = tuple(HiddenLayer(**h) for h in hidden_raw)
            rest = {k: v for k, v in data.items() if k != "hidden"}
            return cls(hidden=hidden, **rest)
        except TypeError as exc:
            raise ModelFormatError(f"invalid model spec: {exc}") from None


@dataclass
class Model:
    spec: ModelSpec
    layers: list[Layer]
    loss: Loss
    dtype: type = np.float32
    meta: dict[str, Any] = field(default_factory=dict)  # free-form provenance saved with the model

    @classmethod
    def build(cls, spec: ModelSpec, *, seed: int = 0, dtype: type = np.float32) -> Model:
        """Create a freshly initialised network. Separate random streams for weights and dropout keep
        each reproducible from the one seed."""
        init_seq, dropout_seq = np.random.SeedSequence(seed).spawn(2)
        init_rng, dropout_rng = np.random.default_rng(init_seq), np.random.default_rng(dropout_seq)
        layers: list[Layer] = []
        sizes = spec.layer_sizes
        for i, h in enumerate(spec.hidden):
            layers.append(Dense(sizes[i], h.units, init=spec.init, rng=init_rng, dtype=dtype, needs_input_grad=i > 0))
            layers.append(ActivationLayer(h.activation))
            if h.dropout > 0:
                layers.append(Dropout(h.dropout, dropout_rng))
        layers.append(
            Dense(
                sizes[-2],
                sizes[-1],
                init=spec.init,
                rng=init_rng,
                dtype=dtype,
                needs_input_grad=bool(spec.hidden),
            )
        )
        layers.append(ActivationLayer(spec.output_activation))
        return cls(spec, layers, get_loss(spec.loss, spec.output_activation), dtype)

    @property
    def output_activation(self) -> ActivationLayer:
        last = self.layers[-1]
        assert isinstance(last, ActivationLayer)
        return last

    @property
    def dense_layers(self) -> list[Dense]:
        return [layer for layer in self.layers if isinstance(layer, Dense)]

    def parameters(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(parameter, gradient) pairs in a fixed order, the contract with optimizers."""
        return [(layer.params[k], layer.grads[k]) for layer in self.dense_layers for k in ("W", "b")]

    def forward(self, x: np.ndarray, training: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Return (logits, outputs): the last layer's pre-activation and the activated output."""
        for layer in self.layers[:-1]:
            x = layer.forward(x, training)
        return x, self.layers[-1].forward(x, training)

    def predict_proba(self, x: np.ndarray, chunk: int = 4096) -> np.ndarray:
        x = np.asarray(x, dtype=self.dtype).reshape(x.shape[0], -1)
        return np.concatenate([self.forward(x[i : i + chunk])[1] for i in range(0, x.shape[0], chunk)])

    def loss_and_backward(self, x: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
        """Forward in training mode, loss, and backward filling every layer's grads.
        Returns (mean loss, logits)."""
        logits, out = self.forward(x, training=True)
        loss, grad = self.loss(logits, out, labels, self.output_activation.fn)
        for layer in reversed(self.layers[:-1]):  # the output activation's slope is inside the loss gradient
            grad = layer.backward(grad)
        return loss, logits

    def evaluate(self, x: np.ndarray, labels: np.ndarray, chunk: int = 5000) -> tuple[float, np.ndarray]:
        """Mean loss and predicted classes over a data set, in inference mode."""
        total, preds = 0.0, []
        for i in range(0, x.shape[0], chunk):
            xb, yb = x[i : i + chunk], labels[i : i + chunk]
            logits, out = self.forward(xb)
            loss, _ = self.loss(logits, out, yb, self.output_activation.fn)
            total += loss * xb.shape[0]
            preds.append(logits.argmax(axis=1))
        return total / x.shape[0], np.concatenate(preds)

    # ---- persistence -------------------------------------------------------------------------------

    def save(self, target: str | Path | BinaryIO) -> None:
        header = {
            "format": "nnplay-model",
            "version": FORMAT_VERSION,
            "spec": self.spec.to_dict(),
            "meta": self.meta,
        }
        arrays = {"header": np.array(json.dumps(header))}
        for i, layer in enumerate(self.dense_layers):
            arrays[f"layer{i}_W"] = layer.params["W"]
            arrays[f"layer{i}_b"] = layer.params["b"]
        if isinstance(target, str | Path):
            path = Path(target)
            tmp = path.with_name(path.name + ".tmp")
            with open(tmp, "wb") as f:  # atomic: a crash never leaves a half-written model under the real name
                np.savez(f, **arrays)  # type: ignore[arg-type]
            tmp.replace(path)
        else:
            np.savez(target, **arrays)  # type: ignore[arg-type]

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        self.save(buf)
        return buf.getvalue()

    @classmethod
    def read_spec(cls, source: bytes) -> ModelSpec:
        """Only the spec in a model file's header: enough to check size limits before any array is read."""
        try:
            data = np.load(io.BytesIO(source), allow_pickle=False)
            if not isinstance(data, NpzFile):
                raise ModelFormatError("not an .npz archive")
            with data:
                return cls._read_header(data)[0]
        except ModelFormatError:
            raise
        except (ValueError, TypeError, KeyError) as exc:
            raise ModelFormatError(f"not a valid model file: {exc}") from None
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error, RecursionError, MemoryError) as exc:
            raise ModelFormatError(f"not a valid .npz model file: {type(exc).__name__}") from None

    @classmethod
    def load(cls, source: str | Path | BinaryIO | bytes) -> Model:
        """Load and check a model file. The header and the archive's directory are checked before any array
        is read, so a small file that declares a huge array (or a pickled one) is refused without
        allocating or unpickling anything."""
        if isinstance(source, bytes):
            source = io.BytesIO(source)
        try:
            data = np.load(source, allow_pickle=False)
            if not isinstance(data, NpzFile):
                raise ModelFormatError("not an .npz archive")
            with data:
                spec, meta, dtype, expected = cls._read_header(data)
                names = set(data.files) - {"header"}
                if names != set(expected):
                    missing, extra = sorted(set(expected) - names), sorted(names - set(expected))
                    raise ModelFormatError(f"arrays do not match the spec (missing {missing}, unexpected {extra})")
                for name, shape in expected.items():
                    declared = _member_size(data, name)
                    if declared > int(np.prod(shape)) * np.dtype(dtype).itemsize + 4096:
                        raise ModelFormatError(f"{name} is larger than the spec allows")
                arrays = {name: data[name] for name in expected}
        except ModelFormatError:
            raise
        except (ValueError, TypeError, KeyError) as exc:  # object arrays need pickle, which we refuse
            raise ModelFormatError(f"not a valid model file: {exc}") from None
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error, RecursionError, MemoryError) as exc:
            raise ModelFormatError(f"not a valid .npz model file: {type(exc).__name__}") from None
        for name, shape in expected.items():
            if arrays[name].shape != shape:
                raise ModelFormatError(f"{name} has shape {arrays[name].shape}, the spec needs {shape}")
            if arrays[name].dtype != np.dtype(dtype):
                raise ModelFormatError(f"{name} is {arrays[name].dtype}; weights must all be float32 or all float64")
            if not np.isfinite(arrays[name]).all():
                raise ModelFormatError(f"{name} contains NaN or infinite values")
        model = cls.build(spec, dtype=dtype)
        model.meta = meta
        for i, layer in enumerate(model.dense_layers):
            layer.params["W"][...] = arrays[f"layer{i}_W"]
            layer.params["b"][...] = arrays[f"layer{i}_b"]
        return model

    @staticmethod
    def _read_header(data: NpzFile) -> tuple[ModelSpec, dict[str, Any], type, dict[str, tuple[int, ...]]]:
        if "header" not in data.files:
            raise ModelFormatError("not an nnplay model: missing JSON header")
        header_size = _member_size(data, "header")
        if header_size > MAX_HEADER_BYTES:
            raise ModelFormatError(
                f"the model's JSON header (its spec and metadata) is too large: {header_size} bytes stored,"
                f" the limit is {MAX_HEADER_BYTES} bytes"
            )
        header_arr = data["header"]
        if header_arr.dtype.kind != "U" or header_arr.shape != ():
            raise ModelFormatError("not an nnplay model: missing JSON header")
        try:
            header = json.loads(str(header_arr))
        except (json.JSONDecodeError, RecursionError) as exc:
            raise ModelFormatError(f"model header is not valid JSON: {type(exc).__name__}") from None
        if not isinstance(header, dict) or header.get("format") != "nnplay-model":
            raise ModelFormatError("not an nnplay model: wrong format tag")
        if header.get("version") != FORMAT_VERSION:
            raise ModelFormatError("unsupported model format version")
        spec = ModelSpec.from_dict(header.get("spec"))
        meta = header.get("meta") or {}
        if not isinstance(meta, dict):
            raise ModelFormatError("model meta must be a JSON object")
        dtype: type = np.float64 if header.get("dtype") == "float64" else np.float32
        expected: dict[str, tuple[int, ...]] = {}
        for i, (a, b) in enumerate(itertools.pairwise(spec.layer_sizes)):
            expected[f"layer{i}_W"] = (a, b)
            expected[f"layer{i}_b"] = (b,)
        return spec, meta, dtype, expected


def _member_size(data: NpzFile, name: str) -> int:
    """Uncompressed size the archive declares for an array, read from its directory without loading it."""
    assert data.zip is not None
    return data.zip.getinfo(f"{name}.npy").file_size
