"""Training runs: a bounded queue, one thread per running run, and fan-out of engine events to WebSocket
subscribers.

Threads, not processes: NumPy's matrix products and ufuncs release the GIL, so a training thread leaves the
event loop free; the 220 MB of MNIST floats are shared instead of copied per process; events reach the loop
with call_soon_threadsafe instead of crossing a pipe. BLAS threads are rebalanced whenever a run starts or
ends (cores // running runs), so two runs on two cores use one BLAS thread each instead of thrashing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from engine.mnist import Mnist, MnistError, is_available, load_mnist
from engine.model import Model
from engine.trainer import BatchProgress, Dataset, EpochEnd, Event, RunEnd, StateChange, Trainer, mnist_arrays
from server.messages import dumps, epoch_message, extras_message
from server.schemas import RunConfig, check_limits
from server.settings import Settings
from server.store import Store

log = logging.getLogger("nnplay.runs")


class QueueFull(Exception):
    pass


class NotFound(Exception):
    pass


class Conflict(Exception):
    pass


def new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(5)}"


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
        self.wake = asyncio.Event()
        self.overflowed = False
        self.closed = False
        self.close_code = 1000

    def push(self, kind: str, text: str) -> None:
        if kind == "progress":
            self.progress = text
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
        return bool(self.queue) or self.progress is not None

    def close(self, code: int = 1000) -> None:
        self.closed = True
        self.close_code = code
        self.wake.set()

    async def drain(self) -> list[str]:
        await self.wake.wait()
        self.wake.clear()
        out = list(self.queue)
        self.queue.clear()
        self.queued_bytes = 0
        if self.progress is not None:
            out.append(self.progress)
            self.progress = None
        return out


@dataclass
class ActiveRun:
    id: str
    config: RunConfig
    kind: str
    state: str = "queued"
    trainer: Trainer | None = None
    thread: threading.Thread | None = None
    subscribers: set[Subscriber] = field(default_factory=set)
    stop_requested: bool = False
    pause_requested: bool = False
    interrupted: bool = False
    clock: float = 0.0  # perf_counter when training started, for the time-left estimate
    train_seconds: float = 0.0  # sum of finished epochs' wall time
    test_accuracy: float | None = None  # of the latest epoch
    extras_sent_at: float = 0.0  # monotonic time the bulky per-epoch views last went out


class MnistProvider:
    """Loads MNIST once and shares the float arrays between runs (read-only)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self.raw: Mnist | None = None
        self.data: Dataset | None = None
        self.error: str | None = None

    def ready(self) -> bool:
        return self.data is not None or is_available(self.settings.data_dir)

    def get(self, fetch: bool = False) -> tuple[Mnist, Dataset]:
        with self._lock:
            if self.raw is None or self.data is None:
                self.raw = load_mnist(self.settings.data_dir, fetch=fetch)
                self.data = mnist_arrays(self.raw)
            return self.raw, self.data


class RunManager:
    def __init__(self, settings: Settings, store: Store, mnist: MnistProvider) -> None:
        self.settings = settings
        self.store = store
        self.mnist = mnist
        self.active: dict[str, ActiveRun] = {}
        self.queue: deque[str] = deque()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.shutting_down = False
        self.on_default_model: list[Any] = []  # callbacks when a default-kind run saves its model

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    # ---- requests (event loop) -------------------------------------------------------------------

    def running_count(self) -> int:
        return sum(1 for r in self.active.values() if r.state in ("running", "paused"))

    def create(self, config: RunConfig, kind: str = "user") -> ActiveRun:
        check_limits(config, self.settings)
        if not self.mnist.ready():
            raise Conflict("MNIST is not available yet; run `nnplay data fetch` or wait for the server to fetch it")
        if (
            self.running_count() >= self.settings.max_concurrent_runs
            and len(self.queue) >= self.settings.max_queued_runs
        ):
            raise QueueFull(
                f"{self.settings.max_concurrent_runs} runs are training and {len(self.queue)} are queued: "
                f"the limit max_queued_runs={self.settings.max_queued_runs} is reached; try again later"
            )
        run = ActiveRun(new_id("r"), config, kind)
        self.store.create_run(run.id, config.name, kind, config.model_dump(), config.parameter_count())
        self.active[run.id] = run
        self.queue.append(run.id)
        self._start_queued()
        return run

    def _start_queued(self) -> None:
        while self.queue and self.running_count() < self.settings.max_concurrent_runs and not self.shutting_down:
            run = self.active[self.queue.popleft()]
            run.state = "running"
            run.thread = threading.Thread(target=self._train, args=(run,), name=f"run-{run.id}", daemon=True)
            self._rebalance_blas()
            run.thread.start()

    def _rebalance_blas(self) -> None:
        running = max(1, self.running_count())
        threadpool_limits(limits=max(1, len(os.sched_getaffinity(0)) // running), user_api="blas")  # respects cpusets

    def get_active(self, run_id: str) -> ActiveRun | None:
        return self.active.get(run_id)

    def control(self, run_id: str, action: str) -> str:
        run = self.active.get(run_id)
        if run is None:
            stored = self.store.get_run(run_id)
            if stored is None:
                raise NotFound(f"no run with id {run_id!r}")
            raise Conflict(f"run {run_id} is {stored['state']}; only active runs can be paused, resumed or stopped")
        if action == "stop":
            run.stop_requested = True
            if run.trainer is not None:
                run.trainer.stop()
            elif run.id in self.queue:  # never started: it ends here
                self.queue.remove(run.id)
                self._finish(run, "stopped", "stopped before it started", None)
            return "stopping" if run.id in self.active else "stopped"
        if action == "pause":
            run.pause_requested = True
            if run.trainer is not None:
                run.trainer.pause()
            return run.state if run.trainer is None else "pausing"
        if action == "resume":
            run.pause_requested = False
            if run.trainer is not None:
                run.trainer.resume()
                return "resuming" if run.state == "paused" else run.state
            return run.state
        raise Conflict(f"unknown action {action!r}")

    def subscribe(self, run_id: str) -> Subscriber | None:
        run = self.active.get(run_id)
        if run is None:
            return None
        sub = Subscriber(self.settings.ws_queue_size, self.settings.ws_queue_bytes)
        run.subscribers.add(sub)
        return sub

    def unsubscribe(self, run_id: str, sub: Subscriber) -> None:
        run = self.active.get(run_id)
        if run is not None:
            run.subscribers.discard(sub)

    async def delete(self, run_id: str) -> None:
        run = self.active.get(run_id)
        if run is not None:
            self.control(run_id, "stop")
            if run.thread is not None:
                await asyncio.to_thread(run.thread.join, 30)
        if not self.store.delete_run(run_id):
            raise NotFound(f"no run with id {run_id!r}")
        with contextlib.suppress(FileNotFoundError):
            (self.settings.models_dir / f"{run_id}.npz").unlink()

    async def shutdown(self) -> None:
        """SIGTERM: stop every trainer, mark active runs interrupted, close every subscriber."""
        self.shutting_down = True
        threads = []
        for run in list(self.active.values()):
            run.interrupted = True
            run.stop_requested = True  # a run still loading its data stops as soon as its trainer exists
            if run.trainer is not None:
                run.trainer.stop()
            if run.thread is not None:
                threads.append(run.thread)
            end = {"type": "end", "run_id": run.id, "state": "interrupted", "message": "the server is shutting down"}
            for sub in run.subscribers:
                sub.push("end", dumps(end))
                sub.close(1001)  # going away
        for t in threads:
            await asyncio.to_thread(t.join, 5)
        with contextlib.suppress(sqlite3.Error):  # a read-only or full data dir: nothing more can be recorded
            self.store.mark_interrupted()

    # ---- the training thread -----------------------------------------------------------------------

    def _publish(self, run: ActiveRun, kind: str, message: dict[str, Any]) -> None:
        text = dumps(message)  # encoded once, in the training thread, for every client
        if self.loop is not None and not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop may close during shutdown
                self.loop.call_soon_threadsafe(self._fanout, run, kind, text)

    @staticmethod
    def _fanout(run: ActiveRun, kind: str, text: str) -> None:
        for sub in run.subscribers:
            sub.push(kind, text)

    def _train(self, run: ActiveRun) -> None:
        # Whatever happens in here (a bug, a full disk, no memory), the run must end through _finish: a thread
        # that dies silently would hold a concurrency slot for ever.
        try:
            state, message, saved = self._train_and_save(run)
        except Exception as exc:
            log.exception("run %s failed", run.id)
            state, message, saved = "failed", f"training failed: {type(exc).__name__}: {exc}", None
        self._call_loop(self._finish, run, state, message, saved)

    def _train_and_save(self, run: ActiveRun) -> tuple[str, str, Model | None]:
        self.store.update_run(run.id, state="running", started_at=time.time())
        self._publish(run, "state", {"type": "state", "run_id": run.id, "state": "running"})
        try:
            raw, data = self.mnist.get()
            model = Model.build(run.config.model_spec(), seed=run.config.seed)
            trainer = Trainer(model, run.config.train_config(), data, on_event=lambda e: self._on_event(run, e, raw))
        except (MnistError, ValueError, MemoryError) as exc:
            return "failed", str(exc), None
        run.trainer = trainer
        if run.pause_requested:
            trainer.pause()
        if run.stop_requested:
            trainer.stop()
        run.clock = time.perf_counter()
        end = trainer.run()
        state, message = end.state, end.message
        if run.interrupted:
            state, message = "interrupted", "the server stopped while this run was active"
        saved = None
        if trainer.epochs_done > 0 and all(np.isfinite(p).all() for p, _ in model.parameters()):
            model.meta = {
                "run_id": run.id,
                "name": run.config.name,
                "epochs": trainer.epochs_done,
                "test_accuracy": run.test_accuracy,
            }
            try:
                self.settings.models_dir.mkdir(parents=True, exist_ok=True)
                model.save(self.settings.models_dir / f"{run.id}.npz")
                saved = model
            except OSError as exc:
                message += f" (the model could not be saved: {exc.strerror or exc})"
        return state, message, saved

    def _call_loop(self, fn: Any, *args: Any) -> None:
        if self.loop is not None and not self.loop.is_closed() and not self.shutting_down:
            try:
                self.loop.call_soon_threadsafe(fn, *args)
                return
            except RuntimeError:
                pass
        # No loop to hand over to (shutting down): record the end from this thread; the subscribers were
        # already told and closed by shutdown(), and must not be touched off the loop.
        run, state, message, model = args
        with contextlib.suppress(Exception):
            self.store.update_run(
                run.id, state=state, message=message, finished_at=time.time(), has_model=int(model is not None)
            )

    def _on_event(self, run: ActiveRun, event: Event, raw: Mnist) -> None:
        if isinstance(event, BatchProgress):
            done = (event.epoch - 1) * event.batches + event.batch
            total = run.config.epochs * event.batches
            elapsed = time.perf_counter() - run.clock
            self._publish(
                run,
                "progress",
                {
                    "type": "progress",
                    "run_id": run.id,
                    "epoch": event.epoch,
                    "epochs": run.config.epochs,
                    "batch": event.batch,
                    "batches": event.batches,
                    "loss": event.loss,
                    "learning_rate": event.learning_rate,
                    "eta_s": elapsed / done * (total - done) if done else None,
                },
            )
        elif isinstance(event, EpochEnd):
            assert run.trainer is not None
            message = {**epoch_message(run.id, event), "ended_at": time.time()}  # lets clients measure delivery
            extras = extras_message(run.trainer.model, event, raw.test_images)
            text = dumps(message)
            run.train_seconds += event.seconds
            run.test_accuracy = event.test_accuracy
            try:
                self.store.add_epoch(
                    run.id,
                    event.epoch,
                    text,
                    dumps(extras),
                    test_accuracy=event.test_accuracy,
                    test_loss=event.test_loss if np.isfinite(event.test_loss) else None,
                    train_seconds=run.train_seconds,
                )
            except Exception as exc:  # disk full / read-only: training goes on, the run says so at the end
                log.warning("could not store epoch %s of %s: %s", event.epoch, run.id, exc)
            # The bulky views (~90 kB: filters, misclassified digits) are ~all of an epoch message's bytes. With
            # many clients and sub-second epochs, sending them every epoch cost 13% of training speed; at most
            # once per ws_extras_interval (and always with the last epoch) they cost next to nothing. The stored
            # run keeps the latest ones for snapshots either way.
            now = time.monotonic()
            if now - run.extras_sent_at >= self.settings.ws_extras_interval or event.epoch == event.epochs:
                run.extras_sent_at = now
                message = {**message, **extras}
            self._publish(run, "epoch", message)
        elif isinstance(event, StateChange):
            if event.state in ("running", "paused"):
                run.state = event.state
                with contextlib.suppress(Exception):
                    self.store.update_run(run.id, state=event.state)
                self._publish(run, "state", {"type": "state", "run_id": run.id, "state": event.state})
        elif isinstance(event, RunEnd):
            pass  # handled once the trainer returns, with the model saved

    # ---- back on the loop --------------------------------------------------------------------------

    def _finish(self, run: ActiveRun, state: str, message: str, model: Model | None) -> None:
        with contextlib.suppress(Exception):
            self.store.update_run(
                run.id, state=state, message=message, finished_at=time.time(), has_model=int(model is not None)
            )
        run.state = state
        try:
            stored = self.store.get_run(run.id) or {}
        except Exception:  # the database is unusable: the clients still hear how the run ended
            stored = {}
        final = {
            "type": "end",
            "run_id": run.id,
            "state": state,
            "message": message,
            "test_accuracy": stored.get("test_accuracy"),
            "has_model": model is not None,
        }
        text = dumps({"type": "state", "run_id": run.id, "state": state})
        for sub in run.subscribers:
            sub.push("state", text)
            sub.push("end", dumps(final))
            sub.close()
        self.active.pop(run.id, None)
        if run.kind == "default":  # told of every ending, so a stopped or failed default run is not "training" for ever
            for callback in self.on_default_model:
                callback(run, state, model)
        if not self.shutting_down:
            self._start_queued()
            self._rebalance_blas()
