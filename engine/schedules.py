"""Learning-rate schedules as pure functions of training progress, measured in (fractional) epochs so cosine
decays smoothly batch by batch."""

from __future__ import annotations

import math

SCHEDULES = ("constant", "step", "cosine", "onecycle")
ONECYCLE_START = 25.0  # one-cycle starts at base_lr / 25 ...
ONECYCLE_END = 1e4  # ... and ends at base_lr / 1e4 (Smith & Topin 2018; PyTorch's OneCycleLR defaults)


def learning_rate(
    schedule: str,
    base_lr: float,
    progress: float,
    total_epochs: int,
    *,
    step_size: int = 5,
    gamma: float = 0.5,
    min_lr: float = 0.0,
    warmup: float = 0.3,
) -> float:
    """progress: epochs completed so far, e.g. 2.5 halfway through the third epoch."""
    if schedule == "constant":
        return base_lr
    if schedule == "step":  # multiply by gamma every step_size epochs
        return base_lr * gamma ** math.floor(progress / step_size)
    if schedule == "cosine":  # half a cosine from base_lr down to min_lr over the run
        t = min(max(progress / total_epochs, 0.0), 1.0)
        return min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * t))
    if schedule == "onecycle":  # half a cosine up to base_lr over the warm-up fraction, half a cosine down after
        t = min(max(progress / total_epochs, 0.0), 1.0)
        low, high, end = base_lr / ONECYCLE_START, base_lr, base_lr / ONECYCLE_END
        if t < warmup:
            return high + 0.5 * (low - high) * (1 + math.cos(math.pi * t / warmup))
        u = (t - warmup) / (1.0 - warmup) if warmup < 1.0 else 1.0
        return end + 0.5 * (high - end) * (1 + math.cos(math.pi * u))
    raise ValueError(f"unknown schedule {schedule!r}; choose one of {list(SCHEDULES)}")
