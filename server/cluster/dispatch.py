"""The web tier's side of cluster mode: the same operations as RunManager (server/runs.py), but a run is a
row in the database plus a Celery task, its controls are commands over Redis, and its events arrive from
Redis into the local fan-out. This process never trains. It also sweeps for runs whose worker went silent
and requeues them from their last epoch checkpoint (or, after ``max_run_attempts`` lost workers, marks them
interrupted: a run that kills its workers must not take down the next ones too)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from kombu.exceptions import KombuError, OperationalError

from engine.model import Model
from engine.spec import DenseSpec
from engine.steering import ChangeError, check
from server.access import Access
from server.cluster import leases
from server.cluster.bus import EVENTS, Commands, EventRelay, redact
from server.cluster.celery_app import TRAIN_TASK, broker_of, make_celery
from server.config import RunConfig
from server.data import DataProvider
from server.database import STORAGE_ERRORS
from server.fanout import LocalFanout
from server.journal import Journal
from server.limits import check_limits
from server.messages import StateMessage, last_messages
from server.owners import Caller
from server.registry import ModelRegistry
from server.settings import Settings
from server.steer import ActiveRun, BrokerUnavailable, Conflict, NotFound, QueueFull, QuotaExceeded, Steering, new_id
from server.store import ACTIVE_STATES, Store

log = logging.getLogger("nnplay.cluster")
TASK_LOST_AFTER = 30.0  # seconds a run may wait queued before the broker is checked for its task


class ClusterRunManager(Steering, Access):
    def __init__(
        self, settings: Settings, store: Store, data: DataProvider, models: ModelRegistry, fanout: LocalFanout
    ) -> None:
        self.settings, self.store, self.data, self.models, self.fanout = settings, store, data, models, fanout
        self.journal = Journal(store)
        self.broker = broker_of(settings)
        self.celery = make_celery(settings)
        self.commands = Commands(self.broker)
        self.relay = EventRelay(self.broker, fanout, on_reconnect=self._after_broker_loss)
        self.active: dict[str, ActiveRun] = {}  # always empty here: the database knows which runs are active
        self.queue: deque[str] = deque()  # likewise: the queue is Redis's
        self.on_end: list[Callable[[ActiveRun, str, Model | None], None]] = []  # ends are seen by workers only
        self.shutting_down = False
        self._sweeper: asyncio.Task[None] | None = None
        self._store_failed_at = -1e9  # monotonic time of the sweep's last database failure

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.fanout.attach(loop)
        self.relay.start()
        self._sweeper = loop.create_task(self._sweep_forever())

    def counts(self) -> tuple[int, int]:
        return leases.counts(self.store)

    def running_count(self) -> int:
        return self.counts()[0]

    def live_state(self, run_id: str) -> str | None:
        return None  # the row is the truth: workers store every state change

    def get_active(self, run_id: str) -> ActiveRun | None:
        row = self.store.get_run(run_id)
        if row is None or row["state"] not in ACTIVE_STATES:
            return None
        config = RunConfig.model_validate(row["config"])
        return ActiveRun(row["id"], config, row["kind"], row["state"], owner=row["owner"], shared=row["shared"])

    def default_run_id(self) -> str | None:
        rows = self.store.db.rows(
            "SELECT id FROM runs WHERE kind='default' AND state IN ('queued', 'running', 'paused') "
            "ORDER BY created_at DESC LIMIT 1"
        )
        return rows[0]["id"] if rows else None

    def first_to_start_default(self) -> bool:
        """Replicas starting together: only one of them starts the default model's run."""
        try:
            return bool(self.commands.client.set("nnplay:default-run-starting", 1, nx=True, ex=30))
        except Exception:
            return False

    def queue_position(self, run: dict[str, Any]) -> int | None:
        return leases.queue_position(self.store, run["id"], run["created_at"]) if run["state"] == "queued" else None

    # ---- requests (event loop) -------------------------------------------------------------------------

    def create(self, config: RunConfig, kind: str = "user", owner: str | None = None, shared: bool = True) -> ActiveRun:
        check_limits(config, self.settings)
        _, queued = self.counts()
        if queued >= self.settings.max_queued_runs:
            raise QueueFull(
                f"{queued} runs are waiting for a worker: the limit max_queued_runs={self.settings.max_queued_runs}"
                " is reached; try again later"
            )
        if owner is not None:
            self._check_quotas(owner)
        run = ActiveRun(new_id("r"), config, kind, owner=owner, shared=shared)
        self.store.create_run(
            run.id, config.name, kind, config.model_dump(), config.parameter_count(), owner=owner, shared=shared
        )
        try:
            self.celery.send_task(TRAIN_TASK, args=[run.id], queue=self.settings.queue_name)
        except (OperationalError, KombuError, OSError) as exc:
            with contextlib.suppress(*STORAGE_ERRORS):
                self.store.delete_run(run.id)  # no run without its task: it would wait for ever
            raise BrokerUnavailable(
                f"the broker {redact(self.broker)} is unreachable: {exc}; try again shortly"
            ) from exc
        return run

    def _check_quotas(self, owner: str) -> None:
        s = self.settings
        usage = self.store.owner_usage(owner)
        if usage["runs"] >= s.max_runs_per_owner:
            raise QuotaExceeded(
                f"you keep {usage['runs']} runs: the quota max_runs_per_owner={s.max_runs_per_owner} is reached;"
                " delete some (DELETE /api/runs/ID)"
            )
        if usage["queued"] >= s.max_queued_runs_per_owner:
            raise QuotaExceeded(
                f"you have {usage['queued']} runs waiting: the quota max_queued_runs_per_owner="
                f"{s.max_queued_runs_per_owner} is reached; wait for one to start"
            )
        if usage["bytes"] >= s.max_bytes_per_owner:
            raise QuotaExceeded(
                f"your runs and models take {usage['bytes']} bytes: the quota max_bytes_per_owner="
                f"{s.max_bytes_per_owner} is reached; delete some"
            )

    def _active_row(self, run_id: str, what: str) -> dict[str, Any]:
        row = self.store.get_run(run_id)
        if row is None:
            raise NotFound(f"no run with id {run_id!r}")
        if row["state"] not in ACTIVE_STATES:  # the same words as the embedded mode's (server/steer.py)
            if what.startswith("be "):
                raise Conflict(f"run {run_id} is {row['state']}; only active runs can {what}")
            raise Conflict(f"run {run_id} has ended; only a training or paused run can {what}")
        return row

    def control(self, run_id: str, action: str, caller: Caller | None = None) -> str:
        if caller is not None:
            self.check_access(run_id, caller, control=True)
        row = self._active_row(run_id, "be paused, resumed or stopped")
        queued = row["state"] == "queued"
        if action == "stop":
            if queued and leases.stop_queued(self.store, run_id, "stopped before it started"):
                self._announce_end(run_id, "stopped", "stopped before it started")
                return "stopped"
            self.commands.send(run_id, {"action": "stop"})
            return "stopping"
        if action == "pause":
            self.commands.send(run_id, {"action": "pause"}, paused=True)
            return "queued" if queued else "pausing"
        if action == "resume":
            self.commands.send(run_id, {"action": "resume"}, paused=False)
            return "resuming" if row["state"] == "paused" else row["state"]
        raise Conflict(f"unknown action {action!r}")

    def change(self, run_id: str, changes: list[tuple[str, float]]) -> list[tuple[str, float]]:
        row = self._active_row(run_id, "change")
        if row["state"] == "queued":
            raise Conflict(f"run {run_id} has not started yet; it can change once it trains")
        names = hyper_names(RunConfig.model_validate(row["config"]))
        checked = []
        for name, value in changes:  # validate all before sending any
            value = check(name, value)
            if name not in names:
                raise ChangeError(
                    f"{name} does not exist in this run (dropout.<i> names a dense layer; Adam has no momentum)"
                )
            checked.append((name, value))
        self.commands.send(run_id, {"action": "set", "changes": checked})
        return checked

    def step(self, run_id: str, batches: int) -> str:
        row = self._active_row(run_id, "step")
        wanted = self.commands.pause_wanted_quietly(run_id)
        if wanted is None:  # never paused or resumed: as it was asked to start
            wanted = bool(row["config"].get("start_paused"))
        if row["state"] != "paused" and not wanted:
            raise Conflict(f"run {run_id} is {row['state']}: pause it first, then step")
        self.commands.send(run_id, {"action": "step", "batches": batches})
        return "stepping"

    async def delete(self, run_id: str, caller: Caller | None = None) -> None:
        if caller is not None:
            self.check_access(run_id, caller, control=True)
        if self.get_active(run_id) is not None:
            self.control(run_id, "stop")
            deadline = time.monotonic() + 30
            while self.get_active(run_id) is not None and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
        if not self.store.delete_run(run_id):
            raise NotFound(f"no run with id {run_id!r}")
        self.models.delete_run_model(run_id)
        self.commands.forget(run_id)
        self._announce_end(run_id, "deleted", "the run was deleted")  # a watcher of a run that never ended

    async def shutdown(self) -> None:
        """The runs go on training on their workers; this replica's watchers are told to reconnect (1012)."""
        self.shutting_down = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        await self.relay.stop()
        for run_id in list(self.fanout.subscribers):
            self.fanout.close(run_id, [], 1012)

    def _announce_end(self, run_id: str, state: str, message: str) -> None:
        """An end decided here (a queued run stopped, a run given up): every replica's watchers hear it."""
        try:
            pipe = self.commands.client.pipeline()
            for kind, text in last_messages(run_id, state, message, None, False):
                pipe.publish(EVENTS + run_id, f"{kind}\n{text}")
            pipe.execute()
        except Exception as exc:  # the watchers see the end in their next snapshot
            log.warning("could not announce the end of %s: %s", run_id, exc)

    # ---- lost workers -------------------------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        while not self.shutting_down:
            await asyncio.sleep(self.settings.worker_heartbeat)
            # Workers could not beat while the database was away: their heartbeats are as old as the outage.
            # Judge them only once they have had worker_lost_after seconds of a working database to beat in.
            if time.monotonic() - self._store_failed_at < self.settings.worker_lost_after:
                continue
            try:
                await asyncio.to_thread(self.sweep)
                await asyncio.to_thread(self.resend_lost_tasks, TASK_LOST_AFTER)
                self._close_ended_watchers(await asyncio.to_thread(leases.ended_among, self.store, self._watched()))
            except STORAGE_ERRORS as exc:
                self._store_failed_at = time.monotonic()
                log.warning("could not look for lost workers: %s", exc)
            except Exception as exc:  # Redis is away: try again next time
                log.warning("could not look for lost workers: %s", exc)

    async def _after_broker_loss(self) -> None:
        """Connected to Redis, maybe a new, empty one (it keeps nothing on disk by default): the tasks of queued
        runs may be gone. Those missing are sent again at once."""
        try:
            await asyncio.to_thread(self.resend_lost_tasks, 0.0)
        except Exception as exc:
            log.warning("could not check the queued runs' tasks: %s", exc)

    def resend_lost_tasks(self, older_than: float) -> int:
        """Send again the task of every run queued (for ``older_than`` seconds) that has none in the broker: a
        Redis restarted empty, or a send that failed after its row was written. A duplicate would be harmless
        (the claim is idempotent), but none is made."""
        waiting = leases.waiting_since(self.store, older_than)
        if not waiting:
            return 0
        pending = self.commands.pending_runs(self.settings.queue_name)
        missing = [run_id for run_id in waiting if run_id not in pending]
        for run_id in missing:
            self.celery.send_task(TRAIN_TASK, args=[run_id], queue=self.settings.queue_name)
        if missing:
            log.warning("the tasks of %d queued run(s) were missing from the broker: sent again", len(missing))
        return len(missing)

    def _watched(self) -> list[str]:
        return list(self.fanout.subscribers)

    def _close_ended_watchers(self, ended: list[dict[str, Any]]) -> None:
        """On the loop. A run that ended while its end message could not reach this replica (Redis away, or
        published before a restart) still ends for the pages watching it here."""
        for row in ended:
            last = last_messages(row["id"], row["state"], row["message"], row["test_accuracy"], bool(row["has_model"]))
            self.fanout.close(row["id"], last)

    def sweep(self) -> list[str]:
        """Requeue (or give up on) every run whose worker has been silent too long; the ids requeued."""
        requeued = []
        for row in leases.lost(self.store, self.settings.worker_lost_after):
            worker, lost = row["worker"], int(row["lost_workers"]) + 1
            if lost >= self.settings.max_run_attempts:
                message = f"interrupted: {lost} workers were lost while training it (last: {worker})"
                if leases.give_up(self.store, row["id"], worker, message):
                    log.warning("run %s: %s", row["id"], message)
                    self._announce_end(row["id"], "interrupted", message)
                continue
            message = f"worker {worker} was lost after epoch {row['epochs_done']}; requeued from its checkpoint"
            if leases.requeue(self.store, row["id"], worker, message, lost=True):
                log.warning("run %s: %s", row["id"], message)
                self.celery.send_task(TRAIN_TASK, args=[row["id"]], queue=self.settings.queue_name)
                self.fanout.publish(row["id"], "state", StateMessage(run_id=row["id"], state="queued").encode())
                requeued.append(row["id"])
        return requeued


def hyper_names(config: RunConfig) -> set[str]:
    """What a live change may name in this run, as the trainer's controls have them (engine/trainer.py: every
    hidden dense layer has a dropout layer; Adam has no momentum), read from the spec without building it."""
    names = {"learning_rate", "l2", "l1", "batch_size"}
    if config.optimizer.name != "adam":
        names.add("momentum")
    spec = config.model_spec()
    return names | {f"dropout.{i}" for i, layer in enumerate(spec.layers) if isinstance(layer, DenseSpec)}
