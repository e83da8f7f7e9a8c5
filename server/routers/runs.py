"""Training runs: create, list, inspect, control, delete, download the model."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Response
from fastapi.responses import FileResponse

from server.context import Ctx
from server.messages import dumps
from server.runs import Conflict, NotFound, QueueFull
from server.schemas import LimitError, RunConfig, RunCreated

router = APIRouter(prefix="/api/runs", tags=["runs"])

RunId = Annotated[str, Path(pattern=r"^r[0-9a-f]{10}$", description="a run id such as r0123456789")]


def run_summary(ctx: Ctx, run_id: str) -> dict[str, Any]:
    run = ctx.store.get_run(run_id)
    if run is None:
        raise HTTPException(404, "no run with this id")
    active = ctx.runs.get_active(run_id)
    if active is not None:
        run["state"] = active.state
    return run


def run_detail_json(ctx: Ctx, run_id: str) -> str:
    """The run with its whole history, as JSON text. The stored epochs are already strict JSON, so they are
    spliced in rather than parsed and re-encoded: a 200-epoch history costs milliseconds, not half a second of
    the event loop."""
    head = dumps(run_summary(ctx, run_id))
    history = ",".join(ctx.store.history(run_id))
    extras = ctx.store.extras(run_id) or "null"
    return f'{head[:-1]},"history":[{history}],"extras":{extras}}}'


# The handlers below are `async` on purpose: they are short, and running on the event loop keeps every
# RunManager change on one thread (sync handlers would run in a thread pool, racing the loop).


@router.post("", status_code=201, responses={409: {}, 422: {}, 429: {}})
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


@router.get("")
async def list_runs(ctx: Ctx) -> list[dict[str, Any]]:
    runs = ctx.store.list_runs()
    for run in runs:
        active = ctx.runs.get_active(run["id"])
        if active is not None:
            run["state"] = active.state
    return runs


@router.get(
    "/{run_id}",
    response_class=Response,
    responses={200: {"content": {"application/json": {"schema": {"type": "object"}}}}, 404: {}},
)
async def get_run(run_id: RunId, ctx: Ctx) -> Response:
    """Config, state and the full per-epoch history (histograms included), plus the latest bulky views."""
    return Response(run_detail_json(ctx, run_id), media_type="application/json")


def _control(ctx: Ctx, run_id: str, action: str) -> dict[str, str]:
    try:
        state = ctx.runs.control(run_id, action)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except Conflict as exc:
        raise HTTPException(409, str(exc)) from None
    return {"id": run_id, "state": state}


@router.post("/{run_id}/pause", responses={404: {}, 409: {}})
async def pause_run(run_id: RunId, ctx: Ctx) -> dict[str, str]:
    return _control(ctx, run_id, "pause")


@router.post("/{run_id}/resume", responses={404: {}, 409: {}})
async def resume_run(run_id: RunId, ctx: Ctx) -> dict[str, str]:
    return _control(ctx, run_id, "resume")


@router.post("/{run_id}/stop", responses={404: {}, 409: {}})
async def stop_run(run_id: RunId, ctx: Ctx) -> dict[str, str]:
    return _control(ctx, run_id, "stop")


@router.delete("/{run_id}", status_code=204, responses={404: {}})
async def delete_run(run_id: RunId, ctx: Ctx) -> Response:
    if ctx.default_model_run == run_id:
        raise HTTPException(409, "this run is training the default model; wait until it finishes")
    try:
        await ctx.runs.delete(run_id)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    ctx.models.forget(run_id)
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
