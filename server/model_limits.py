"""An uploaded model obeys the same size limits as a run's network, checked from its header alone (the
arrays are not read before the limits pass)."""

from __future__ import annotations

from engine.model import ModelSpec
from server.schemas import LimitError
from server.settings import Settings


def check_model_limits(spec: ModelSpec, settings: Settings) -> None:
    """The network-size part of server.schemas.check_limits (layers, units, parameters), same messages."""
    checks = [
        ("max_layers", len(spec.hidden), settings.max_layers, "hidden layers"),
        ("max_units", max((h.units for h in spec.hidden), default=0), settings.max_units, "units in a layer"),
        ("max_parameters", spec.parameter_count, settings.max_parameters, "parameters"),
    ]
    for limit, value, maximum, what in checks:
        if value > maximum:
            raise LimitError(limit, f"{value} {what} exceeds the limit {limit}={maximum}")
