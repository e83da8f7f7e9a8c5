"""Redis between the web tier and the workers: run events one way (pub/sub, live only: what must survive is
in the database), commands the other (a list per run, so a command sent while the run waits in the queue,
or while its worker reconnects, is still there when the worker reads)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import redis
import redis.asyncio as aioredis

from server.fanout import LocalFanout
from server.steer import BrokerUnavailable

log = logging.getLogger("nnplay.cluster")

EVENTS = "nnplay:events:"  # + run id: "kind\ntext" messages, the same text a WebSocket client receives
COMMANDS = "nnplay:commands:"  # + run id: JSON commands for the worker that trains it
WANTED = "nnplay:wanted:"  # + run id: hash of what was last asked (paused: 0/1), read by the web's step check
MAX_COMMANDS = 1000  # per run: a client looping "pause" cannot grow Redis without bound
PENDING_TASK = re.compile(rb"argsrepr\W+\[\W*(r[0-9a-f]{10})")  # a train task's run id in a queued message
KEEP_WHEN_AWAY = ("state\n", "end\n")  # what a worker keeps trying to publish while Redis is away
KEY_TTL = 7 * 86400  # seconds: commands of a run nobody trains any more do not stay for ever
FRAMES_PER_SECOND = 20.0  # a worker cannot see who watches: live pictures of 2-D runs at most this often
SOCKET_TIMEOUT = 3.0  # seconds: an unreachable Redis is an error, not a hang


def redact(url: str) -> str:
    """The URL without its credentials or query, for messages: scheme://host:port/path."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def sync_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT, health_check_interval=10
    )


# ---- worker side -------------------------------------------------------------------------------------------


class EventPublisher:
    """The worker's EventSink: messages are queued and published by a thread of their own, so training never
    waits on the network; while Redis is away they are dropped (the database has every epoch)."""

    def __init__(self, url: str, max_queued: int = 10_000) -> None:
        self.client = sync_client(url)
        self.url, self.max_queued = url, max_queued
        self._queue: deque[tuple[str, str]] = deque()
        self._wake = threading.Event()
        self._closed = False
        self._frame_at: dict[str, float] = {}
        self._thread = threading.Thread(target=self._run, name="event-publisher", daemon=True)
        self._thread.start()

    def publish(self, run_id: str, kind: str, text: str) -> None:
        if len(self._queue) >= self.max_queued and kind not in ("state", "end"):
            return  # Redis has been away for long: live messages are dropped (the database has the epochs)
        self._queue.append((EVENTS + run_id, f"{kind}\n{text}"))
        self._wake.set()

    def wants_frame(self, run_id: str) -> bool:
        now = time.monotonic()
        if now - self._frame_at.get(run_id, 0.0) < 1.0 / FRAMES_PER_SECOND:
            return False
        self._frame_at[run_id] = now
        return True

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until everything queued so far is sent (or dropped): the run's end must follow its epochs."""
        deadline = time.monotonic() + timeout
        while self._queue and time.monotonic() < deadline:
            self._wake.set()
            time.sleep(0.005)

    def close(self) -> None:
        self.flush()
        self._closed = True
        self._wake.set()
        self._thread.join(2)

    def _run(self) -> None:
        warned_at = 0.0
        while not self._closed:
            self._wake.wait(0.5)
            self._wake.clear()
            while self._queue:
                channel, payload = self._queue[0]
                try:
                    self.client.publish(channel, payload)
                except redis.RedisError as exc:
                    if time.monotonic() - warned_at > 10:
                        warned_at = time.monotonic()
                        log.warning(
                            "cannot publish run events to %s: %s (live messages dropped; epochs are stored)",
                            redact(self.url),
                            exc,
                        )
                    # a run's state and end are kept and sent once Redis is back: a page must hear the end
                    kept = [item for item in list(self._queue) if item[1].startswith(KEEP_WHEN_AWAY)]
                    self._queue.clear()
                    self._queue.extend(kept)
                    time.sleep(0.5)
                    break
                self._queue.popleft()


class CommandListener:
    """A thread that reads one run's commands and calls ``handle`` with each (a dict), until stopped. It
    reconnects by itself when Redis goes away."""

    def __init__(self, url: str, run_id: str, handle: Callable[[dict[str, Any]], None]) -> None:
        self.client = sync_client(url)
        self.url, self.key, self.handle = url, COMMANDS + run_id, handle
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"commands-{run_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(SOCKET_TIMEOUT + 1)

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                item = self.client.blpop([self.key], timeout=1)
            except redis.RedisError:
                self._stopped.wait(0.5)
                continue
            if item is None:
                continue
            try:
                command = json.loads(item[1])
            except ValueError:
                continue
            if isinstance(command, dict):
                try:
                    self.handle(command)
                except Exception:
                    log.exception("command %r failed", command)


# ---- web side ----------------------------------------------------------------------------------------------


class Commands:
    """How the web tier reaches the worker of a run (or the worker that will claim it)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = sync_client(url)

    def send(self, run_id: str, command: dict[str, Any], paused: bool | None = None) -> None:
        try:
            pipe = self.client.pipeline()
            pipe.rpush(COMMANDS + run_id, json.dumps(command))
            pipe.ltrim(COMMANDS + run_id, -MAX_COMMANDS, -1)
            pipe.expire(COMMANDS + run_id, KEY_TTL)
            if paused is not None:
                pipe.hset(WANTED + run_id, "paused", int(paused))
                pipe.expire(WANTED + run_id, KEY_TTL)
            pipe.execute()
        except redis.RedisError as exc:
            raise BrokerUnavailable(f"the broker {redact(self.url)} is unreachable: {exc}; try again shortly") from exc

    def pause_wanted(self, run_id: str) -> bool:
        try:
            return self.client.hget(WANTED + run_id, "paused") == b"1"
        except redis.RedisError as exc:
            raise BrokerUnavailable(f"the broker {redact(self.url)} is unreachable: {exc}; try again shortly") from exc

    def pause_wanted_quietly(self, run_id: str) -> bool | None:
        """For a worker claiming a run: paused (True), resumed (False), never asked or unknown (None)."""
        try:
            value = self.client.hget(WANTED + run_id, "paused")
        except redis.RedisError:
            return None
        return None if value is None else value == b"1"

    def pending_runs(self, queue: str) -> set[str]:
        """Run ids with a train task waiting in the broker's queue or handed to a worker and not yet
        acknowledged (kombu's Redis transport keeps those in the hash "unacked")."""
        try:
            waiting = self.client.lrange(queue, 0, -1)
            delivered = self.client.hvals("unacked")
        except redis.RedisError as exc:
            raise BrokerUnavailable(f"the broker {redact(self.url)} is unreachable: {exc}; try again shortly") from exc
        raws = [raw if isinstance(raw, bytes) else str(raw).encode() for raw in (*waiting, *delivered)]
        return {m.group(1).decode() for raw in raws for m in PENDING_TASK.finditer(raw)}

    def forget(self, run_id: str) -> None:
        with contextlib.suppress(redis.RedisError):
            self.client.delete(COMMANDS + run_id, WANTED + run_id)


class EventRelay:
    """One subscription per web replica to every run's channel, pushed into the local fan-out. When the
    subscription breaks (Redis restarted), messages may have been missed: the replica's watchers are closed
    (1012, service restart) so their pages reconnect and redraw from a fresh snapshot."""

    def __init__(
        self, url: str, fanout: LocalFanout, on_reconnect: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        self.url, self.fanout, self.on_reconnect = url, fanout, on_reconnect
        self.connected = False
        self.lost = False  # the subscription broke since the last (re)connection
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # bounded: a subscription's clean-up must not hold up the replica's shutdown
            await asyncio.wait({self._task}, timeout=2)

    async def _run(self) -> None:
        while True:
            client = aioredis.Redis.from_url(
                self.url, socket_connect_timeout=SOCKET_TIMEOUT, socket_keepalive=True, health_check_interval=10
            )
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.psubscribe(EVENTS + "*")
                    self.connected = True
                    if self.lost:  # pages that (re)connected meanwhile missed what was published: redraw
                        self._drop_watchers()
                    self.lost = False
                    if self.on_reconnect is not None:  # also at the first connection: Redis may be new
                        await self.on_reconnect()
                    async for message in pubsub.listen():
                        if message.get("type") == "pmessage":
                            self._deliver(message["channel"], message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # whatever broke the subscription, it is made again
                if self.connected:
                    log.warning("lost the event bus %s: %s; reconnecting", redact(self.url), exc)
                    self._drop_watchers()
                self.connected, self.lost = False, True
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()
            await asyncio.sleep(0.5)

    def _deliver(self, channel: bytes, data: bytes) -> None:
        run_id = channel.decode()[len(EVENTS) :]
        kind, _, text = data.decode().partition("\n")
        if kind == "resync":  # the run changed hands: its watchers reconnect and redraw from a snapshot
            self.fanout.close(run_id, [], 1012)
        elif kind == "end":
            self.fanout.close(run_id, [("end", text)])
        else:
            self.fanout.push(run_id, kind, text)

    def _drop_watchers(self) -> None:
        for run_id in list(self.fanout.subscribers):
            self.fanout.close(run_id, [], 1012)
