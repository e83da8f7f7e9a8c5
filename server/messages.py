"""Engine events -> JSON messages for the WebSocket and the history. Strict JSON: non-finite floats become
null (the run itself is marked diverged by the engine), encoded once and sent as text to every client."""

from __future__ import annotations

import base64
import json
import math
from dataclasses import asdict
from typing import Any

import numpy as np

from engine.model import Model
from engine.trainer import EpochEnd

MAX_FILTERS = 64  # first-layer units drawn as 28x28 images


def finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(finite(message), allow_nan=False, separators=(",", ":"))


def epoch_message(run_id: str, event: EpochEnd) -> dict[str, Any]:
    return {
        "type": "epoch",
        "run_id": run_id,
        "epoch": event.epoch,
        "epochs": event.epochs,
        "train_loss": event.train_loss,
        "train_accuracy": event.train_accuracy,
        "test_loss": event.test_loss,
        "test_accuracy": event.test_accuracy,
        "seconds": event.seconds,
        "learning_rate": event.learning_rate,
        "histograms": [
            {
                "layer": h.layer,
                "shape": list(h.shape),
                "weights": asdict(h.weights),
                "biases": asdict(h.biases),
                "gradients": asdict(h.gradients),
            }
            for h in event.histograms
        ],
        "confusion": event.confusion,
    }


def extras_message(model: Model, event: EpochEnd, test_images: np.ndarray) -> dict[str, Any]:
    """The bulky per-epoch views, kept only for the latest epoch: what each first-layer unit looks for and
    the misclassified test digits. Images travel as base64 of uint8 28x28 rows."""
    w = model.dense_layers[0].params["W"][:, :MAX_FILTERS].T  # (units, 784)
    scale = np.abs(w).max(axis=1, keepdims=True)
    scale[scale == 0] = 1
    grey = np.nan_to_num(w / scale * 127.5 + 127.5).clip(0, 255).astype(np.uint8)  # mid-grey is zero weight
    wrong = event.misclassified
    images = test_images[[i for i, _, _ in wrong]] if wrong else np.zeros((0, 28, 28), np.uint8)
    return {
        "filters": {"count": int(grey.shape[0]), "size": 28, "data": base64.b64encode(grey.tobytes()).decode()},
        "misclassified": {
            "items": [{"index": i, "label": label, "predicted": pred} for i, label, pred in wrong],
            "data": base64.b64encode(np.ascontiguousarray(images, np.uint8).tobytes()).decode(),
        },
    }
