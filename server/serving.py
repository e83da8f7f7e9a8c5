"""Connection hygiene for `nnplay serve`: what uvicorn offers, and the few things it lacks.

uvicorn's default HTTP parser (httptools) accepts request headers of any size, and neither of its parsers
times out a request whose head trickles in: a keep-alive timer exists only after a first response, and
any byte received cancels it. So the server runs uvicorn's h11 protocol, whose `max_incomplete_event_size`
bounds the request line plus headers, and adds, per connection:

- a head deadline: a request's line and headers must be complete `header_timeout` seconds after the
  connection opened or the previous response ended (408, then closed);
- a body deadline: once a request's head is in, its body must be complete within `body_timeout` seconds;
- a connection cap below the descriptor limit: past it the oldest idle connection (no request being
  answered: a half-sent head or an idle keep-alive) is closed to make room, as nginx reuses idle
  connections; when none is idle the newcomer gets a 503. The cap stays `fd_reserve` free descriptors
  under `ulimit -n` besides those the server holds itself, so the database, data sets, model files and
  answers always have descriptors left.

uvicorn's own `limit_concurrency` is not used: it counts idle connections too, so a crowd of idle sockets
would make /api/health answer 503 instead of being closed to make room.
"""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Literal

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from server.settings import Settings


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int  # already lowered to fit the descriptor limit
    max_header_bytes: int
    header_timeout: float
    body_timeout: float


def descriptor_limit() -> int:
    """The soft `ulimit -n` of this process."""
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# What the server opens after this is computed and before any connection: the event loop's epoll, self-pipe
# and eventfd, the database with its WAL and shared-memory files, and a few to spare (measured: 10).
STARTUP_DESCRIPTORS = 12


def open_descriptors() -> int:
    """Descriptors this process holds now (standard streams, log files, anything inherited)."""
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # less the one listdir itself holds open
    except OSError:
        return 3


def connection_limits(settings: Settings) -> ConnectionLimits:
    # The reserve is what the server needs besides its sockets (the database's three files, data sets, model
    # files, the event loop's own): on top of what is open already, or a low ulimit -n with a crowd of idle
    # sockets would leave a run nothing to open its data with.
    held = open_descriptors() + STARTUP_DESCRIPTORS
    fd_room = descriptor_limit() - settings.fd_reserve - held
    if fd_room < 1:
        raise ValueError(
            f"ulimit -n is {descriptor_limit()}: with {held} descriptors open and fd_reserve={settings.fd_reserve},"
            " none is left for connections (raise ulimit -n or lower NNPLAY_FD_RESERVE)"
        )
    return ConnectionLimits(
        max_connections=min(settings.max_connections, fd_room),
        max_header_bytes=settings.max_header_bytes,
        header_timeout=settings.header_timeout,
        body_timeout=settings.body_timeout,
    )


def _plain_response(status: int, reason: str, message: str, extra: bytes = b"") -> bytes:
    body = message.encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n".encode()
        + extra
        + b"\r\n"
        + body
    )


# Idle connections of each server, oldest first: the ones closed to make room at the cap.
_IDLE: weakref.WeakKeyDictionary[ServerState, OrderedDict[GuardedH11Protocol, None]] = weakref.WeakKeyDictionary()


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with head/body deadlines, the connection cap and a clear 431."""

    limits: ConnectionLimits  # set on the subclass made by `guarded_protocol`

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting_for: Literal["head", "body"] | None = None  # what the deadline is for
        self._seen_cycle: object = None  # the request/response cycle whose head was already accounted for
        self._head_bytes = 0  # bytes received while waiting for a request head
        self._upgraded = False
        self._idle = _IDLE.setdefault(self.server_state, OrderedDict())

    # connection life

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        at_cap = len(self.connections) >= self.limits.max_connections
        super().connection_made(transport)
        if at_cap and not self._evict_oldest_idle():
            retry = b"retry-after: 1\r\n"
            transport.write(_plain_response(503, "Service Unavailable", "too many connections", retry))
            transport.close()
            return
        self._become_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        self._idle.pop(self, None)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._waiting_for == "head":
            self._head_bytes += len(data)
        super().data_received(data)
        self._account()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._account()  # a pipelined request may have started already
            if self.cycle is None or self.cycle.response_complete:
                self._become_idle()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        # The WebSocket protocol takes the socket over; its own ping timeout and message limits apply.
        self._upgraded = True
        self._cancel_deadline()
        self._idle.pop(self, None)
        super().handle_websocket_upgrade(event)

    def send_400_response(self, msg: str) -> None:
        if self._head_bytes > self.limits.max_header_bytes:  # h11 refused a head over max_incomplete_event_size
            self._cancel_deadline()
            limit = self.limits.max_header_bytes
            message = f"request line and headers larger than the limit max_header_bytes={limit} bytes"
            self.transport.write(_plain_response(431, "Request Header Fields Too Large", message))
            self.transport.close()
            return
        super().send_400_response(msg)

    # bookkeeping

    def _account(self) -> None:
        """After parsing: a new request's head has arrived, or its body has finished arriving."""
        if self._upgraded or self.transport.is_closing():
            return
        if self.cycle is not None and self.cycle is not self._seen_cycle:
            self._seen_cycle = self.cycle
            self._head_bytes = 0
            self._idle.pop(self, None)
            self._cancel_deadline()
            if self.conn.their_state is h11.SEND_BODY:
                self._waiting_for = "body"
                self._deadline = self.loop.call_later(self.limits.body_timeout, self._body_too_slow)
        elif self._waiting_for == "body" and self.conn.their_state is not h11.SEND_BODY:
            self._cancel_deadline()  # the body is complete

    def _become_idle(self) -> None:
        self._cancel_deadline()
        self._head_bytes = 0
        self._idle[self] = None
        self._waiting_for = "head"
        self._deadline = self.loop.call_later(self.limits.header_timeout, self._head_too_slow)

    def _evict_oldest_idle(self) -> bool:
        for victim in self._idle:
            self._idle.pop(victim)
            victim._cancel_deadline()
            victim.transport.close()
            return True
        return False

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._waiting_for = None

    def _head_too_slow(self) -> None:
        self._deadline = None
        self._waiting_for = None
        self._idle.pop(self, None)
        if not self.transport.is_closing():
            seconds = f"{self.limits.header_timeout:g}"
            message = f"request headers not complete within header_timeout={seconds} s"
            self.transport.write(_plain_response(408, "Request Timeout", message))
            self.transport.close()

    def _body_too_slow(self) -> None:
        # The application is reading this body; closing makes it see a disconnect and give up.
        self._deadline = None
        self._waiting_for = None
        if not self.transport.is_closing():
            self.logger.info("request body not complete within body_timeout=%g s", self.limits.body_timeout)
            self.transport.close()


def guarded_protocol(limits: ConnectionLimits) -> type[GuardedH11Protocol]:
    return type("NnplayH11Protocol", (GuardedH11Protocol,), {"limits": limits})


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind and listen before anything says "serving on": a port in use is an error, not a false claim.
    Port 0 binds any free port (read it back with `getsockname`)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments for uvicorn.Config that bound connections and requests."""
    limits = connection_limits(settings)
    return {
        "http": guarded_protocol(limits),
        "h11_max_incomplete_event_size": limits.max_header_bytes,
        "timeout_keep_alive": settings.keep_alive_timeout,
        "backlog": 2048,
    }
