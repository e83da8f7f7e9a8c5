"""WebSocket /ws/runs/{id}: a snapshot on connect, then live progress/epoch/state/end messages; the client
may send {"action": "pause" | "resume" | "stop"}."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from fastapi import APIRouter, HTTPException, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from server.context import AppContext
from server.messages import dumps
from server.routers.runs import run_detail_json, run_summary
from server.runs import Conflict, NotFound, Subscriber

router = APIRouter()

ACTIONS = ("pause", "resume", "stop")


@router.websocket("/ws/runs/{run_id}")
async def run_socket(websocket: WebSocket, run_id: str) -> None:
    ctx: AppContext = websocket.app.state.ctx
    await websocket.accept()
    try:
        summary = run_summary(ctx, run_id)
    except HTTPException:
        await websocket.send_text(dumps({"type": "error", "detail": "no run with this id"}))
        await websocket.close(code=4404)
        return
    sub = ctx.runs.subscribe(run_id)  # before the snapshot: nothing can fall between the two
    await websocket.send_text(f'{{"type":"snapshot","run":{run_detail_json(ctx, run_id)}}}')
    if sub is None:  # the run is over: the snapshot is the whole story
        end = {key: summary[key] for key in ("state", "message", "test_accuracy", "has_model")}
        await websocket.send_text(dumps({"type": "end", "run_id": run_id, **end}))
        await websocket.close()
        return
    sender = asyncio.create_task(_send_loop(websocket, sub, ctx.settings.ws_send_timeout))
    try:
        await _receive_loop(websocket, ctx, run_id, sender)
    finally:
        ctx.runs.unsubscribe(run_id, sub)
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


async def _receive_loop(websocket: WebSocket, ctx: AppContext, run_id: str, sender: asyncio.Task[None]) -> None:
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
            reply = _handle_control(ctx, run_id, text or "")
            if reply is not None and websocket.application_state == WebSocketState.CONNECTED:
                await websocket.send_text(dumps(reply))
            receive = asyncio.ensure_future(websocket.receive())
    except (WebSocketDisconnect, RuntimeError, OSError):
        return
    finally:
        receive.cancel()


def _handle_control(ctx: AppContext, run_id: str, text: str) -> dict[str, Any] | None:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):  # malformed, or nested deep enough to exhaust the parser
        return {"type": "error", "detail": 'messages must be JSON objects such as {"action": "pause"}'}
    if not isinstance(data, dict) or data.get("action") not in ACTIONS:
        return {"type": "error", "detail": f'unknown message: send {{"action": one of {list(ACTIONS)}}}'}
    try:
        state = ctx.runs.control(run_id, data["action"])
    except (NotFound, Conflict) as exc:
        return {"type": "error", "detail": str(exc)}
    return {"type": "ack", "action": data["action"], "state": state}
