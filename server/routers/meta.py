"""What a user can choose from: health, data sets, presets, options and limits, and what a network would be."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from engine.activations import HIDDEN_ACTIVATIONS, OUTPUT_ACTIVATIONS
from engine.datasets import REGISTRY
from engine.initializers import INITS
from engine.losses import LOSSES
from engine.optimizers import OPTIMIZERS
from engine.schedules import SCHEDULES
from engine.spec import LAYER_TYPES, PADDINGS
from server.config import Architecture, RunConfig
from server.context import Ctx
from server.limits import LimitError, check_spec_limits
from server.presets import PRESETS
from server.schemas import (
    ArchitectureOut,
    DatasetOptionOut,
    DatasetOut,
    DatasetSample,
    Health,
    Latency,
    LayerRow,
    Options,
    Preset,
)
from server.settings import Settings

router = APIRouter(prefix="/api", tags=["meta"])


@router.get("/health", response_model=Health)
async def health(ctx: Ctx) -> Health:
    training, queued = ctx.runs.counts()
    return Health(
        status="ok",
        mnist=ctx.data.state("mnist"),  # type: ignore[arg-type]
        mnist_error=ctx.data.errors.get("mnist"),
        default_model=ctx.default_model_state(),  # type: ignore[arg-type]
        default_model_run=ctx.default_model_run,
        default_model_error=ctx.default_model_error,
        runs_training=training,
        runs_queued=queued,
        predict_ms=_latency(list(ctx.predict_times)),
    )


def _latency(seconds: list[float]) -> Latency:
    """Server-side /api/predict time over the most recent calls."""
    if not seconds:
        return Latency(n=0, p50=None, p99=None)
    ordered = sorted(seconds)
    pick = lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)  # noqa: E731
    return Latency(n=len(ordered), p50=pick(0.5), p99=pick(0.99))


@router.get("/datasets", response_model=list[DatasetOut])
def datasets(ctx: Ctx) -> list[DatasetOut]:
    return [
        DatasetOut(
            name=d.name,
            description=d.description,
            input_shape=list(d.input_shape),
            task=d.task,  # type: ignore[arg-type]
            classes=d.classes,
            train_size=d.train_size,
            test_size=d.test_size,
            ready=ctx.data.ready(d.name),
            options=[
                DatasetOptionOut(
                    name=o.name,
                    description=o.description,
                    default=o.default,
                    minimum=o.minimum,
                    maximum=o.maximum,
                    choices=list(o.choices),
                )
                for o in d.options
            ],
        )
        for d in REGISTRY.values()
    ]


@router.get("/datasets/{name}/samples/{index}", response_model=DatasetSample, responses={404: {}, 503: {}})
def dataset_sample(name: str, index: Annotated[int, Path(ge=0)], ctx: Ctx) -> DatasetSample:
    """Image `index` of the data set's test split and its true label: a real digit to predict (the page's
    "try a random test digit", for those who cannot draw with a pointer). Sync: the first call may load the set."""
    info = REGISTRY.get(name)
    if info is None:
        raise HTTPException(404, f"unknown data set {name!r}; GET /api/datasets lists them")
    if len(info.input_shape) != 3 or info.input_shape[2] != 1:
        raise HTTPException(404, f"{name} has no images to show")
    if not ctx.data.ready(name):
        raise HTTPException(503, f"{name} is not on the server yet")
    data = ctx.data.get(name)
    if index >= len(data.y_test):
        raise HTTPException(
            404, f"{name}'s test split has {len(data.y_test)} images: index 0 to {len(data.y_test) - 1}"
        )
    height, width = info.input_shape[0], info.input_shape[1]
    pixels = data.x_test[index].reshape(height, width).round(4)
    return DatasetSample(dataset=name, index=index, label=int(data.y_test[index]), pixels=pixels.tolist())


@router.get("/presets", response_model=list[Preset])
def presets() -> list[Preset]:
    return PRESETS


def limits_of(settings: Settings) -> dict[str, int]:
    names = [
        "max_layers",
        "max_units",
        "max_filters",
        "max_parameters",
        "max_macs",
        "max_epochs",
        "max_toy_epochs",
        "max_batch_size",
        "max_concurrent_runs",
        "max_queued_runs",
        "max_image_bytes",
        "max_canvas_side",
        "max_model_bytes",
    ]
    return {name: int(getattr(settings, name)) for name in names}


@router.get("/options", response_model=Options)
def options(ctx: Ctx) -> Options:
    return Options(
        layer_types=list(LAYER_TYPES),
        activations=list(HIDDEN_ACTIVATIONS),
        output_activations=list(OUTPUT_ACTIVATIONS),
        losses=list(LOSSES),
        optimizers=list(OPTIMIZERS),
        schedules=list(SCHEDULES),
        inits=list(INITS),
        paddings=list(PADDINGS),
        limits=limits_of(ctx.settings),
        run_config_schema=RunConfig.model_json_schema(),
    )


@router.post("/architecture", response_model=ArchitectureOut, responses={422: {}})
def architecture(body: Architecture, ctx: Ctx) -> ArchitectureOut:
    """Each layer's output shape, parameters and multiply-adds, from the engine's one description; 422 names
    the first layer that cannot work (a conv after a dense layer, a pool below 1x1) or the limit exceeded."""
    spec = body.model_spec()
    try:
        check_spec_limits(spec, ctx.settings)
    except LimitError as exc:
        raise HTTPException(422, str(exc)) from None
    rows = [
        LayerRow(index=r.index, type=r.type, output_shape=list(r.output_shape), parameters=r.parameters, macs=r.macs)
        for r in body.describe()
    ]
    return ArchitectureOut(
        input_shape=list(spec.input_shape),
        layers=rows,
        parameters=sum(r.parameters for r in rows),
        macs=sum(r.macs for r in rows),
    )
