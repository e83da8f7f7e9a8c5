"""One run's training job, wherever it executes: a thread of the web process (embedded mode, server/runs.py)
or a Celery worker on another machine (cluster mode, server/cluster/worker.py). It loads the data, builds the
model, continues from a checkpoint when asked (a fork, or a run requeued after its worker was lost), trains
with a recorder that stores and publishes every event, and saves the model."""

from __future__ import annotations

import contextlib
import time
from typing import Protocol

import numpy as np

from engine.checkpoint import Checkpoint
from engine.datasets import DatasetError
from engine.model import Model
from engine.trainer import Trainer
from server.data import DataProvider
from server.database import FILE_OR_STORAGE_ERRORS, STORAGE_ERRORS
from server.fanout import EventSink
from server.frames import FrameMaker
from server.journal import Journal
from server.recorder import RunRecorder
from server.registry import ModelRegistry
from server.settings import Settings
from server.steer import ActiveRun
from server.store import Store

TOY_EPOCH_EVERY = 0.25  # seconds between stored epoch rows of a 2-D run (the last epoch is always stored)


class TrainingEnv(Protocol):
    """What a training job needs around it (RunManager has all of it; so does a cluster worker)."""

    settings: Settings
    store: Store
    journal: Journal
    data: DataProvider
    models: ModelRegistry

    @property
    def sink(self) -> EventSink: ...


def train_and_save(run: ActiveRun, env: TrainingEnv) -> tuple[str, str, Model | None]:
    """Train the run to its end; (state, message, the saved model or None). Raises only on bugs."""
    if run.resume_epoch is None:
        env.store.update_run(run.id, state="running", started_at=time.time())
    recorder = RunRecorder(run.id, run.config.epochs, env.store, env.sink, None, env.settings.ws_extras_interval)

    def on_state(state: str) -> None:
        run.paused_at = time.monotonic() if state == "paused" else None
        run.state = state

    recorder.on_state = on_state
    recorder.journal, recorder.checkpoint_budget = env.journal, env.settings.checkpoint_budget
    recorder.publish_state("running")
    try:
        recorder.data = env.data.get(run.config.dataset, run.config.data)
        model = Model.build(run.config.model_spec(), seed=run.config.seed)
        trainer = Trainer(model, run.config.train_config(), recorder.data, on_event=recorder.on_event)
        source = _checkpoint_source(run)
        if source is not None:  # a fork, or this run's own last epoch after its worker was lost
            payload = env.journal.checkpoint(*source)
            if payload is None:
                return "failed", f"no checkpoint after epoch {source[1]} of {source[0]}", None
            trainer.restore(Checkpoint.from_bytes(payload))
            if run.resume_epoch is not None:
                stored = env.store.get_run(run.id) or {}
                recorder.train_seconds = float(stored.get("train_seconds") or 0.0)
                recorder.test_accuracy = stored.get("test_accuracy")
    except (DatasetError, ValueError, MemoryError, KeyError) as exc:
        return "failed", str(exc), None
    recorder.checkpoint = lambda epoch: trainer.checkpoint(epoch).to_bytes()
    recorder.model = model
    if trainer.config.tick_every > 0:  # a generated 2-D set: live pictures (server/frames.py)
        recorder.frames = FrameMaker.for_run(model, recorder.data, run.config.dataset, run.config.data)
        recorder.trainer, recorder.epoch_every = trainer, TOY_EPOCH_EVERY
    run.trainer = trainer
    if run.pause_requested:
        trainer.pause()
    if run.stop_requested or run.interrupted:
        trainer.stop()
    recorder.clock = time.perf_counter()
    end = trainer.run()
    state, message = end.state, end.message
    if run.interrupted:
        state, message = "interrupted", run.interrupted_because
    elif run.pause_expired and state == "stopped":
        message = f"stopped: paused for longer than max_pause_seconds={env.settings.max_pause_seconds:g}"
    if end.state == "diverged" and trainer.epochs_done == 0:
        message = message.replace(" The last finite weights were kept.", " No epoch finished, so no model was kept.")
    saved = None
    if run.taken:  # a worker thought lost that was not: the run goes on elsewhere, from its checkpoint
        return state, message, None
    if trainer.epochs_done > 0 and all(np.isfinite(p).all() for p, _ in model.parameters()):
        model.meta = {
            "run_id": run.id,
            "name": run.config.name,
            "dataset": run.config.dataset,
            "epochs": trainer.epochs_done,
            "test_accuracy": recorder.test_accuracy,
        }
        try:
            size = env.models.save_run_model(run.id, model)
            saved = model
            with contextlib.suppress(*STORAGE_ERRORS):
                env.store.add_stored_bytes(run.id, size)
        except FILE_OR_STORAGE_ERRORS as exc:
            message += f" (the model could not be saved: {getattr(exc, 'strerror', None) or exc})"
    return state, message, saved


def _checkpoint_source(run: ActiveRun) -> tuple[str, int] | None:
    if run.resume_epoch:
        return run.id, run.resume_epoch
    if run.config.start is not None:
        return run.config.start.run, run.config.start.epoch
    return None
