"""Layers. A layer maps a (batch, features) array forward and its gradient backward, keeping what backward
needs from the last forward call. Parameters and their gradients live in dicts keyed by name so optimizers,
histograms and save/load treat every layer alike."""

from __future__ import annotations

import numpy as np

from engine.activations import Activation, get_activation
from engine.initializers import init_weights


class Layer:
    kind = "base"

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.buffers: dict[str, np.ndarray] = {}  # saved with the model but not trained (batchnorm's statistics)

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class Dense(Layer):
    kind = "dense"

    def __init__(
        self,
        fan_in: int,
        fan_out: int,
        *,
        init: str = "he",
        rng: np.random.Generator,
        dtype: type = np.float32,
        needs_input_grad: bool = True,
    ) -> None:
        super().__init__()
        self.params = {"W": init_weights(init, fan_in, fan_out, rng, dtype), "b": np.zeros(fan_out, dtype)}
        self.grads = {"W": np.zeros_like(self.params["W"]), "b": np.zeros_like(self.params["b"])}
        # The first layer's input is the data: nobody needs its gradient, and skipping it saves the
        # largest matrix product of the backward pass.
        self.needs_input_grad = needs_input_grad
        self._x: np.ndarray | None = None
        self._ones: np.ndarray | None = None

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        self._x = x
        out = x @ self.params["W"]
        out += self.params["b"]
        return out  # a fresh array nobody else keeps: the activation after it may overwrite it

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        assert self._x is not None, "backward before forward"
        np.matmul(self._x.T, grad_out, out=self.grads["W"])
        n = grad_out.shape[0]
        if self._ones is None or self._ones.shape[0] != n or self._ones.dtype != grad_out.dtype:
            self._ones = np.ones(n, grad_out.dtype)
        np.matmul(self._ones, grad_out, out=self.grads["b"])  # the column sums, as a GEMV: 2x np.sum(axis=0)
        if not self.needs_input_grad:
            return grad_out[:, :0]
        return grad_out @ self.params["W"].T


class ActivationLayer(Layer):
    kind = "activation"

    def __init__(self, name: str, *, inplace: bool = False) -> None:
        super().__init__()
        self.fn: Activation = get_activation(name)
        # ReLU after a layer whose output nobody else keeps (Dense) overwrites that output and, going back, the
        # gradient it is handed (the giver is done with it): no new array either way. Its slope is read from
        # the output, a > 0 exactly where z > 0.
        self.inplace = inplace and self.fn.name == "relu"
        self._z: np.ndarray | None = None
        self._a: np.ndarray | None = None

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        if self.inplace:
            self._z = self._a = np.maximum(x, 0, out=x)
            return x
        self._z = x
        self._a = self.fn.forward(x)
        return self._a

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        assert self._z is not None and self._a is not None, "backward before forward"
        if self.inplace and grad_out.flags.writeable:
            return np.multiply(grad_out, self._a > 0, out=grad_out)
        return self.fn.backward(self._z, self._a, grad_out)


class Dropout(Layer):
    """Inverted dropout: scales kept units by 1/(1-p) while training so inference needs no rescaling."""

    kind = "dropout"

    def __init__(self, rate: float, rng: np.random.Generator) -> None:
        super().__init__()
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"dropout rate must be in [0, 1), got {rate}")
        self.rate = rate
        self.rng = rng
        self._mask: np.ndarray | None = None

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        if not training or self.rate == 0.0:
            self._mask = None
            return x
        keep = self.rng.random(x.shape, dtype=np.float32) >= self.rate
        self._mask = keep.astype(x.dtype) / x.dtype.type(1.0 - self.rate)
        return x * self._mask

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        return grad_out if self._mask is None else grad_out * self._mask


class Flatten(Layer):
    """(N, H, W, C) -> (N, H*W*C): a view, and its inverse on the way back."""

    kind = "flatten"

    def __init__(self) -> None:
        super().__init__()
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_out: np.ndarray) -> np.ndarray:
        assert self._shape is not None, "backward before forward"
        return grad_out.reshape(self._shape)
