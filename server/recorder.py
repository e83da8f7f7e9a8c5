"""How engine events become stored rows and wire messages, for one run. Called from the training thread;
it encodes each message once, stores what must survive, and publishes to the run's watchers."""

from __future__ import annotations

import base64
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from engine.layers import Dense
from engine.model import Model
from engine.steering import AppliedChange
from engine.trainer import BatchProgress, Dataset, EpochEnd, Event, HealthReport, StateChange, Tick, Trainer
from server.fanout import LocalFanout
from server.frames import FrameMaker
from server.journal import Journal
from server.messages import (
    ChangeMessage,
    ConvView,
    EpochMessage,
    Extras,
    FeatureMapsOut,
    HealthMessage,
    HistogramOut,
    ImagesOut,
    LayerHealthOut,
    LayerHistogramsOut,
    MisclassifiedItem,
    MisclassifiedOut,
    ProgressMessage,
    StateMessage,
)
from server.store import Store

log = logging.getLogger("nnplay.runs")

MAX_FILTERS = 64  # first-layer units (or filter channels) drawn as images


@dataclass
class RunRecorder:
    run_id: str
    epochs: int
    store: Store
    fanout: LocalFanout
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
        message.ended_at = time.time()
        self.fanout.publish(self.run_id, "epoch", message.encode())
        if self.checkpoint is not None and self.checkpoint_budget > 0:
            payload = self.checkpoint(event.epoch)
            self._journal(
                "checkpoint", lambda j: j.add_checkpoint(self.run_id, event.epoch, payload, self.checkpoint_budget)
            )


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


def _grey(images: np.ndarray) -> str:
    """Signed weights as uint8 images, each scaled to its own largest magnitude: mid-grey is zero."""
    flat = images.reshape(images.shape[0], -1)
    scale = np.abs(flat).max(axis=1, keepdims=True)
    scale[scale == 0] = 1
    grey = np.nan_to_num(flat / scale * 127.5 + 127.5).clip(0, 255).astype(np.uint8)
    return base64.b64encode(grey.tobytes()).decode()


def filter_images(model: Model) -> ImagesOut:
    """What the first layer looks for: a dense layer's units as input-sized images (when the input is an
    image), or a conv layer's kernels, one image per (filter, input channel)."""
    first = model.owners.get(min(model.owners)) if model.owners else None
    shape = model.spec.input_shape
    if isinstance(first, Dense) and len(shape) == 3 and shape[2] == 1:
        w = first.params["W"][:, :MAX_FILTERS].T  # (units, H*W)
        return ImagesOut(count=int(w.shape[0]), size=shape[0], data=_grey(w))
    if first is not None and first.params.get("W") is not None and first.params["W"].ndim == 4:
        k = first.params["W"].shape[0]
        kernels = np.moveaxis(first.params["W"], (2, 3), (1, 0)).reshape(-1, k, k)[:MAX_FILTERS]  # (F*C, k, k)
        return ImagesOut(count=int(kernels.shape[0]), size=int(k), data=_grey(kernels))
    return ImagesOut(count=0, size=0, data="")


def scaled_maps(maps: np.ndarray) -> ImagesOut:
    """(H, W, C) activations -> C greyscale images, each scaled to its own range (0 black for ReLU outputs,
    mid-grey for zero when the maps are signed)."""
    h, _, c = maps.shape
    per_map = np.moveaxis(maps, 2, 0).reshape(c, -1).astype(np.float64)
    if per_map.min(initial=0) >= 0:
        top = per_map.max(axis=1, keepdims=True)
        top[top == 0] = 1
        grey = (per_map / top * 255).clip(0, 255).astype(np.uint8)
        return ImagesOut(count=c, size=h, data=base64.b64encode(grey.tobytes()).decode())
    return ImagesOut(count=c, size=h, data=_grey(per_map))


def feature_maps(model: Model, image_row: np.ndarray) -> list[FeatureMapsOut]:
    """Every image layer's output for one input, as pictures: what the conv layers see in a digit."""
    acts = model.activations(image_row.reshape(1, -1))
    return [
        FeatureMapsOut(layer=i, type=layer.type, maps=scaled_maps(acts[i][0]))
        for i, layer in enumerate(model.spec.layers)
        if layer.type in ("conv2d", "maxpool2d", "avgpool2d") and acts[i].ndim == 4
    ]


def conv_views(model: Model, image_row: np.ndarray) -> list[ConvView]:
    maps = {m.layer: m.maps for m in feature_maps(model, image_row)}
    views = []
    for i, layer in model.owners.items():
        w = layer.params.get("W")
        if w is None or w.ndim != 4:
            continue
        k, _, c, f = w.shape
        kernels = np.moveaxis(w, (2, 3), (1, 0)).reshape(f * c, k, k)  # filter-major, then input channel
        views.append(
            ConvView(
                layer=i, channels=int(c), filters=ImagesOut(count=f * c, size=k, data=_grey(kernels)), maps=maps[i]
            )
        )
    return views


SAMPLE_INDEX = 0  # the fixed test digit whose feature maps are drawn every epoch (MNIST's first: a 7)


def extras_of(model: Model, event: EpochEnd, data: Dataset) -> Extras:
    wrong = event.misclassified
    shape = model.spec.input_shape
    if wrong and len(shape) == 3 and shape[2] == 1:
        rows = data.x_test[[i for i, _, _ in wrong]]
        images = np.rint(rows.reshape(len(wrong), -1) * 255).clip(0, 255).astype(np.uint8)
    else:
        images = np.zeros((0,), np.uint8)
    has_conv = any(layer.type == "conv2d" for layer in model.spec.layers)
    sample = data.x_test[SAMPLE_INDEX] if has_conv and len(data.x_test) else None
    predicted = int(model.probabilities(sample.reshape(1, -1)).argmax()) if sample is not None else 0
    return Extras(
        conv=conv_views(model, sample) if sample is not None else [],
        sample=MisclassifiedItem(index=SAMPLE_INDEX, label=int(data.y_test[SAMPLE_INDEX]), predicted=predicted)
        if sample is not None
        else None,
        filters=filter_images(model),
        misclassified=MisclassifiedOut(
            items=[MisclassifiedItem(index=i, label=label, predicted=pred) for i, label, pred in wrong],
            data=base64.b64encode(images.tobytes()).decode(),
        ),
    )
