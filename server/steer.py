"""Changing a run while it trains (live hyperparameters, step mode) and forking it from an epoch's checkpoint;
the run's identity and the errors every run operation may raise. RunManager (server/runs.py) mixes this in."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.checkpoint import Checkpoint
from engine.steering import ChangeError, check
from engine.trainer import Trainer
from server.config import ChangeIn, ForkStart, RunConfig

if TYPE_CHECKING:
    from server.journal import Journal
    from server.store import Store


class QueueFull(Exception):
    pass


class NotFound(Exception):
    pass


class Conflict(Exception):
    pass


class Forbidden(Exception):
    pass


class QuotaExceeded(Exception):
    """A per-owner quota (its setting named in the message): 429."""


class BrokerUnavailable(Exception):
    """Cluster mode: Redis cannot be reached (503, naming it)."""


def new_id(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(5)}"


@dataclass
class ActiveRun:
    id: str
    config: RunConfig
    kind: str
    state: str = "queued"
    trainer: Trainer | None = None
    stop_requested: bool = False
    pause_requested: bool = False
    interrupted: bool = False
    owner: str | None = None  # None: anyone may control it (the default model's run)
    shared: bool = True
    paused_at: float | None = None  # monotonic time it last became paused
    pause_expired: bool = False  # stopped because it stayed paused past max_pause_seconds
    interrupted_because: str = "the server stopped while this run was active"
    resume_epoch: int | None = None  # cluster mode: requeued after its worker was lost; go on after this epoch
    taken: bool = False  # cluster mode: another worker holds it now; this one keeps nothing it made


class Steering:
    active: dict[str, ActiveRun]
    store: Store
    journal: Journal

    def create(self, config: RunConfig, kind: str = "user", owner: str | None = None, shared: bool = True) -> ActiveRun:
        raise NotImplementedError

    def _trainer_of(self, run_id: str, what: str) -> Trainer:
        run = self.active.get(run_id)
        if run is None:
            if self.store.get_run(run_id) is None:
                raise NotFound(f"no run with id {run_id!r}")
            raise Conflict(f"run {run_id} has ended; only a training or paused run can {what}")
        if run.trainer is None:
            raise Conflict(f"run {run_id} has not started yet; it can {what} once it trains")
        return run.trainer

    def change(self, run_id: str, changes: list[tuple[str, float]]) -> list[tuple[str, float]]:
        """Live changes, validated now and applied from the next batch (ChangeError names a bad one)."""
        controls = self._trainer_of(run_id, "change").controls
        for name, value in changes:  # validate all before queueing any
            check(name, value)
            if name not in controls.hyper:
                raise ChangeError(
                    f"{name} does not exist in this run (dropout.<i> names a dense layer; Adam has no momentum)"
                )
        return [(name, controls.request(name, value)) for name, value in changes]

    def step(self, run_id: str, batches: int) -> str:
        run = self.active.get(run_id)
        trainer = self._trainer_of(run_id, "step")
        if run is None or not (run.state == "paused" or run.pause_requested):
            raise Conflict(f"run {run_id} is {run.state if run else 'over'}: pause it first, then step")
        trainer.step(batches)
        return "stepping"

    def fork(self, run_id: str, epoch: int, changes: list[tuple[str, float]], owner: str | None = None) -> ActiveRun:
        stored = self.store.get_run(run_id)
        if stored is None:
            raise NotFound(f"no run with id {run_id!r}")
        payload = self.journal.checkpoint(run_id, epoch)
        if payload is None:
            kept = self.journal.checkpoint_epochs(run_id)
            raise Conflict(f"run {run_id} has no checkpoint after epoch {epoch}; kept: {kept or 'none'}")
        for name, value in changes:
            check(name, value)
        step = Checkpoint.from_bytes(payload).step
        config = RunConfig.model_validate(stored["config"])
        name = f"{config.name or run_id} · fork @{epoch}"[:80]
        replay = [c for c in config.replay if c.step < step] + [
            ChangeIn(step=step, name=n, value=v) for n, v in changes
        ]
        forked = config.model_copy(update={"name": name, "start": ForkStart(run=run_id, epoch=epoch), "replay": replay})
        return self.create(RunConfig.model_validate(forked.model_dump()), owner=owner)
