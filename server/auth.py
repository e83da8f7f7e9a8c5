"""Tokens, Jupyter's way: a server reachable from other machines needs one. The token lets a client in (as
an anonymous owner, server/owners.py); NNPLAY_ADMIN_TOKEN, if set, also makes it admin (steer and delete any
run or model): a class shares the first, the teacher keeps the second.

Bound to a non-loopback address, the server requires a token: NNPLAY_TOKEN, or one generated at start and
printed with a ready-to-open URL (`http://HOST:PORT/?token=...`). A loopback bind needs none unless
NNPLAY_TOKEN is set. A client presents it as `Authorization: Bearer TOKEN`, or opens a page with
`?token=TOKEN` once: that sets an HttpOnly, SameSite=Strict cookie (which the page's fetches and its
WebSocket then send) and redirects to the same URL without the token, so it stays out of history and
of the Referer. /api/health stays open, and without a token it says only whether the server is up and ready.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
from urllib.parse import parse_qsl, quote, urlencode

from pydantic import SecretStr
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.asgi_answers import header, refuse
from server.settings import Settings

HEALTH_PATH = "/api/health"
PUBLIC_HEALTH_KEYS = ("status", "mnist", "default_model")  # nothing private: no errors, ids, paths or timings
NEEDS_TOKEN = "this server needs a token: open the URL printed in its log, or send Authorization: Bearer TOKEN"

TOKEN_PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>nnplay: token needed</title></head>
<body><h1>This server needs a token</h1>
<p>Open the URL printed in the server's log (it ends in <code>/?token=...</code>; with Docker:
<code>docker logs CONTAINER</code>). If the server was started with <code>NNPLAY_TOKEN</code>, open this
page with <code>?token=</code> and that value.</p></body></html>
"""


def is_loopback(host: str) -> bool:
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # any other name may resolve to a public address


def ensure_token(settings: Settings) -> tuple[Settings, bool]:
    """Settings with the token this server requires, if any, and whether it was generated just now."""
    if settings.token is not None or is_loopback(settings.host):
        return settings, False
    return settings.model_copy(update={"token": SecretStr(secrets.token_urlsafe(32))}), True


def token_url(host: str, port: int, token: str) -> str:
    """The URL to open: a wildcard bind is reached through loopback on this machine (and through the port
    mapping from a Docker host)."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/?token={token}"


def cookie_name(scope: Scope) -> str:
    # Cookies are not kept apart by port: two servers on one machine must not overwrite each other's.
    server = scope.get("server")
    return f"nnplay-token-{server[1]}" if server and server[1] else "nnplay-token"


class TokenGuard:
    """401 for every request without the token, except /api/health (which then shows only public fields)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.token = settings.token.get_secret_value().encode() if settings.token is not None else None
        admin = settings.admin_token
        self.admin_token = admin.get_secret_value().encode() if admin is not None else None

    def _valid(self, presented: str | None) -> bool:
        """The token, or the admin token (which lets in too)."""
        return self._admin(presented) or (
            self.token is not None and presented is not None and secrets.compare_digest(presented.encode(), self.token)
        )

    def _admin(self, presented: str | None) -> bool:
        return (
            self.admin_token is not None
            and presented is not None
            and secrets.compare_digest(presented.encode(), self.admin_token)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if self.token is None:  # a private server: open to all; the admin token, if set, still makes an admin
            if self._admin(_presented(scope)):
                scope.setdefault("state", {})["admin"] = True
            await self.app(scope, receive, send)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        from_query = [value for key, value in query if key == "token"]
        if scope["type"] == "http" and scope.get("method") == "GET" and from_query:
            if self._valid(from_query[-1]):
                rest = [(k, v) for k, v in query if k != "token"]
                await _set_cookie_and_redirect(scope, send, from_query[-1], rest)
            else:
                await refuse(scope, receive, send, 401, "the token in the URL is not this server's token")
            return
        presented = _presented(scope)
        if self._valid(presented):
            # The token lets a student in as an owner among others; only the admin token (the teacher's) may
            # steer and delete anything. A class shares the token, so it cannot be what makes an admin.
            if self._admin(presented):
                scope.setdefault("state", {})["admin"] = True
            await self.app(scope, receive, send)
        elif scope["type"] == "http" and scope["path"] == HEALTH_PATH:
            await self.app(scope, receive, _public_fields_only(send))
        elif scope["type"] == "http" and scope["path"] in ("/", "/index.html"):
            await refuse(scope, receive, send, 401, NEEDS_TOKEN, body=TOKEN_PAGE, content_type=b"text/html")
        else:
            await refuse(scope, receive, send, 401, NEEDS_TOKEN, headers=[(b"www-authenticate", b"Bearer")])


def _presented(scope: Scope) -> str | None:
    authorization = header(scope, b"authorization")
    if authorization is not None:
        scheme, _, value = authorization.decode("latin-1").partition(" ")
        return value.strip() if scheme.lower() == "bearer" else None
    cookies = header(scope, b"cookie")
    if cookies is not None:
        return cookie_parser(cookies.decode("latin-1")).get(cookie_name(scope))
    return None


async def _set_cookie_and_redirect(scope: Scope, send: Send, token: str, rest: list[tuple[str, str]]) -> None:
    secure = "; Secure" if scope.get("scheme") == "https" else ""
    cookie = f"{cookie_name(scope)}={token}; Path=/; HttpOnly; SameSite=Strict{secure}"
    location = quote(scope.get("root_path", "") + scope["path"]) + (f"?{urlencode(rest)}" if rest else "")
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [
                (b"location", location.encode()),
                (b"set-cookie", cookie.encode("latin-1")),
                (b"cache-control", b"no-store"),
                (b"content-length", b"0"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})


def _public_fields_only(send: Send) -> Send:
    """Wrap `send` so the health answer keeps only its public fields (it is small: buffered whole)."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def filtered(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return
        if message["type"] != "http.response.body" or start is None:
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = b"".join(chunks)
        try:
            full = json.loads(body)
            body = json.dumps({key: full[key] for key in PUBLIC_HEALTH_KEYS if key in full}).encode()
        except (ValueError, TypeError):
            body = b'{"status": "ok"}'
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return filtered
