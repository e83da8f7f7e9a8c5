"""Training runs: create, list, inspect, control, delete, download the model."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response
from fastapi.responses import FileResponse

from engine.steering import ChangeError
from server.config import ForkRequest, LimitError, RunConfig, RunPatch, StepRequest
from server.context import AppContext, Ctx
from server.messages import ChangeMessage, EpochMessage, Extras, HealthMessage, ProgressMessage
from server.runs import Conflict, NotFound, QueueFull
from server.schemas import AppliedOut, ControlAnswer, PatchAnswer, RunCreated, RunDetail, RunSummary

router = APIRouter(prefix="/api/runs", tags=["runs"])

RunId = Annotated[str, Path(pattern=r"^r[0-9a-f]{10}$", description="a run id such as r0123456789")]


def run_summary(ctx: AppContext, run_id: str) -> RunSummary:
    run = ctx.store.get_run(run_id)
    if run is None:
        raise HTTPException(404, "no run with this id")
    active = ctx.runs.get_active(run_id)
    if active is not None:
        run["state"] = active.state
    return RunSummary.model_validate(run)


def run_detail(ctx: AppContext, run_id: str) -> RunDetail:
    """The run with its whole history; stored epochs are parsed by pydantic-core (a 200-epoch history in
    milliseconds)."""
    summary = run_summary(ctx, run_id)
    extras = ctx.store.extras(run_id)
    journal = ctx.runs.journal
    points = journal.progress(run_id)
    return RunDetail(
        **summary.model_dump(),
        history=[EpochMessage.model_validate_json(text) for text in ctx.store.history(run_id)],
        extras=Extras.model_validate_json(extras) if extras else None,
        progress=[ProgressMessage.model_validate_json(data) for data, _ in points],
        health=[HealthMessage.model_validate_json(health) for _, health in points if health],
        changes=[ChangeMessage.model_validate(change) for change in journal.changes(run_id)],
        checkpoints=journal.checkpoint_epochs(run_id),
    )


# The handlers below are `async` on purpose: they are short, and running on the event loop keeps every
# RunManager change on one thread (sync handlers would run in a thread pool, racing the loop).


@router.post("", status_code=201, response_model=RunCreated, responses={409: {}, 422: {}, 429: {}})
async def create_run(config: RunConfig, ctx: Ctx) -> RunCreated:
    try:
        run = ctx.runs.create(config)
    except LimitError as exc:
        raise HTTPException(422, str(exc)) from None
    except QueueFull as exc:
        raise HTTPException(429, str(exc)) from None
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from None
    return RunCreated(id=run.id, state=run.state)


@router.get("", response_model=list[RunSummary])
async def list_runs(ctx: Ctx) -> list[RunSummary]:
    runs = ctx.store.list_runs()
    for run in runs:
        active = ctx.runs.get_active(run["id"])
        if active is not None:
            run["state"] = active.state
    return [RunSummary.model_validate(run) for run in runs]


@router.get("/{run_id}", response_model=RunDetail, responses={404: {}})
async def get_run(run_id: RunId, ctx: Ctx) -> Response:
    """Config, state and the full per-epoch history (histograms included), plus the latest bulky views."""
    # encoded here, once: FastAPI would otherwise validate the history a second time
    return Response(run_detail(ctx, run_id).model_dump_json(), media_type="application/json")


def _control(ctx: Ctx, run_id: str, action: str) -> ControlAnswer:
    try:
        state = ctx.runs.control(run_id, action)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from None
    return ControlAnswer(id=run_id, state=state)


@router.post("/{run_id}/pause", response_model=ControlAnswer, responses={404: {}, 409: {}})
async def pause_run(run_id: RunId, ctx: Ctx) -> ControlAnswer:
    return _control(ctx, run_id, "pause")


@router.post("/{run_id}/resume", response_model=ControlAnswer, responses={404: {}, 409: {}})
async def resume_run(run_id: RunId, ctx: Ctx) -> ControlAnswer:
    return _control(ctx, run_id, "resume")


@router.post("/{run_id}/stop", response_model=ControlAnswer, responses={404: {}, 409: {}})
async def stop_run(run_id: RunId, ctx: Ctx) -> ControlAnswer:
    return _control(ctx, run_id, "stop")


@router.patch("/{run_id}", response_model=PatchAnswer, responses={404: {}, 409: {}, 422: {}})
async def change_run(run_id: RunId, patch: RunPatch, ctx: Ctx) -> PatchAnswer:
    """Change learning_rate, l2, batch_size, momentum or a layer's dropout while the run trains or is paused;
    each applies from the next batch and is recorded (GET /api/runs/{id} lists them under "changes")."""
    if not patch.items():
        raise HTTPException(422, "nothing to change: send learning_rate, l2, batch_size, momentum or dropout")
    try:
        queued = ctx.runs.change(run_id, patch.items())
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from None
    except ChangeError as exc:
        raise HTTPException(422, str(exc)) from None
    return PatchAnswer(id=run_id, queued=[AppliedOut(name=n, value=v) for n, v in queued])


@router.post("/{run_id}/step", response_model=ControlAnswer, responses={404: {}, 409: {}})
async def step_run(run_id: RunId, body: StepRequest, ctx: Ctx) -> ControlAnswer:
    """While paused: train exactly `batches` batches, then pause again."""
    try:
        state = ctx.runs.step(run_id, body.batches)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from None
    return ControlAnswer(id=run_id, state=state)


@router.post(
    "/{run_id}/fork", status_code=201, response_model=RunCreated, responses={404: {}, 409: {}, 422: {}, 429: {}}
)
async def fork_run(run_id: RunId, body: ForkRequest, ctx: Ctx) -> RunCreated:
    """A new run from the checkpoint after `epoch`, with `changes` applied from its first batch; with no
    changes it retraces the original exactly."""
    try:
        run = ctx.runs.fork(run_id, body.epoch, body.changes.items())
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except (Conflict, ChangeError) as exc:
        raise HTTPException(409 if isinstance(exc, Conflict) else 422, str(exc)) from None
    except LimitError as exc:
        raise HTTPException(422, str(exc)) from None
    except QueueFull as exc:
        raise HTTPException(429, str(exc)) from None
    return RunCreated(id=run.id, state=run.state)


@router.delete("/{run_id}", status_code=204, responses={404: {}, 409: {}})
async def delete_run(run_id: RunId, ctx: Ctx) -> Response:
    if ctx.default_model_run == run_id:
        raise HTTPException(409, "this run is training the default model; wait until it finishes")
    try:
        await ctx.runs.delete(run_id)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    return Response(status_code=204)


@router.get(
    "/{run_id}/model",
    response_class=FileResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, 404: {}},
)
def download_model(run_id: RunId, ctx: Ctx) -> FileResponse:
    run = ctx.store.get_run(run_id)
    path = ctx.models.path_of(run_id)
    if run is None or not run["has_model"] or not path.is_file():
        raise HTTPException(404, f"run {run_id!r} has no saved model")
    name = f"nnplay-{run_id}.npz"
    return FileResponse(path, media_type="application/octet-stream", filename=name)
