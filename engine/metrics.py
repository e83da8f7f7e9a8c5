"""Metrics and the summaries a UI draws: accuracy, confusion matrix, fixed-bin histograms."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(predicted == labels)) if labels.size else 0.0


def confusion_matrix(predicted: np.ndarray, labels: np.ndarray, classes: int = 10) -> np.ndarray:
    """Rows are true classes, columns predictions."""
    flat = labels.astype(np.int64) * classes + predicted.astype(np.int64)
    return np.bincount(flat, minlength=classes * classes).reshape(classes, classes)


@dataclass(frozen=True)
class Histogram:
    edges: list[float]  # bins + 1 edges, ascending
    counts: list[int]  # values per bin

    @classmethod
    def of(cls, values: np.ndarray, bins: int = 30) -> Histogram:
        finite = values[np.isfinite(values)] if not np.isfinite(values).all() else values
        if finite.size == 0:
            return cls(edges=[0.0, 1.0], counts=[0])
        # float64: float32 values spanning more than ~3.4e38 would overflow the bin width computation
        counts, edges = np.histogram(finite.astype(np.float64), bins=bins)
        return cls(edges=edges.astype(float).tolist(), counts=counts.astype(int).tolist())
