"""The pictures of a network that the page draws: what the first layer looks for, each conv layer's kernels and
feature maps (of a fixed test digit while training, of the drawing at predict time), the misclassified test
digits. Images travel as base64 of uint8 rows."""

from __future__ import annotations

import base64

import numpy as np

from engine.layers import Dense
from engine.model import Model
from engine.trainer import Dataset, EpochEnd
from server.messages import ConvView, Extras, FeatureMapsOut, ImagesOut, MisclassifiedItem, MisclassifiedOut

MAX_FILTERS = 64  # first-layer units (or filter channels) drawn as images


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
