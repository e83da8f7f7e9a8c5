"""Training runs: a bounded queue and each run's life, from queued to ended. Where a run executes is the
executor's job (server/executor.py), how its events reach watchers the fan-out's (server/fanout.py), and how
events become rows and messages the recorder's (server/recorder.py). Touched only from the event loop, except
``_train``, which runs in the executor."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from engine.model import Model
from server.access import Access
from server.config import RunConfig
from server.data import DataProvider
from server.database import STORAGE_ERRORS
from server.executor import ThreadExecutor
from server.fanout import LocalFanout
from server.journal import Journal
from server.limits import check_limits
from server.messages import EndMessage, last_messages
from server.owners import Caller
from server.registry import ModelRegistry
from server.settings import Settings
from server.steer import ActiveRun, Conflict, NotFound, QueueFull, Steering, new_id
from server.store import Store
from server.training import train_and_save

log = logging.getLogger("nnplay.runs")


class RunManager(Steering, Access):
    def __init__(
        self, settings: Settings, store: Store, data: DataProvider, models: ModelRegistry, fanout: LocalFanout
    ) -> None:
        self.settings, self.store, self.data, self.models, self.fanout = settings, store, data, models, fanout
        self.journal = Journal(store)
        self.executor = ThreadExecutor()
        self.active: dict[str, ActiveRun] = {}
        self.queue: deque[str] = deque()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.shutting_down = False
        self.on_end: list[Callable[[ActiveRun, str, Model | None], None]] = []  # told of every run's end
        self._watchdog: asyncio.Task[None] | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.fanout.attach(loop)
        self._watchdog = loop.create_task(self._stop_long_pauses())

    async def _stop_long_pauses(self) -> None:
        """A paused run holds a training slot: past max_pause_seconds it is stopped (its model is kept, as for
        any stop), which frees the slot for the queue."""
        limit = self.settings.max_pause_seconds
        while not self.shutting_down:
            await asyncio.sleep(min(5.0, max(0.05, limit / 4)))
            now = time.monotonic()
            for run in list(self.active.values()):
                paused_for = now - run.paused_at if run.state == "paused" and run.paused_at is not None else 0.0
                if paused_for > limit and run.trainer is not None and not run.stop_requested:
                    log.info("run %s paused longer than max_pause_seconds=%g: stopped", run.id, limit)
                    run.pause_expired = True
                    run.stop_requested = True
                    run.trainer.stop()

    @property
    def sink(self) -> LocalFanout:
        return self.fanout

    def running_count(self) -> int:
        return sum(1 for r in self.active.values() if r.state in ("running", "paused"))

    def counts(self) -> tuple[int, int]:
        """(training, queued)."""
        return self.running_count(), len(self.queue)

    def live_state(self, run_id: str) -> str | None:
        """The state as this process knows it now (the stored one may lag by a batch), None if not active."""
        run = self.active.get(run_id)
        return run.state if run is not None else None

    def queue_position(self, run: dict[str, Any]) -> int | None:
        """1 for the next run to start; None unless queued."""
        return self.queue.index(run["id"]) + 1 if run["id"] in self.queue else None

    def first_to_start_default(self) -> bool:
        return True  # one process: nobody else starts it

    def default_run_id(self) -> str | None:
        return next((r.id for r in self.active.values() if r.kind == "default"), None)

    def get_active(self, run_id: str) -> ActiveRun | None:
        return self.active.get(run_id)

    # ---- requests (event loop) -------------------------------------------------------------------

    def create(self, config: RunConfig, kind: str = "user", owner: str | None = None, shared: bool = True) -> ActiveRun:
        check_limits(config, self.settings)
        if not self.data.ready(config.dataset):
            raise Conflict(
                f"{config.dataset} is not available yet; run `nnplay data fetch` or wait for the server to fetch it"
            )
        s = self.settings
        if self.running_count() >= s.max_concurrent_runs and len(self.queue) >= s.max_queued_runs:
            raise QueueFull(
                f"{s.max_concurrent_runs} runs are training and {len(self.queue)} are queued: "
                f"the limit max_queued_runs={s.max_queued_runs} is reached; try again later"
            )
        if owner is not None:
            self._check_quotas(owner)
        run = ActiveRun(new_id("r"), config, kind, owner=owner, shared=shared)
        run.pause_requested = config.start_paused  # so it may be stepped from its very first batch
        self.store.create_run(
            run.id, config.name, kind, config.model_dump(), config.parameter_count(), owner=owner, shared=shared
        )
        self.active[run.id] = run
        self.queue.append(run.id)
        self._start_queued()
        return run

    def _start_queued(self) -> None:
        while self.queue and self.running_count() < self.settings.max_concurrent_runs and not self.shutting_down:
            run = self.active[self.queue.popleft()]
            run.state = "running"
            try:
                self.executor.start(run.id, lambda run=run: self._train(run))  # type: ignore[misc]
            except Exception as exc:  # out of threads or descriptors: the run fails, its slot is freed
                log.exception("could not start run %s", run.id)
                self._finish(run, "failed", f"the run could not start: {type(exc).__name__}: {exc}", None)

    def control(self, run_id: str, action: str, caller: Caller | None = None) -> str:
        if caller is not None:
            self.check_access(run_id, caller, control=True)
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

    async def delete(self, run_id: str, caller: Caller | None = None) -> None:
        if caller is not None:
            self.check_access(run_id, caller, control=True)
        if run_id in self.active:
            self.control(run_id, "stop")
            await self.executor.join(run_id, 30)
        if not self.store.delete_run(run_id):
            raise NotFound(f"no run with id {run_id!r}")
        self.models.delete_run_model(run_id)

    async def shutdown(self) -> None:
        """SIGTERM: stop every trainer, mark active runs interrupted, close every watcher."""
        self.shutting_down = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        for run in list(self.active.values()):
            run.interrupted = True
            run.stop_requested = True  # a run still loading its data stops as soon as its trainer exists
            if run.trainer is not None:
                run.trainer.stop()
            end = EndMessage(run_id=run.id, state="interrupted", message="the server is shutting down")
            self.fanout.close(run.id, [("end", end.encode())], 1001)  # going away
        ours = list(self.active)
        for run_id in list(self.executor.threads):
            await self.executor.join(run_id, 5)
        with contextlib.suppress(*STORAGE_ERRORS):  # a read-only or full data dir: nothing more can be recorded
            # embedded: every active row is ours; a shared database also holds other processes' runs
            self.store.mark_interrupted(None if self.store.dialect == "sqlite" else ours)

    # ---- the training job (executor thread) --------------------------------------------------------

    def _train(self, run: ActiveRun) -> None:
        # Whatever happens in here (a bug, a full disk, no memory), the run must end through _finish: a job
        # that dies silently would hold a concurrency slot for ever.
        try:
            state, message, saved = train_and_save(run, self)
        except Exception as exc:
            log.exception("run %s failed", run.id)
            state, message, saved = "failed", f"training failed: {type(exc).__name__}: {exc}", None
        self._call_loop(run, state, message, saved)

    def _call_loop(self, run: ActiveRun, state: str, message: str, model: Model | None) -> None:
        if self.loop is not None and not self.loop.is_closed() and not self.shutting_down:
            try:
                self.loop.call_soon_threadsafe(self._finish, run, state, message, model)
                return
            except RuntimeError:
                pass
        # No loop to hand over to (shutting down): record the end from this thread; the watchers were
        # already told and closed by shutdown(), and must not be touched off the loop.
        with contextlib.suppress(Exception):
            self.store.update_run(
                run.id, state=state, message=message, finished_at=time.time(), has_model=int(model is not None)
            )

    # ---- back on the loop --------------------------------------------------------------------------

    def _finish(self, run: ActiveRun, state: str, message: str, model: Model | None) -> None:
        with contextlib.suppress(Exception):
            self.store.update_run(
                run.id, state=state, message=message, finished_at=time.time(), has_model=int(model is not None)
            )
        run.state = state
        try:
            stored = self.store.get_run(run.id) or {}
        except Exception:  # the database is unusable: the watchers still hear how the run ended
            stored = {}
        last = last_messages(run.id, state, message, stored.get("test_accuracy"), model is not None)
        self.fanout.close(run.id, last)
        self.active.pop(run.id, None)
        for callback in self.on_end:
            callback(run, state, model)
        if not self.shutting_down:
            self._start_queued()
            self.executor.balance_quietly()
