"""Optimizers. The base class validates hyperparameters and owns ``step()``; each optimizer only says how one
array of parameters moves given its gradient and its own state. L2 regularisation (weight decay) is added to the
gradients of weight tensors (not biases) here, so every optimizer gets it the same way.

When the (param, grad) pairs are views covering one flat buffer each (engine/flat.py: every ``Model`` lays its
parameters out so), the update runs once over the whole buffer, a few ufunc calls per step whatever the number
of layers; any other list of pairs is updated pair by pair, with the same arithmetic."""

from __future__ import annotations

import math

import numpy as np

from engine.flat import find_flat

OPTIMIZERS = ("sgd", "momentum", "nesterov", "adam")


class Optimizer:
    def __init__(
        self, params: list[tuple[np.ndarray, np.ndarray]], lr: float, l2: float = 0.0, l1: float = 0.0
    ) -> None:
        if not (np.isfinite(lr) and lr > 0):
            raise ValueError(f"learning rate must be a positive finite number, got {lr}")
        for name, value in (("l2", l2), ("l1", l1)):
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a non-negative finite number, got {value}")
        self.params = params  # the (param, grad) contract, as given
        self.lr = lr
        self.l2 = l2
        self.l1 = l1  # may change between steps, like l2 (a live playground)
        self.t = 0  # steps taken
        flat = find_flat(params)
        # what update() runs on: the two flat buffers, or each pair; and how many leading elements L2 decays
        self.groups = [(flat.params, flat.grads)] if flat else list(params)
        self.decayed = [flat.decayed] if flat else [p.size if p.ndim > 1 else 0 for p, _ in params]
        self.fused = flat is not None
        self._decay_buffers: list[np.ndarray | None] = [None] * len(self.groups)

    def step(self) -> None:
        self.t += 1
        for i, (p, g) in enumerate(self.groups):
            if (self.l2 or self.l1) and self.decayed[i]:
                g = self._with_decay(i, p, g)
            self.update(i, p, g)

    def _with_decay(self, i: int, p: np.ndarray, g: np.ndarray) -> np.ndarray:
        """g + l2 p + l1 sign(p) on the weights' part, g elsewhere, in a buffer of its own (the layer's gradient
        stays as is); sign(0) = 0 is the subgradient of l1 |w| at 0."""
        buf = self._decay_buffers[i]
        if buf is None:
            buf = self._decay_buffers[i] = np.empty_like(g)
        n = self.decayed[i]
        flat_p, flat_g, flat_buf = p.reshape(-1), g.reshape(-1), buf.reshape(-1)
        np.multiply(flat_p[:n], self.l2, out=flat_buf[:n])
        flat_buf[:n] += flat_g[:n]
        if self.l1:
            flat_buf[:n] += self.l1 * np.sign(flat_p[:n])
        flat_buf[n:] = flat_g[n:]
        return buf

    def update(self, i: int, p: np.ndarray, g: np.ndarray) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Plain SGD, or with heavy-ball momentum (v = mu v + g; p -= lr v), or Nesterov (p -= lr (g + mu v))."""

    def __init__(
        self,
        params: list[tuple[np.ndarray, np.ndarray]],
        lr: float,
        momentum: float = 0.0,
        nesterov: bool = False,
        l2: float = 0.0,
        l1: float = 0.0,
    ) -> None:
        super().__init__(params, lr, l2, l1)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if nesterov and momentum == 0:
            raise ValueError("nesterov needs a momentum > 0")
        self.momentum, self.nesterov = momentum, nesterov
        self.velocity = [np.zeros_like(p) for p, _ in self.groups]
        self.scratch = [np.empty_like(p) for p, _ in self.groups]

    def update(self, i: int, p: np.ndarray, g: np.ndarray) -> None:
        tmp = self.scratch[i]
        if self.momentum == 0:
            np.multiply(g, self.lr, out=tmp)
            p -= tmp
            return
        v = self.velocity[i]
        v *= self.momentum
        v += g
        if self.nesterov:  # p -= lr (g + mu v)
            np.multiply(v, self.momentum, out=tmp)
            tmp += g
            tmp *= self.lr
        else:
            np.multiply(v, self.lr, out=tmp)
        p -= tmp


FLUSH_EVERY = 64  # steps between flushes of denormal Adam moments
TINY = 1e-30  # float32's normal range ends at 1.2e-38


class Adam(Optimizer):
    """Kingma & Ba (2015), eps applied to the bias-corrected sqrt(v) as in the paper.

    The moments are kept unnormalised, M = m / (1 - beta1) and V = v / (1 - beta2), so each moves with two
    in-place operations (M = beta1 M + g); the constant factors go into the step size and eps, which are
    scalars. Ten passes over the parameters per step, every one in place in preallocated buffers."""

    def __init__(
        self,
        params: list[tuple[np.ndarray, np.ndarray]],
        lr: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        l2: float = 0.0,
        l1: float = 0.0,
    ) -> None:
        super().__init__(params, lr, l2, l1)
        for name, beta in (("beta1", beta1), ("beta2", beta2)):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {beta}")
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps}")
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.m = [np.zeros_like(p) for p, _ in self.groups]  # M = m / (1 - beta1)
        self.v = [np.zeros_like(p) for p, _ in self.groups]  # V = v / (1 - beta2)
        self.scratch = [np.empty_like(p) for p, _ in self.groups]

    def update(self, i: int, p: np.ndarray, g: np.ndarray) -> None:
        m, v, tmp = self.m[i], self.v[i], self.scratch[i]
        b1, b2, t = self.beta1, self.beta2, self.t
        # sqrt(v_hat) = c2 sqrt(V) with c2 = sqrt((1 - b2) / (1 - b2^t)); m_hat = (1 - b1) M / (1 - b1^t)
        c2 = math.sqrt((1 - b2) / (1 - b2**t))  # Python floats: NumPy scalars would upcast float32
        step = float(self.lr) * (1 - b1) / (1 - b1**t) / c2
        m *= b1
        m += g
        np.multiply(g, g, out=tmp)
        v *= b2
        v += tmp
        np.sqrt(v, out=tmp)
        tmp += self.eps / c2
        np.divide(m, tmp, out=tmp)
        tmp *= step
        p -= tmp
        if t % FLUSH_EVERY == 0:
            # A parameter whose gradient stays 0 (a dead unit) sees M shrink by beta1 every step into denormal
            # floats, and a tiny gradient's square is denormal at once; every later pass over a denormal is
            # many times slower (an Adam step went from 0.5 to 1.5 ms by a CNN's fourth epoch). Flushed to 0:
            # their contribution to a step is below 1e-20 of the learning rate.
            for moment in (m, v):
                np.copyto(moment, 0, where=np.abs(moment) < TINY)


def make_optimizer(
    name: str,
    params: list[tuple[np.ndarray, np.ndarray]],
    *,
    lr: float,
    momentum: float = 0.9,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    l2: float = 0.0,
    l1: float = 0.0,
) -> Optimizer:
    if name == "sgd":
        return SGD(params, lr, l2=l2, l1=l1)
    if name == "momentum":
        return SGD(params, lr, momentum=momentum, l2=l2, l1=l1)
    if name == "nesterov":
        return SGD(params, lr, momentum=momentum, nesterov=True, l2=l2, l1=l1)
    if name == "adam":
        return Adam(params, lr, beta1, beta2, eps, l2=l2, l1=l1)
    raise ValueError(f"unknown optimizer {name!r}; choose one of {list(OPTIMIZERS)}")
