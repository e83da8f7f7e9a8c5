"""How events reach the clients watching a run: one bounded outbox per WebSocket client, and a fan-out that
any thread may publish to. In-process today; a fan-out over Redis pub/sub would offer the same four methods."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Protocol


class EventSink(Protocol):
    """Where a training job sends its encoded messages: LocalFanout here, a Redis channel from a cluster worker."""

    def publish(self, run_id: str, kind: str, text: str) -> None: ...

    def wants_frame(self, run_id: str) -> bool: ...


class Subscriber:
    """One WebSocket client's outbox. Progress messages merge (only the newest is kept); epoch, state and end
    messages are never dropped: a client that falls ``maxsize`` of them (or ``max_bytes``) behind is
    disconnected instead, and redraws from a fresh snapshot when it reconnects. Memory per client is bounded."""

    def __init__(self, maxsize: int, max_bytes: int) -> None:
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        self.queued_bytes = 0
        self.queue: deque[str] = deque()
        self.progress: str | None = None
        self.frame: str | None = None  # the newest live picture (2-D runs): merges like progress
        self.wake = asyncio.Event()
        self.overflowed = False
        self.closed = False
        self.close_code = 1000

    def push(self, kind: str, text: str) -> None:
        if kind == "progress":
            self.progress = text
        elif kind == "frame":
            self.frame = text
        else:
            if kind == "epoch":
                self.progress = None  # progress of a finished epoch is stale
            if len(self.queue) >= self.maxsize or self.queued_bytes + len(text) > self.max_bytes:
                self.overflowed = True
            else:
                self.queue.append(text)
                self.queued_bytes += len(text)
        self.wake.set()

    def pending(self) -> bool:
        return bool(self.queue) or self.progress is not None or self.frame is not None

    def close(self, code: int = 1000) -> None:
        self.closed = True
        self.close_code = code
        self.wake.set()

    async def drain(self) -> list[str]:
        await self.wake.wait()
        self.wake.clear()
        # the newest frame goes first: a run's last picture must reach the client before its "end"
        out = [] if self.frame is None else [self.frame]
        self.frame = None
        out += self.queue
        self.queue.clear()
        self.queued_bytes = 0
        if self.progress is not None:
            out.append(self.progress)
            self.progress = None
        return out


class LocalFanout:
    """Subscribers per run, touched only on the event loop; ``publish`` may be called from any thread."""

    def __init__(self, queue_size: int, queue_bytes: int) -> None:
        self.queue_size, self.queue_bytes = queue_size, queue_bytes
        self.loop: asyncio.AbstractEventLoop | None = None
        self.subscribers: dict[str, set[Subscriber]] = {}
        self.latest_frame: dict[str, str] = {}  # per active run: what a new watcher sees first

    def wants_frame(self, run_id: str) -> bool:
        """From any thread: whether a watcher has sent its last frame on (live pictures are drawn only for
        someone, and never faster than the quickest watcher takes them)."""
        return any(sub.frame is None for sub in list(self.subscribers.get(run_id, ())))

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def subscribe(self, run_id: str) -> Subscriber:
        sub = Subscriber(self.queue_size, self.queue_bytes)
        self.subscribers.setdefault(run_id, set()).add(sub)
        return sub

    def watchers(self, run_id: str) -> int:
        return len(self.subscribers.get(run_id, ()))

    def unsubscribe(self, run_id: str, sub: Subscriber) -> None:
        subs = self.subscribers.get(run_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self.subscribers[run_id]

    def publish(self, run_id: str, kind: str, text: str) -> None:
        """From a training thread: hand the encoded message to the loop, which pushes it to every client."""
        if self.loop is not None and not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop may close during shutdown
                self.loop.call_soon_threadsafe(self.push, run_id, kind, text)

    def push(self, run_id: str, kind: str, text: str) -> None:
        """On the loop."""
        if kind == "frame":
            self.latest_frame[run_id] = text
        for sub in self.subscribers.get(run_id, ()):
            sub.push(kind, text)

    def close(self, run_id: str, last: list[tuple[str, str]], code: int = 1000) -> None:
        """On the loop: the final messages, then every client of the run is closed once its outbox is sent."""
        self.latest_frame.pop(run_id, None)
        for sub in self.subscribers.pop(run_id, set()):
            for kind, text in last:
                sub.push(kind, text)
            sub.close(code)
