"""Anonymous owners: every browser (or script) that talks to the server gets an identity, so that a run or an
uploaded model can only be steered or deleted by whoever made it.

The identity is a cookie `nnplay-owner-PORT` = `ID.SIGNATURE`, where SIGNATURE is an HMAC-SHA256 of ID under a
secret kept in the data directory (`owner-secret`, made with `secrets` at first start, mode 0600): a client
cannot make up another owner's cookie. A request without a valid cookie gets a new identity, set on its
response; a script keeps its identity by sending that cookie back (curl: `-c jar -b jar`; httpx/requests: a
client or session object). A request presenting NNPLAY_ADMIN_TOKEN is admin: it may steer and delete any run
or model (TokenGuard marks it); the plain NNPLAY_TOKEN only lets a client in, as the owner it is. Runs and
models with no owner (made before owners existed) may be controlled by anyone; the default model's run, on a
server that needs a token, by the admin only (server/access.py).

SameSite=Lax, not Strict: a page opened from a link on another site must send its cookie, or it would be
given a new identity that replaces the old one. Cross-site requests that change anything are refused anyway
(server/security.py).

Pure ASGI: the identity is in `scope["state"]["owner"]` for HTTP requests and WebSocket handshakes alike.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import os
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import HTTPConnection, cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.asgi_answers import header
from server.settings import Settings

log = logging.getLogger("nnplay")

SECRET_FILE = "owner-secret"
ID_RE = re.compile(r"^o[0-9a-f]{16}$")
COOKIE_MAX_AGE = 10 * 365 * 86400


@dataclass(frozen=True)
class Caller:
    owner: str
    admin: bool = False

    def may_control(self, owner: str | None) -> bool:
        """Steer or delete something owned by `owner` (None: made before owners, or by the server)."""
        return self.admin or owner is None or owner == self.owner

    def may_see(self, owner: str | None, shared: bool) -> bool:
        return shared or self.may_control(owner)


def caller_of(connection: HTTPConnection) -> Caller:
    state = connection.scope.get("state") or {}
    owner = state.get("owner")
    if not isinstance(owner, str):  # an app served without the middleware (never in `nnplay serve`)
        owner = "o" + "0" * 16
    return Caller(owner, bool(state.get("admin", False)))


def cookie_name(scope: Scope) -> str:
    server = scope.get("server")
    return f"nnplay-owner-{server[1]}" if server and server[1] else "nnplay-owner"


class OwnerKeys:
    """The HMAC secret: read from the data directory, or made there at first use. A data directory that
    cannot be written gets a secret for this process only (cookies then last until a restart)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / SECRET_FILE
        self._secret: bytes | None = None
        self._lock = threading.Lock()

    def secret(self) -> bytes:
        if self._secret is None:
            with self._lock:
                if self._secret is None:
                    self._secret = self._load_or_make()
        return self._secret

    def _load_or_make(self) -> bytes:
        with contextlib.suppress(OSError, ValueError):
            value = bytes.fromhex(self.path.read_text().strip())
            if len(value) >= 32:
                return value
        value = secrets.token_bytes(32)
        # Written whole under another name, then linked into place: the link either makes the file, complete,
        # or fails because another process (a second web replica on the same volume) made it first.
        draft = self.path.with_name(f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(value.hex())
                f.flush()
                os.fsync(f.fileno())
            os.link(draft, self.path)
        except FileExistsError:  # another process made it just now: use that one
            return bytes.fromhex(self.path.read_text().strip())
        except OSError as exc:
            log.warning("cannot keep the owner secret in %s (%s): owner cookies last until a restart", self.path, exc)
        finally:
            with contextlib.suppress(OSError):
                draft.unlink()
        return value

    def sign(self, owner: str) -> str:
        return hmac.new(self.secret(), owner.encode(), hashlib.sha256).hexdigest()[:32]

    def cookie_value(self, owner: str) -> str:
        return f"{owner}.{self.sign(owner)}"

    def verify(self, value: str | None) -> str | None:
        if not value:
            return None
        owner, _, signature = value.partition(".")
        if ID_RE.match(owner) and hmac.compare_digest(signature, self.sign(owner)):
            return owner
        return None


class OwnerCookie:
    """Puts the caller's owner id in the scope; a new one is set as a cookie on the response."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.keys = OwnerKeys(settings.data_dir)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        name = cookie_name(scope)
        raw = header(scope, b"cookie")
        owner = self.keys.verify(cookie_parser(raw.decode("latin-1")).get(name) if raw is not None else None)
        state = scope.setdefault("state", {})
        if owner is not None:
            state["owner"] = owner
            await self.app(scope, receive, send)
            return
        owner = "o" + secrets.token_hex(8)
        state["owner"] = owner
        if scope["type"] != "http":  # a WebSocket without the cookie: an identity for this connection only
            await self.app(scope, receive, send)
            return
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        cookie = (
            f"{name}={self.keys.cookie_value(owner)}; Path=/; Max-Age={COOKIE_MAX_AGE}; HttpOnly; SameSite=Lax{secure}"
        ).encode("latin-1")

        async def with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
            await send(message)

        await self.app(scope, receive, with_cookie)
