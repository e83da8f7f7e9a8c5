"""What a user can choose from: health, datasets, presets, options and limits."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from engine import mnist
from engine.activations import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS
from engine.initializers import INITS
from engine.losses import LOSSES
from engine.optimizers import OPTIMIZERS
from engine.schedules import SCHEDULES
from server.context import Ctx
from server.presets import PRESETS
from server.schemas import Preset, limits_of

router = APIRouter(prefix="/api", tags=["meta"])


@router.get("/health")
async def health(ctx: Ctx) -> dict[str, Any]:
    return {
        "status": "ok",
        "mnist": "ready" if ctx.mnist.ready() else ("fetching" if ctx.mnist_fetching else "missing"),
        "mnist_error": ctx.mnist.error,
        "default_model": ctx.default_model_state(),
        "default_model_run": ctx.default_model_run,
        "default_model_error": ctx.default_model_error,
        "runs_training": ctx.runs.running_count(),
        "runs_queued": len(ctx.runs.queue),
        "predict_ms": _latency(list(ctx.predict_times)),
    }


def _latency(seconds: list[float]) -> dict[str, float | int | None]:
    """Server-side /api/predict time over the most recent calls."""
    if not seconds:
        return {"n": 0, "p50": None, "p99": None}
    ordered = sorted(seconds)
    pick = lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)  # noqa: E731
    return {"n": len(ordered), "p50": pick(0.5), "p99": pick(0.99)}


@router.get("/datasets")
def datasets(ctx: Ctx) -> list[dict[str, Any]]:
    return [
        {
            "name": "mnist",
            "description": "Handwritten digits 0-9, 28x28 grey pixels (LeCun, Cortes & Burges)",
            "train_size": 60_000,
            "test_size": 10_000,
            "input_shape": [28, 28],
            "classes": 10,
            "ready": ctx.mnist.ready(),
            "location": str(mnist.mnist_dir(ctx.settings.data_dir)),
        }
    ]


@router.get("/presets")
def presets() -> list[Preset]:
    return PRESETS


@router.get("/options")
def options(ctx: Ctx) -> dict[str, Any]:
    return {
        "activations": list(HIDDEN_ACTIVATIONS),
        "output_activations": list(OUTPUT_ACTIVATIONS),
        "losses": list(LOSSES),
        "optimizers": list(OPTIMIZERS),
        "schedules": list(SCHEDULES),
        "inits": list(INITS),
        "limits": limits_of(ctx.settings),
    }
