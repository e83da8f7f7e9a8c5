"""How engine events become stored rows and wire messages, for one run. Called from the training thread;
it encodes each message once, stores what must survive, and publishes to the run's watchers."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.model import Model
from engine.steering import AppliedChange
from engine.trainer import BatchProgress, Dataset, EpochEnd, Event, HealthReport, StateChange, Tick, Trainer
from server.fanout import EventSink
from server.frames import FrameMaker
from server.journal import Journal
from server.messages import (
    ChangeMessage,
    EpochMessage,
    HealthMessage,
    HistogramOut,
    LayerHealthOut,
    LayerHistogramsOut,
    ProgressMessage,
    StateMessage,
)
from server.pictures import extras_of
from server.store import Store

log = logging.getLogger("nnplay.runs")


@dataclass
class RunRecorder:
    run_id: str
    epochs: int
    store: Store
    fanout: EventSink
    data: Dataset | None  # set once the training job has loaded it
    extras_interval: float  # seconds between bulky views sent to clients (always with the last epoch)
    clock: float = field(default_factory=time.perf_counter)  # when training started, for the time-left estimate
    train_seconds: float = 0.0  # sum of finished epochs' wall time
    test_accuracy: float | None = None  # of the latest epoch
    extras_sent_at: float = 0.0
    model: Model | None = None
    on_state: Callable[[str], None] = lambda state: None  # running <-> paused, for the run's live state
    journal: Journal | None = None  # per-batch points, changes, health, checkpoints
    checkpoint: Callable[[int], bytes] | None = None  # the trainer's state after an epoch, as bytes
    checkpoint_budget: int = 0  # bytes of checkpoints kept per run (0: none)
    step: int = 0  # global batch index of the latest progress point
    # 2-D runs: live pictures on the trainer's ticks, and epochs stored (and sent) at most every epoch_every s
    frames: FrameMaker | None = None
    trainer: Trainer | None = None
    epoch_every: float = 0.0  # 0: every epoch
    epoch_stored_at: float = -1e9

    def publish_state(self, state: str, step: int | None = None) -> None:
        message = StateMessage(run_id=self.run_id, state=state, step=step)
        self.fanout.publish(self.run_id, "state", message.encode())

    def on_event(self, event: Event) -> None:
        if isinstance(event, AppliedChange):
            self._on_change(event)
        elif isinstance(event, HealthReport):
            self._on_health(event)
        elif isinstance(event, BatchProgress):
            done = (event.epoch - 1) * event.batches + event.batch
            total = self.epochs * event.batches
            elapsed = time.perf_counter() - self.clock
            message = ProgressMessage(
                run_id=self.run_id,
                epoch=event.epoch,
                epochs=self.epochs,
                batch=event.batch,
                batches=event.batches,
                loss=event.loss,
                learning_rate=event.learning_rate,
                eta_s=elapsed / done * (total - done) if done else None,
                step=event.step,
            )
            self.step = event.step
            text = message.encode()
            self._journal("progress point", lambda j: j.add_progress(self.run_id, event.step, text, None))
            self.fanout.publish(self.run_id, "progress", text)
        elif isinstance(event, EpochEnd):
            self._on_epoch(event)
        elif isinstance(event, Tick):
            self._on_tick(event)
        elif isinstance(event, StateChange) and event.state in ("running", "paused"):
            self.on_state(event.state)
            try:
                self.store.update_run(self.run_id, state=event.state)
            except Exception as exc:  # a full disk must not stop training
                log.warning("could not store the state of %s: %s", self.run_id, exc)
            self.publish_state(event.state, event.step)

    def _journal(self, what: str, write: Callable[[Journal], None]) -> None:
        if self.journal is None:
            return
        try:
            write(self.journal)
        except Exception as exc:  # a full disk must not stop training; the run keeps its epochs
            log.warning("could not store the %s of %s: %s", what, self.run_id, exc)

    def _on_change(self, event: AppliedChange) -> None:
        message = ChangeMessage(
            run_id=self.run_id,
            step=event.step,
            epoch=event.epoch,
            name=event.name,
            old=event.old,
            new=event.new,
            at=event.at,
        )
        text = message.encode()
        self._journal("change", lambda j: j.add_change(self.run_id, text))
        self.fanout.publish(self.run_id, "change", text)

    def _on_health(self, event: HealthReport) -> None:
        message = HealthMessage(
            run_id=self.run_id,
            epoch=event.epoch,
            step=event.step,
            layers=[LayerHealthOut(**vars(layer)) for layer in event.layers],
        )
        text = message.encode()
        self._journal("health", lambda j: j.set_health(self.run_id, event.step, text))
        self.fanout.publish(self.run_id, "health", text)

    def _on_tick(self, event: Tick) -> None:
        # between ticks nobody watching costs nothing; start, pause and end are drawn anyway (a watcher that
        # connects later gets the latest picture first)
        if self.frames is None or self.trainer is None:
            return
        if event.reason == "interval" and not self.fanout.wants_frame(self.run_id):
            return
        frame = self.frames.frame(self.trainer, event.step, event.epoch)
        self.fanout.publish(self.run_id, "frame", frame.encode())

    def _on_epoch(self, event: EpochEnd) -> None:
        assert self.model is not None
        if self.epoch_every > 0 and event.epoch != event.epochs:
            # A 2-D epoch takes milliseconds: a row (and a never-dropped message) per epoch would be thousands
            # of transactions a second and a history too long to send. The frames carry the live curves.
            now = time.monotonic()
            if now - self.epoch_stored_at < self.epoch_every:
                self.train_seconds += event.seconds
                self.test_accuracy = event.test_accuracy
                return
            self.epoch_stored_at = now
        message = epoch_message(self.run_id, event)
        assert self.data is not None
        extras = extras_of(self.model, event, self.data)
        self.train_seconds += event.seconds
        self.test_accuracy = event.test_accuracy
        try:
            self.store.add_epoch(
                self.run_id,
                event.epoch,
                message.encode(),
                extras.encode(),
                test_accuracy=event.test_accuracy,
                test_loss=event.test_loss if math.isfinite(event.test_loss) else None,
                train_seconds=self.train_seconds,
            )
        except Exception as exc:  # disk full / read-only: training goes on, the run says so at the end
            log.warning("could not store epoch %s of %s: %s", event.epoch, self.run_id, exc)
        # The bulky views (~90 kB) are ~all of an epoch message's bytes. With many clients and sub-second
        # epochs, sending them every epoch cost 13% of training speed; at most once per interval (and always
        # with the last epoch) they cost next to nothing. The store keeps the latest for snapshots either way.
        now = time.monotonic()
        if now - self.extras_sent_at >= self.extras_interval or event.epoch == event.epochs:
            self.extras_sent_at = now
            message.filters, message.misclassified = extras.filters, extras.misclassified
            message.conv, message.sample = extras.conv, extras.sample
        # the checkpoint is stored before the epoch is announced: a worker lost in between is resumed from this
        # epoch, so no watcher ever sees an epoch that is then trained again
        if self.checkpoint is not None and self.checkpoint_budget > 0:
            payload = self.checkpoint(event.epoch)
            self._journal(
                "checkpoint", lambda j: j.add_checkpoint(self.run_id, event.epoch, payload, self.checkpoint_budget)
            )
        message.ended_at = time.time()
        self.fanout.publish(self.run_id, "epoch", message.encode())


def epoch_message(run_id: str, event: EpochEnd) -> EpochMessage:
    return EpochMessage(
        run_id=run_id,
        epoch=event.epoch,
        epochs=event.epochs,
        train_loss=event.train_loss,
        train_accuracy=event.train_accuracy,
        test_loss=event.test_loss,
        test_accuracy=event.test_accuracy,
        seconds=event.seconds,
        learning_rate=event.learning_rate,
        histograms=[
            LayerHistogramsOut(
                layer=h.layer,
                type=h.type,
                shape=list(h.shape),
                weights=HistogramOut(edges=h.weights.edges, counts=h.weights.counts),
                biases=HistogramOut(edges=h.biases.edges, counts=h.biases.counts),
                gradients=HistogramOut(edges=h.gradients.edges, counts=h.gradients.counts),
            )
            for h in event.histograms
        ],
        confusion=event.confusion,
    )
