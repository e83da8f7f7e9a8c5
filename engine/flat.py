"""One flat buffer for all of a model's parameters and one for all their gradients, every layer's ``params`` and
``grads`` entries being views into them (PyTorch's foreach/fused idea in NumPy): an optimizer that finds its
(param, grad) pairs laid out this way updates them all with a few ufunc calls over one long array instead of a
dozen calls per parameter, which for a small network is most of the optimizer's time.

Weight tensors (ndim > 1, the ones L2 decays) come first in the buffer, 1-D parameters (biases, batchnorm's
gamma and beta) after them, so the decayed part is one prefix. Layers keep reading ``self.params["W"]`` on
every call; nothing else about them changes. Buffers (batchnorm's running statistics) are not trained and stay
where they are."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from engine.layers import Layer


@dataclass(frozen=True)
class Flat:
    params: np.ndarray  # 1-D, owns the memory every parameter views
    grads: np.ndarray  # 1-D, same layout
    decayed: int  # elements [0, decayed) are weight tensors (L2 applies), the rest 1-D parameters


def flatten(layers: Iterable[Layer]) -> Flat | None:
    """Move every layer's params and grads into one buffer each (values kept); None if there is nothing to move
    or the parameters do not share one dtype (then they stay as they are)."""
    entries = [(layer, name) for layer in layers for name in layer.params]
    if not entries or len({layer.params[name].dtype for layer, name in entries}) != 1:
        return None
    entries.sort(key=lambda e: e[0].params[e[1]].ndim <= 1)  # stable: weights first, each group in model order
    dtype = entries[0][0].params[entries[0][1]].dtype
    total = sum(layer.params[name].size for layer, name in entries)
    params, grads = np.empty(total, dtype), np.empty(total, dtype)
    offset, decayed = 0, None
    for layer, name in entries:
        p, g = layer.params[name], layer.grads[name]
        if p.ndim <= 1 and decayed is None:
            decayed = offset
        end = offset + p.size
        params[offset:end] = p.ravel()
        grads[offset:end] = g.ravel()
        layer.params[name] = params[offset:end].reshape(p.shape)
        layer.grads[name] = grads[offset:end].reshape(g.shape)
        offset = end
    return Flat(params, grads, total if decayed is None else decayed)


def _offset(view: np.ndarray, base: np.ndarray) -> int:
    return (view.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // base.itemsize


def find_flat(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> Flat | None:
    """The flat buffers behind (param, grad) pairs when the pairs are views covering exactly all of them, params
    and grads laid out alike, weights before 1-D parameters; otherwise None (the caller updates pair by pair)."""
    if not pairs:
        return None
    pbase, gbase = pairs[0][0].base, pairs[0][1].base
    if not (isinstance(pbase, np.ndarray) and isinstance(gbase, np.ndarray)):
        return None
    if pbase.ndim != 1 or gbase.shape != pbase.shape or gbase.dtype != pbase.dtype or pbase is gbase:
        return None
    if not (pbase.flags.c_contiguous and gbase.flags.c_contiguous and pbase.flags.writeable):
        return None
    spans = []
    for p, g in pairs:
        if p.base is not pbase or g.base is not gbase or not (p.flags.c_contiguous and g.flags.c_contiguous):
            return None
        offset = _offset(p, pbase)
        if offset != _offset(g, gbase) or p.shape != g.shape:
            return None
        spans.append((offset, p.size, p.ndim > 1))
    spans.sort()
    position, decayed = 0, None
    for offset, size, weight in spans:
        if offset != position or (weight and decayed is not None):
            return None  # a gap, an overlap, or a weight after a 1-D parameter
        if not weight and decayed is None:
            decayed = offset
        position += size
    if position != pbase.size:
        return None
    return Flat(pbase, gbase, position if decayed is None else decayed)
