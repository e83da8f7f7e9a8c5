"""Weight initialisation. The naive ``randn * 0.01`` is kept on purpose: with sigmoid it is the classic
tutorial's choice, and next to He/Xavier it shows why scale matters."""

from __future__ import annotations

import numpy as np

INITS = ("he", "xavier", "naive")


def init_weights(name: str, fan_in: int, fan_out: int, rng: np.random.Generator, dtype: type) -> np.ndarray:
    if name == "he":  # keeps ReLU activations' variance constant layer to layer
        scale = np.sqrt(2.0 / fan_in)
    elif name == "xavier":  # Glorot & Bengio: balances forward and backward variance for tanh/sigmoid
        scale = np.sqrt(2.0 / (fan_in + fan_out))
    elif name == "naive":
        scale = 0.01
    else:
        raise ValueError(f"unknown init {name!r}; choose one of {list(INITS)}")
    return (rng.standard_normal((fan_in, fan_out)) * scale).astype(dtype)
