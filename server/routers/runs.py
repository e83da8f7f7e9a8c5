"""Training runs: create, list, inspect, control, delete, download the model."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from typing import Annotated, Any, BinaryIO

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import Field
from starlette.concurrency import iterate_in_threadpool

from server.config import RunConfig
from server.context import AppContext, Ctx
from server.messages import ChangeMessage, EpochMessage, Extras, HealthMessage, ProgressMessage
from server.owners import Caller, caller_of
from server.registry import UnknownModel
from server.schemas import (
    AppliedOut,
    ControlAnswer,
    ForkRequest,
    PatchAnswer,
    RunCreated,
    RunDetail,
    RunPatch,
    RunSummary,
    StepRequest,
)

router = APIRouter(prefix="/api/runs", tags=["runs"])

RunId = Annotated[str, Path(pattern=r"^r[0-9a-f]{10}$", description="a run id such as r0123456789")]
CURSOR_PATTERN = r"^(\d{1,12}(?:\.\d{1,9})?)(?:_(r[0-9a-f]{10}))?$"
CURSOR = re.compile(CURSOR_PATTERN)
DOWNLOAD_CHUNK = 256 * 1024


class RunRequest(RunConfig):
    """A run config, and whether others may watch the run (GET, WebSocket); a run that is not shared is 404 to
    everyone but its owner and the token holder."""

    shared: Annotated[bool, Field(description="others may watch this run; only its owner may steer it")] = True


def summary_of(run: dict[str, Any], ctx: AppContext, caller: Caller) -> RunSummary:
    state = ctx.runs.live_state(run["id"])
    if state is not None:
        run["state"] = state
    run["queue_position"] = ctx.runs.queue_position(run)
    run["controllable"] = ctx.runs.may_control(caller, run["owner"], run["kind"])
    return RunSummary.model_validate(run)


def run_summary(ctx: AppContext, run_id: str, caller: Caller) -> RunSummary:
    run = ctx.store.get_run(run_id)
    if run is None or not caller.may_see(run["owner"], run["shared"]):
        raise HTTPException(404, "no run with this id")
    return summary_of(run, ctx, caller)


def run_detail(ctx: AppContext, run_id: str, caller: Caller) -> RunDetail:
    """The run with its whole history; stored epochs are parsed by pydantic-core (a 200-epoch history in
    milliseconds)."""
    summary = run_summary(ctx, run_id, caller)
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


# Errors of run operations (NotFound 404, Forbidden 403, Conflict 409, ChangeError and LimitError 422, QueueFull
# and QuotaExceeded 429) become answers in one place: server/app.py's RUN_ERRORS.
# The handlers below are `async` on purpose: they are short, and running on the event loop keeps every
# RunManager change on one thread (sync handlers would run in a thread pool, racing the loop).


@router.post("", status_code=201, response_model=RunCreated, responses={409: {}, 422: {}, 429: {}})
async def create_run(body: RunRequest, ctx: Ctx, request: Request) -> RunCreated:
    config = RunConfig.model_validate(body.model_dump(exclude={"shared"}))
    run = ctx.runs.create(config, owner=caller_of(request).owner, shared=body.shared)
    return RunCreated(id=run.id, state=run.state)


def _cursor(before: str | None) -> tuple[float, str] | None:
    if before is None:
        return None
    match = CURSOR.match(before)
    assert match is not None  # the query parameter's pattern
    return float(match.group(1)), match.group(2) or "s"  # "s" sorts after every run id: the whole instant


@router.get(
    "",
    response_model=list[RunSummary],
    responses={200: {"headers": {"Link": {"description": '<...?before=CURSOR&limit=N>; rel="next"'}}}},
)
async def list_runs(
    ctx: Ctx,
    request: Request,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=500, description="runs per page")] = 50,
    before: Annotated[
        str | None,
        Query(pattern=CURSOR_PATTERN, description="the cursor from the Link header: created_at, or created_at_runid"),
    ] = None,
) -> list[RunSummary]:
    """The runs this caller may see, newest first, one page at a time: the next page's URL is in the `Link`
    header (rel="next"), absent on the last page."""
    caller = caller_of(request)
    cursor = _cursor(before)
    # a thread: a page of a big table must not hold the event loop up
    runs = await asyncio.to_thread(ctx.store.list_runs, limit + 1, cursor, caller.owner, caller.admin)
    page = runs[:limit]
    if len(runs) > limit:
        last = page[-1]
        response.headers["Link"] = f'</api/runs?limit={limit}&before={last["created_at"]!r}_{last["id"]}>; rel="next"'
    return [summary_of(run, ctx, caller) for run in page]


@router.get("/{run_id}", response_model=RunDetail, responses={404: {}})
async def get_run(run_id: RunId, ctx: Ctx, request: Request) -> Response:
    """Config, state and the full per-epoch history (histograms included), plus the latest bulky views."""
    # encoded here, once: FastAPI would otherwise validate the history a second time
    return Response(run_detail(ctx, run_id, caller_of(request)).model_dump_json(), media_type="application/json")


def _control(ctx: Ctx, request: Request, run_id: str, action: str) -> ControlAnswer:
    state = ctx.runs.control(run_id, action, caller_of(request))
    return ControlAnswer(id=run_id, state=state)


CONTROL_ERRORS: dict[int | str, dict[str, Any]] = {403: {}, 404: {}, 409: {}}


@router.post("/{run_id}/pause", response_model=ControlAnswer, responses=CONTROL_ERRORS)
async def pause_run(run_id: RunId, ctx: Ctx, request: Request) -> ControlAnswer:
    return _control(ctx, request, run_id, "pause")


@router.post("/{run_id}/resume", response_model=ControlAnswer, responses=CONTROL_ERRORS)
async def resume_run(run_id: RunId, ctx: Ctx, request: Request) -> ControlAnswer:
    return _control(ctx, request, run_id, "resume")


@router.post("/{run_id}/stop", response_model=ControlAnswer, responses=CONTROL_ERRORS)
async def stop_run(run_id: RunId, ctx: Ctx, request: Request) -> ControlAnswer:
    return _control(ctx, request, run_id, "stop")


@router.patch("/{run_id}", response_model=PatchAnswer, responses={**CONTROL_ERRORS, 422: {}})
async def change_run(run_id: RunId, patch: RunPatch, ctx: Ctx, request: Request) -> PatchAnswer:
    """Change learning_rate, l2, batch_size, momentum or a layer's dropout while the run trains or is paused;
    each applies from the next batch and is recorded (GET /api/runs/{id} lists them under "changes")."""
    if not patch.items():
        raise HTTPException(422, "nothing to change: send learning_rate, l2, batch_size, momentum or dropout")
    ctx.runs.check_access(run_id, caller_of(request), control=True)
    queued = ctx.runs.change(run_id, patch.items())
    return PatchAnswer(id=run_id, queued=[AppliedOut(name=n, value=v) for n, v in queued])


@router.post("/{run_id}/step", response_model=ControlAnswer, responses={**CONTROL_ERRORS, 422: {}})
async def step_run(run_id: RunId, body: StepRequest, ctx: Ctx, request: Request) -> ControlAnswer:
    """While paused: train exactly `batches` batches, then pause again."""
    ctx.runs.check_access(run_id, caller_of(request), control=True)
    state = ctx.runs.step(run_id, body.batches)
    return ControlAnswer(id=run_id, state=state)


@router.post(
    "/{run_id}/fork", status_code=201, response_model=RunCreated, responses={404: {}, 409: {}, 422: {}, 429: {}}
)
async def fork_run(run_id: RunId, body: ForkRequest, ctx: Ctx, request: Request) -> RunCreated:
    """A new run from the checkpoint after `epoch`, with `changes` applied from its first batch; with no
    changes it retraces the original exactly."""
    caller = caller_of(request)
    ctx.runs.check_access(run_id, caller)  # whoever may watch a run may fork it: the fork is theirs
    run = ctx.runs.fork(run_id, body.epoch, body.changes.items(), owner=caller.owner)
    return RunCreated(id=run.id, state=run.state)


@router.delete("/{run_id}", status_code=204, responses=CONTROL_ERRORS)
async def delete_run(run_id: RunId, ctx: Ctx, request: Request) -> Response:
    if ctx.default_model_run == run_id:
        raise HTTPException(409, "this run is training the default model; wait until it finishes")
    await ctx.runs.delete(run_id, caller_of(request))
    return Response(status_code=204)


def _chunks(handle: BinaryIO) -> Iterator[bytes]:
    with handle:
        while chunk := handle.read(DOWNLOAD_CHUNK):
            yield chunk


@router.get(
    "/{run_id}/model",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {}}}, 404: {}},
)
def download_model(run_id: RunId, ctx: Ctx, request: Request) -> StreamingResponse:
    run = ctx.store.get_run(run_id)
    if run is None or not caller_of(request).may_see(run["owner"], run["shared"]) or not run["has_model"]:
        raise HTTPException(404, f"run {run_id!r} has no saved model")
    try:
        handle = ctx.models.open_model(run_id)  # opened first: a DELETE from now on cannot cut it short
    except (UnknownModel, OSError):
        raise HTTPException(404, f"run {run_id!r} has no saved model") from None
    size = handle.seek(0, os.SEEK_END)  # a file or, with a shared database, bytes in memory
    handle.seek(0)
    headers = {
        "content-length": str(size),
        "content-disposition": f'attachment; filename="nnplay-{run_id}.npz"',
    }
    return StreamingResponse(
        iterate_in_threadpool(_chunks(handle)), media_type="application/octet-stream", headers=headers
    )
