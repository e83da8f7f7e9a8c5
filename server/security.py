"""Requests from other sites and rebound host names, refused before any route runs.

- Host: only names this server is meant to be reached by (loopback names, the bind address and
  NNPLAY_ALLOWED_HOSTS) are served, so a DNS-rebinding page (evil.example resolving to 127.0.0.1) gets 400.
- Origin: a WebSocket handshake or a state-changing request (POST, PUT, PATCH, DELETE) that a browser sends
  from another origin is 403. Browsers always send Origin on those; curl and scripts send none and are fine.
- Content-Type: a body must be declared as what the route reads (415 otherwise), so a cross-site HTML form
  (text/plain, form-encoded or multipart) can never be read as JSON or as a model file. A body without any
  Content-Type comes from a script, not a form (a browser's typeless cross-site body carries an Origin).

Pure ASGI, not BaseHTTPMiddleware, so the WebSocket handshake goes through the same checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from server.asgi_answers import header, refuse
from server.settings import Settings

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON_TYPES = frozenset({"application/json"})
MODEL_UPLOAD_TYPES = frozenset({"application/octet-stream", "application/zip"})  # an .npz is a zip archive
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def split_list(value: str) -> set[str]:
    return {item.strip().lower() for item in value.split(",") if item.strip()}


def host_and_port(value: str) -> tuple[str, int | None] | None:
    """("name", port or None) of a Host header value, IPv6 brackets removed; None when malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:]
    elif value.count(":") == 1:
        name, _, port_text = value.partition(":")
    elif ":" in value:  # a bare IPv6 address is not a valid Host value
        return None
    else:
        name, port_text = value, ""
    if port_text and not (port_text.isdigit() and int(port_text) <= 65535):
        return None
    return name.rstrip("."), int(port_text) if port_text else None


def is_model_upload(scope: Scope) -> bool:
    return scope["path"] == "/api/models" and scope.get("method") == "POST"


@dataclass(frozen=True)
class SitePolicy:
    hosts: frozenset[str]  # "*" among them: any host
    origins: frozenset[str]  # normalised "scheme://name[:port]"; "*": any

    @classmethod
    def from_settings(cls, settings: Settings) -> SitePolicy:
        hosts = {*LOOPBACK_NAMES, settings.host.strip("[]").lower(), *split_list(settings.allowed_hosts)}
        origins = {o.rstrip("/") for o in split_list(settings.allowed_origins)}
        return cls(frozenset(hosts), frozenset(origins))

    def host_allowed(self, host: tuple[str, int | None]) -> bool:
        return "*" in self.hosts or host[0] in self.hosts

    def origin_allowed(self, origin: str, host: tuple[str, int | None]) -> bool:
        if "*" in self.origins or origin.rstrip("/").lower() in self.origins:
            return True
        parts = urlsplit(origin.lower())
        try:
            origin_port = parts.port or DEFAULT_PORTS.get(parts.scheme)
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or parts.hostname is None:
            return False  # "null" (sandboxed frames, file: pages) and anything odd
        same_name = parts.hostname.rstrip(".") == host[0]
        # A Host without a port came through the scheme's default port (or a proxy that keeps Host as is).
        same_port = origin_port == host[1] if host[1] is not None else parts.port is None
        return same_name and same_port


class SiteGuard:
    """400 for a Host not served, 403 for a foreign Origin, 415 for a body of the wrong type."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.policy = SitePolicy.from_settings(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        raw_host = header(scope, b"host")
        host = host_and_port(raw_host.decode("latin-1")) if raw_host is not None else None
        if host is None:
            await refuse(scope, receive, send, 400, "the request has no valid Host header")
            return
        if not self.policy.host_allowed(host):
            detail = "this server does not answer to this host name: add it to NNPLAY_ALLOWED_HOSTS to serve it"
            await refuse(scope, receive, send, 400, detail)
            return
        method = scope.get("method", "GET")
        origin = header(scope, b"origin")
        checks_origin = scope["type"] == "websocket" or method in STATE_CHANGING
        if checks_origin and origin is not None and not self.policy.origin_allowed(origin.decode("latin-1"), host):
            detail = "requests from another origin may not change anything here (add it to NNPLAY_ALLOWED_ORIGINS)"
            await refuse(scope, receive, send, 403, detail)
            return
        if scope["type"] == "http" and method in STATE_CHANGING and _has_body(scope):
            wrong = _wrong_content_type(scope)
            if wrong is not None:
                await refuse(scope, receive, send, 415, wrong)
                return
        await self.app(scope, receive, send)


def _has_body(scope: Scope) -> bool:
    length = header(scope, b"content-length")
    return header(scope, b"transfer-encoding") is not None or (length is not None and length.strip() != b"0")


def _wrong_content_type(scope: Scope) -> str | None:
    """The 415 message for a body of a type the route does not read, or None when it is acceptable."""
    raw = header(scope, b"content-type")
    if raw is None:
        return None
    media_type = raw.decode("latin-1").split(";", 1)[0].strip().lower()
    expected = MODEL_UPLOAD_TYPES if is_model_upload(scope) else JSON_TYPES
    if media_type in expected:
        return None
    return f"the request body must be sent as {' or '.join(sorted(expected))}"
