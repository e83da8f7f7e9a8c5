"""Weight initialisation. The naive ``randn * 0.01`` is kept on purpose: with sigmoid it is the classic
tutorial's choice, and next to He/Xavier it shows why scale matters."""

from __future__ import annotations

import numpy as np

INITS = ("he", "xavier", "naive")


def init_scale(name: str, fan_in: int, fan_out: int) -> float:
    """Standard deviation of the initial weights."""
    if name == "he":  # keeps ReLU activations' variance constant layer to layer
        return float(np.sqrt(2.0 / fan_in))
    if name == "xavier":  # Glorot & Bengio: balances forward and backward variance for tanh/sigmoid
        return float(np.sqrt(2.0 / (fan_in + fan_out)))
    if name == "naive":
        return 0.01
    raise ValueError(f"unknown init {name!r}; choose one of {list(INITS)}")


def init_weights(name: str, fan_in: int, fan_out: int, rng: np.random.Generator, dtype: type) -> np.ndarray:
    return (rng.standard_normal((fan_in, fan_out)) * init_scale(name, fan_in, fan_out)).astype(dtype)
