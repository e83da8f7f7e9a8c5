"""`nnplay worker`: a Celery worker that trains runs, one at a time, in its main thread (solo pool: `kill -9`
of the worker is the death of the run's only process, and a worker is one core). Start as many as there are
cores, on any machine that reaches Redis and the database; each reads MNIST from its own data directory
(fetching it there when missing).

While a run trains, two threads beside it: one beats the run's heartbeat into the database (so a lost worker
is noticed and its run requeued), one reads the run's commands from Redis (pause, resume, stop, step, live
changes). Events go out through an EventPublisher, so the web replicas relay them to the pages."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from celery import Celery
from celery.signals import worker_shutting_down
from threadpoolctl import threadpool_limits

from engine.checkpoint import Checkpoint
from engine.model import Model
from engine.parallel import set_threads
from engine.steering import ChangeError
from server.cluster import leases
from server.cluster.bus import CommandListener, Commands, EventPublisher
from server.cluster.celery_app import TRAIN_TASK, broker_of, make_celery
from server.config import ChangeIn, RunConfig
from server.data import DataProvider
from server.database import STORAGE_ERRORS
from server.journal import Journal
from server.messages import last_messages
from server.registry import ModelRegistry
from server.settings import Settings
from server.steer import ActiveRun
from server.store import Store
from server.training import train_and_save

log = logging.getLogger("nnplay.worker")


@dataclass
class Worker:
    """The TrainingEnv of a worker process, and what it knows of the run it holds."""

    settings: Settings
    store: Store
    journal: Journal
    data: DataProvider
    models: ModelRegistry
    sink: EventPublisher
    commands: Commands
    identity: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    current: ActiveRun | None = None
    shutting_down: bool = False
    _data_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def create(cls, settings: Settings) -> Worker:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = Store.open(settings)
        return cls(
            settings,
            store,
            Journal(store),
            DataProvider(settings.data_dir),
            ModelRegistry(settings, store),
            EventPublisher(broker_of(settings)),
            Commands(broker_of(settings)),
        )

    # ---- the task ------------------------------------------------------------------------------------------

    def train(self, run_id: str) -> str:
        """Celery's task body. Idempotent: a redelivered task for a run someone holds (or that ended) is a no-op."""
        row = leases.claim(self.store, run_id, self.identity)
        if row is None:
            log.info("run %s is not queued any more: nothing to do", run_id)
            return "skipped"
        config = RunConfig.model_validate(row["config"])
        run = ActiveRun(run_id, config, row["kind"], owner=row["owner"], shared=row["shared"], state="running")
        # paused if it was asked to start paused, or was paused when its last worker let it go
        wanted = self.commands.pause_wanted_quietly(run_id)
        run.pause_requested = config.start_paused if wanted is None else wanted
        if row.get("attempts", 1) > 1:  # taken before (lost or handed back): go on after its last checkpoint
            run.config = self._resume(run, int(row["epochs_done"]))
            # pages watching it may have missed what its last worker did last: they redraw from the database
            self.sink.publish(run_id, "resync", "")
        log.info("run %s: training on %s (attempt %s)", run_id, self.identity, row.get("attempts"))
        self.current = run
        lease = Lease(self, run)
        commands = CommandListener(broker_of(self.settings), run_id, lambda command: self._command(run, command))
        lease.start()
        commands.start()
        try:
            self._ensure_data(config.dataset)
            state, message, model = train_and_save(run, self)
        except Exception as exc:
            log.exception("run %s failed", run_id)
            state, message, model = "failed", f"training failed: {type(exc).__name__}: {exc}", None
        finally:
            commands.stop()
            lease.stop()
            self.current = None
        if lease.lost:
            log.warning("run %s was taken from this worker (silent too long): its result is not recorded", run_id)
            return "lost"
        unfinished = run.trainer is None or run.trainer.epochs_done < run.config.epochs
        if self.shutting_down and run.interrupted and not run.stop_requested and unfinished:
            if leases.requeue(
                self.store, run_id, self.identity, f"worker {self.identity} shut down; requeued", lost=False
            ):
                make_task(self).apply_async(args=[run_id])  # if this fails, the web's sweep sends it again
            return "released"
        self._finish(run, state, message, model)
        return state

    def _resume(self, run: ActiveRun, epochs_done: int) -> RunConfig:
        kept = [e for e in self.journal.checkpoint_epochs(run.id) if e <= epochs_done]
        epoch = max(kept, default=0)
        payload = self.journal.checkpoint(run.id, epoch) if epoch else None
        step = Checkpoint.from_bytes(payload).step if payload else 0
        run.resume_epoch = epoch if payload else 0  # 0: nothing kept, from the start (or the fork's own point)
        # every change applied so far is in the journal; the lost worker's after `step` are replayed, with the
        # config's own replay entries not reached yet
        applied = [
            ChangeIn(step=c["step"], name=c["name"], value=c["new"])
            for c in leases.prepare_resume(self.store, run.id, epoch, step)
        ]
        pending = [c for c in run.config.replay if c.step >= step and c not in applied]
        log.info(
            "run %s: resumed after epoch %d (batch %d), %d change(s) to replay",
            run.id,
            epoch,
            step,
            len(applied) + len(pending),
        )
        return run.config.model_copy(update={"replay": sorted([*applied, *pending], key=lambda c: c.step)})

    def _ensure_data(self, dataset: str) -> None:
        with self._data_lock:
            if not self.data.ready(dataset):
                log.info("fetching %s into %s", dataset, self.settings.data_dir)
                self.data.fetch(dataset)

    def _command(self, run: ActiveRun, command: dict[str, Any]) -> None:
        """From the command thread. Flags are set before the trainer is read: the training job checks them
        once it has built its trainer, so a command arriving meanwhile is never lost."""
        action = command.get("action")
        if action == "stop":
            run.stop_requested = True
            if run.trainer is not None:
                run.trainer.stop()
        elif action == "pause":
            run.pause_requested = True
            if run.trainer is not None:
                run.trainer.pause()
        elif action == "resume":
            run.pause_requested = False
            if run.trainer is not None:
                run.trainer.resume()
        elif action in ("step", "set"):
            trainer = self._trainer_when_built(run)  # still loading data or building: wait for it
            if trainer is None:
                return
            if action == "step":
                trainer.step(int(command.get("batches", 1)))
            else:
                for name, value in command.get("changes", []):
                    try:
                        trainer.controls.request(str(name), float(value))
                    except ChangeError as exc:
                        log.warning("run %s: change refused: %s", run.id, exc)

    @staticmethod
    def _trainer_when_built(run: ActiveRun, timeout: float = 120.0) -> Any:
        deadline = time.monotonic() + timeout
        while run.trainer is None and not (run.stop_requested or run.interrupted) and time.monotonic() < deadline:
            time.sleep(0.02)
        return run.trainer

    def _finish(self, run: ActiveRun, state: str, message: str, model: Model | None) -> None:
        try:
            recorded = leases.finish(
                self.store,
                run.id,
                self.identity,
                state=state,
                message=message,
                finished_at=time.time(),
                has_model=int(model is not None),
            )
            if not recorded:  # requeued, given up on or deleted meanwhile: not ours to end
                log.warning("run %s is no longer this worker's: its end is not recorded", run.id)
                if model is not None and self.store.get_run(run.id) is None:
                    self.models.delete_run_model(run.id)  # deleted while training: keep no orphan model
                return
            if run.kind == "default" and state == "finished" and model is not None:
                self.models.install_default(run.id)
            stored = self.store.get_run(run.id) or {}
        except STORAGE_ERRORS as exc:
            log.warning("could not record the end of %s: %s", run.id, exc)
            stored = {}
        for kind, text in last_messages(run.id, state, message, stored.get("test_accuracy"), model is not None):
            self.sink.publish(run.id, kind, text)
        self.sink.flush()


class Lease:
    """Beats the run's heartbeat; when the row says the run is no longer ours, stops training at once."""

    def __init__(self, worker: Worker, run: ActiveRun) -> None:
        self.worker, self.run = worker, run
        self.lost = False
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{run.id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(5)

    def _run(self) -> None:
        limit = self.worker.settings.max_pause_seconds
        while not self._stopped.wait(self.worker.settings.worker_heartbeat):
            run = self.run
            paused_at = run.paused_at if run.state == "paused" else None
            if paused_at is not None and time.monotonic() - paused_at > limit and not run.stop_requested:
                # as in the embedded mode: a paused run holds a worker; past max_pause_seconds it is stopped
                log.info("run %s paused longer than max_pause_seconds=%g: stopped", run.id, limit)
                run.pause_expired = run.stop_requested = True
                if run.trainer is not None:
                    run.trainer.stop()
            try:
                mine = leases.beat(self.worker.store, self.run.id, self.worker.identity)
            except STORAGE_ERRORS as exc:  # the database is away: keep training, try again
                log.warning("heartbeat of %s not stored: %s", self.run.id, exc)
                continue
            if not mine:
                self.lost = self.run.taken = True
                self.run.stop_requested = True
                if self.run.trainer is not None:
                    self.run.trainer.stop()
                return


_tasks: dict[int, Any] = {}


def make_task(worker: Worker) -> Any:
    return _tasks[id(worker)]


def build(settings: Settings) -> tuple[Celery, Worker]:
    app = make_celery(settings)
    worker = Worker.create(settings)

    @app.task(name=TRAIN_TASK, bind=False, acks_late=True, reject_on_worker_lost=True)
    def train(run_id: str) -> str:
        return worker.train(run_id)

    _tasks[id(worker)] = train

    def _on_shutdown(**_: Any) -> None:  # SIGTERM: stop training now; the run is handed back to the queue
        worker.shutting_down = True
        run = worker.current
        if run is not None:  # still loading its data: the training job sees the flag once its trainer exists
            run.interrupted, run.interrupted_because = True, f"worker {worker.identity} shut down"
            if run.trainer is not None:
                run.trainer.stop()

    worker_shutting_down.connect(_on_shutdown, weak=False)  # a weak reference would die with this function
    return app, worker


def main(settings: Settings, loglevel: str = "INFO") -> None:
    """Run a worker until it is told to stop (Ctrl-C or SIGTERM: its run goes back to the queue)."""
    app, worker = build(settings)
    threadpool_limits(limits=1, user_api="blas")  # one core per worker; start more workers for more cores
    set_threads(1)  # a convolution's shards too (engine/parallel.py) run in turn on that core
    log.info("worker %s: queue %s, data in %s", worker.identity, settings.queue_name, settings.data_dir)
    app.worker_main(
        [
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            f"--queues={settings.queue_name}",
            f"--hostname=nnplay-{worker.identity.replace(':', '-')}@%h",
            f"--loglevel={loglevel}",
        ]
    )
