"""Why a network gave its answer: attributions of one class's probability to the input pixels, computed with
the network's own backward pass (no autograd library; the same layers' backward that training uses).

- saliency: |d p / d x|, how much each pixel's change would move the probability;
- integrated gradients (Sundararajan et al., 2017): (x - baseline) times the gradient averaged along the
  straight path from the baseline to x (midpoint rule); its sum is p(x) - p(baseline) up to the quadrature error;
- occlusion: the drop in the probability when a grey patch covers each place.

Each works on a batch, so a whole path or every patch position is one forward (and backward) pass. Backward
writes into the layers' cached activations and gradient buffers: callers share a model between threads only
behind a lock.
"""

from __future__ import annotations

import numpy as np

from engine.activations import stable_softmax
from engine.model import Model


def probability_gradient(model: Model, x: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
    """For rows x (n, features): p_target(x) of the distribution ``Model.probabilities`` gives, and its gradient
    with respect to x, (n, features)."""
    x = np.asarray(x, dtype=model.dtype)
    first = model.layers[0]
    saved = getattr(first, "needs_input_grad", True)
    first.needs_input_grad = True  # type: ignore[attr-defined]  # the data's gradient is the point here
    try:
        logits, out = model.forward(x)
        if model.spec.output.activation == "sigmoid":
            # q = s / sum(s): dq_t/dz_j = (delta_tj s_t' S - s_t s_j') / S^2 with s' = s (1 - s), S = sum(s)
            total = out.sum(axis=1, keepdims=True)
            slope = out * (1 - out)
            p = out[:, target] / total[:, 0]
            grad_z = -out[:, [target]] * slope / total**2
            grad_z[:, target] += slope[:, target] / total[:, 0]
        else:  # softmax outputs, or softmax of linear logits: dp_t/dz = p_t (e_t - p)
            probs = out if model.spec.output.activation == "softmax" else stable_softmax(logits)
            p = probs[:, target]
            grad_z = -probs * p[:, None]
            grad_z[:, target] += p
        grad = grad_z.astype(model.dtype)
        for layer in reversed(model.layers[:-1]):
            grad = layer.backward(grad)
    finally:
        first.needs_input_grad = saved  # type: ignore[attr-defined]
    return p.astype(np.float64), grad.reshape(x.shape[0], -1).astype(np.float64)


def saliency(model: Model, x: np.ndarray, target: int) -> np.ndarray:
    """|d p / d x| for one input row, scaled so the largest is 1."""
    _, grad = probability_gradient(model, x.reshape(1, -1), target)
    magnitude = np.abs(grad[0])
    top = magnitude.max()
    return magnitude / top if top > 0 else magnitude


def integrated_gradients(
    model: Model, x: np.ndarray, target: int, steps: int = 32, baseline: np.ndarray | None = None
) -> tuple[np.ndarray, float, float]:
    """Signed attributions for one input row, and p(x), p(baseline) (their difference is what they sum to)."""
    x = x.reshape(-1).astype(np.float64)
    base = np.zeros_like(x) if baseline is None else baseline.reshape(-1).astype(np.float64)
    alphas = (np.arange(steps) + 0.5) / steps  # midpoints: second-order accurate
    path = base[None, :] + alphas[:, None] * (x - base)[None, :]
    _, grads = probability_gradient(model, path, target)
    ends, _ = probability_gradient(model, np.stack([x, base]), target)
    return (x - base) * grads.mean(axis=0), float(ends[0]), float(ends[1])


def occlusion(
    model: Model, x: np.ndarray, target: int, side: int, patch: int = 4, fill: float = 0.5, stride: int = 2
) -> np.ndarray:
    """side x side map: for each pixel, the mean drop of p_target over the patch positions that cover it.
    Patches every `stride` pixels (the last one flush with the edge), so every pixel is covered."""
    image = x.reshape(side, side).astype(np.float64)
    starts = np.unique(np.append(np.arange(0, side - patch + 1, stride), side - patch))
    tops, lefts = np.meshgrid(starts, starts, indexing="ij")
    tops, lefts = tops.ravel(), lefts.ravel()
    covered = np.zeros((tops.size, side, side), bool)
    offsets = np.arange(patch)
    rows = (tops[:, None, None] + offsets[None, :, None]).repeat(patch, axis=2)
    cols = (lefts[:, None, None] + offsets[None, None, :]).repeat(patch, axis=1)
    covered[np.arange(tops.size)[:, None, None], rows, cols] = True
    batch = np.where(covered, fill, image[None])  # every patch position at once
    probs = model.probabilities(np.concatenate([image.reshape(1, -1), batch.reshape(tops.size, -1)]))[:, target]
    drops = probs[0] - probs[1:]
    total = np.einsum("p,pij->ij", drops, covered.astype(np.float64))
    return total / covered.sum(axis=0)
