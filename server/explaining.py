"""POST /api/predict with "explain": the engine's attributions, shaped as the answer's Explanation."""

from __future__ import annotations

import threading

import numpy as np

from engine.explain import integrated_gradients, occlusion, saliency
from engine.model import Model
from server.pictures import scaled_maps
from server.schemas import Explanation, LayerActivations, Ranked

SIDE = 28
# Attributions run the model's backward pass, which writes into its layers' caches: one explanation at a time
# per process (predictions without explain only run forward and need no lock).
_lock = threading.Lock()


def _grid(values: np.ndarray) -> list[list[float]]:
    grid: list[list[float]] = np.round(values.reshape(SIDE, SIDE), 5).tolist()
    return grid


def explain(model: Model, image: np.ndarray, probabilities: np.ndarray, target: int | None) -> Explanation:
    x: np.ndarray = image.reshape(-1).astype(model.dtype)
    digit = int(np.argmax(probabilities)) if target is None else target
    with _lock:
        sal = saliency(model, x, digit)
        ig, p_input, p_baseline = integrated_gradients(model, x, digit)
        occ = occlusion(model, x, digit, SIDE)
        acts = model.activations(x.reshape(1, -1))
    layers = []
    for index, layer in enumerate(model.spec.layers):
        out = acts[index][0]
        if out.ndim == 3:
            layers.append(LayerActivations(layer=index, type=layer.type, values=None, maps=scaled_maps(out)))
        else:
            values = np.round(out.astype(np.float64), 5).tolist()
            layers.append(LayerActivations(layer=index, type=layer.type, values=values, maps=None))
    order = np.argsort(probabilities)[::-1][:3]
    return Explanation(
        target=digit,
        saliency=_grid(sal),
        integrated_gradients=_grid(ig),
        occlusion=_grid(occ),
        p_input=p_input,
        p_baseline=p_baseline,
        activations=layers,
        top3=[Ranked(digit=int(d), probability=round(float(probabilities[d]), 6)) for d in order],
    )
