"""Answers the guarding middlewares give themselves, for HTTP and for a WebSocket handshake alike."""

from __future__ import annotations

import json

from starlette.types import Receive, Scope, Send


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a request header (names are lower-case in ASGI)."""
    for key, value in scope.get("headers") or ():
        if key == name:
            return bytes(value)
    return None


async def refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    detail: str,
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    body: bytes | None = None,
    content_type: bytes = b"application/json",
) -> None:
    """Answer `status` with {"detail": ...} (or `body`). A WebSocket handshake gets the same HTTP answer where
    the server supports the ASGI denial-response extension (uvicorn does), else the standard 403 close."""
    payload = body if body is not None else json.dumps({"detail": detail}).encode()
    extra = [(b"content-type", content_type), (b"content-length", str(len(payload)).encode()), *(headers or [])]
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        if "websocket.http.response" in (scope.get("extensions") or {}):
            await send({"type": "websocket.http.response.start", "status": status, "headers": extra})
            await send({"type": "websocket.http.response.body", "body": payload})
        else:
            await send({"type": "websocket.close", "code": 1008, "reason": detail[:120]})
        return
    await send({"type": "http.response.start", "status": status, "headers": extra})
    await send({"type": "http.response.body", "body": payload})
