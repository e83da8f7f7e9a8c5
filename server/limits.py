"""The configurable limits (Settings) on what a network and a run may cost, checked before anything is allocated;
for runs and uploaded models alike. Sizes come from the engine's describe()."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.datasets import toy
from engine.spec import Conv2DSpec, DenseSpec, ModelSpec, describe
from server.settings import Settings

if TYPE_CHECKING:
    from server.config import RunConfig


class LimitError(ValueError):
    """A request exceeds one of the configured limits; the message names it."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


def check_spec_limits(spec: ModelSpec, settings: Settings) -> None:
    """The size limits of a network, from the engine's description: for runs and uploaded models alike."""
    rows = describe(spec)
    dense = [layer.units for layer in spec.layers if isinstance(layer, DenseSpec)]
    conv = [layer.filters for layer in spec.layers if isinstance(layer, Conv2DSpec)]
    checks = [
        ("max_layers", len(spec.layers), settings.max_layers, "hidden layers"),
        ("max_units", max(dense, default=0), settings.max_units, "units in a layer"),
        ("max_filters", max(conv, default=0), settings.max_filters, "filters in a conv layer"),
        ("max_parameters", sum(r.parameters for r in rows), settings.max_parameters, "parameters"),
        ("max_macs", sum(r.macs for r in rows), settings.max_macs, "multiply-adds per sample"),
    ]
    for limit, value, maximum, what in checks:
        if value > maximum:
            raise LimitError(limit, f"{value} {what} exceeds the limit {limit}={maximum}")


def check_limits(config: RunConfig, settings: Settings) -> None:
    """Called before any array is allocated."""
    check_spec_limits(config.model_spec(), settings)
    epochs_limit = "max_toy_epochs" if config.dataset in toy.GENERATORS else "max_epochs"
    for limit, value, maximum, what in (
        (epochs_limit, config.epochs, getattr(settings, epochs_limit), "epochs"),
        ("max_batch_size", config.batch_size, settings.max_batch_size, "batch size"),
    ):
        if value > maximum:
            raise LimitError(limit, f"{value} {what} exceeds the limit {limit}={maximum}")
