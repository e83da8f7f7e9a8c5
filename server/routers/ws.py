"""WebSocket /ws/runs/{id}: a snapshot on connect, then live progress/epoch/state/end messages; the client
may send {"action": "pause" | "resume" | "stop"}."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect
from pydantic import ValidationError
from starlette.websockets import WebSocketState

from engine.steering import ChangeError
from server.asgi_answers import refuse
from server.context import AppContext
from server.fanout import Subscriber
from server.messages import AckMessage, ControlMessage, EndMessage, ErrorMessage
from server.owners import Caller, caller_of
from server.routers.runs import run_detail, run_summary
from server.schemas import RunPatch, SnapshotMessage, StepRequest
from server.steer import BrokerUnavailable, Conflict, Forbidden, NotFound

router = APIRouter()

ACTIONS = ("pause", "resume", "stop", "set", "step")


@router.websocket("/ws/runs/{run_id}")
async def run_socket(websocket: WebSocket, run_id: str) -> None:
    ctx: AppContext = websocket.app.state.ctx
    caller = caller_of(websocket)
    active = ctx.runs.get_active(run_id) is not None
    limit = ctx.settings.max_watchers_per_run
    if active and ctx.runs.fanout.watchers(run_id) >= limit:
        # every watcher costs the training thread a share of each epoch: past the cap, refused before accepting
        detail = f"this run has {limit} watchers already (max_watchers_per_run); try again later"
        await refuse(websocket.scope, websocket.receive, websocket.send, 503, detail, headers=[(b"retry-after", b"5")])
        return
    await websocket.accept()
    try:
        run_summary(ctx, run_id, caller)  # 404 when the caller may not see it
    except HTTPException:
        await websocket.send_text(ErrorMessage(detail="no run with this id").encode())
        await websocket.close(code=4404)
        return
    active = ctx.runs.get_active(run_id) is not None
    sub = ctx.runs.fanout.subscribe(run_id) if active else None  # before the snapshot: nothing falls between
    if sub is not None and ctx.runs.fanout.watchers(run_id) > limit:  # others got in while this one was accepted
        ctx.runs.fanout.unsubscribe(run_id, sub)
        detail = f"this run has {limit} watchers already (max_watchers_per_run); try again later"
        await websocket.send_text(ErrorMessage(detail=detail).encode())
        await websocket.close(code=1013)
        return
    snapshot = run_detail(ctx, run_id, caller)
    await websocket.send_text(SnapshotMessage(run=snapshot).model_dump_json())
    latest = ctx.runs.fanout.latest_frame.get(run_id) if active else None
    if latest is not None:  # a 2-D run's newest picture, so a paused run is drawn at once
        await websocket.send_text(latest)
    if sub is None:  # the run is over: the snapshot is the whole story
        end = EndMessage(  # from the snapshot just sent: the run may have ended since `summary` was read
            run_id=run_id,
            state=snapshot.state,
            message=snapshot.message,
            test_accuracy=snapshot.test_accuracy,
            has_model=snapshot.has_model,
        )
        await websocket.send_text(end.encode())
        await websocket.close()
        return
    sender = asyncio.create_task(_send_loop(websocket, sub, ctx.settings.ws_send_timeout))
    try:
        await _receive_loop(websocket, ctx, run_id, sender, caller)
    finally:
        ctx.runs.fanout.unsubscribe(run_id, sub)
        sender.cancel()
        with contextlib.suppress(BaseException):
            await sender


async def _send_loop(websocket: WebSocket, sub: Subscriber, timeout: float) -> None:
    try:
        while True:
            for text in await sub.drain():
                # a client that stops reading fills its TCP window; past the timeout it is dropped, so the
                # messages it holds (and its socket) do not pile up in the server
                await asyncio.wait_for(websocket.send_text(text), timeout)
            if sub.overflowed:  # too slow to keep up: it must reconnect and redraw from a snapshot
                await websocket.close(code=1013, reason="client too slow; reconnect for a fresh snapshot")
                return
            if sub.closed and not sub.pending():  # close only once everything queued before it is sent
                await websocket.close(code=sub.close_code)
                return
    except (WebSocketDisconnect, RuntimeError, OSError, TimeoutError):
        return


async def _receive_loop(
    websocket: WebSocket, ctx: AppContext, run_id: str, sender: asyncio.Task[None], caller: Caller
) -> None:
    limit = ctx.settings.max_ws_message_bytes
    receive = asyncio.ensure_future(websocket.receive())
    try:
        while True:
            done, _ = await asyncio.wait({receive, sender}, return_when=asyncio.FIRST_COMPLETED)
            if sender in done:
                return
            message = receive.result()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None and message.get("bytes") is not None:
                text = message["bytes"].decode("utf-8", "replace")
            if text is not None and len(text) > limit:
                await websocket.close(code=1009, reason=f"message larger than max_ws_message_bytes={limit}")
                return
            reply = _handle_control(ctx, run_id, text or "", caller)
            if websocket.application_state == WebSocketState.CONNECTED:
                await websocket.send_text(reply.encode())
            receive = asyncio.ensure_future(websocket.receive())
    except (WebSocketDisconnect, RuntimeError, OSError):
        return
    finally:
        receive.cancel()


def _handle_control(ctx: AppContext, run_id: str, text: str, caller: Caller) -> AckMessage | ErrorMessage:
    try:
        control = ControlMessage.model_validate_json(text)
    except ValidationError:  # malformed, nested too deep, or not one of the actions
        return ErrorMessage(detail=f'unknown message: send {{"action": one of {list(ACTIONS)}}}')
    try:
        if control.action in ("set", "step"):
            ctx.runs.check_access(run_id, caller, control=True)
        if control.action == "set":  # the same checks as PATCH /api/runs/{id}
            fields = control.model_dump(include={"learning_rate", "l1", "l2", "batch_size", "momentum", "dropout"})
            patch = RunPatch.model_validate({k: v for k, v in fields.items() if v is not None}, strict=False)
            if not patch.items():
                return ErrorMessage(detail="set what? send learning_rate, l1, l2, batch_size, momentum or dropout")
            ctx.runs.change(run_id, patch.items())
            state = "changing"
        elif control.action == "step":
            batches = control.batches or control.steps or 1
            state = ctx.runs.step(run_id, StepRequest.model_validate({"batches": batches}).batches)
        else:
            state = ctx.runs.control(run_id, control.action, caller)
    except (NotFound, Conflict, Forbidden, ChangeError, BrokerUnavailable) as exc:
        return ErrorMessage(detail=str(exc))
    except ValidationError as exc:
        return ErrorMessage(detail="; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
    return AckMessage(action=control.action, state=state)
