"""Optimizers. The base class validates hyperparameters and owns ``step()``; each optimizer only says how one
parameter moves given its gradient and its own state. L2 regularisation (weight decay) is added to the
gradients of weight matrices here, so every optimizer gets it the same way; so is L1 (l1 * sign(w))."""

from __future__ import annotations

import numpy as np

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
        self.params = params
        self.lr = lr
        self.l2 = l2
        self.l1 = l1  # may be changed between steps (a live playground)
        self.t = 0  # steps taken

    def step(self) -> None:
        self.t += 1
        for i, (p, g) in enumerate(self.params):
            if self.l2 and p.ndim > 1:  # decay weights, not biases
                g = g + self.l2 * p
            if self.l1 and p.ndim > 1:  # the subgradient of l1 * |w|: sign(0) = 0
                g = g + self.l1 * np.sign(p)
            self.update(i, p, g)

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
        self.velocity = [np.zeros_like(p) for p, _ in params]

    def update(self, i: int, p: np.ndarray, g: np.ndarray) -> None:
        if self.momentum == 0:
            p -= self.lr * g
            return
        v = self.velocity[i]
        v *= self.momentum
        v += g
        p -= self.lr * (g + self.momentum * v) if self.nesterov else self.lr * v


class Adam(Optimizer):
    """Kingma & Ba (2015) with bias correction folded into the step size."""

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
        self.m = [np.zeros_like(p) for p, _ in params]
        self.v = [np.zeros_like(p) for p, _ in params]
        # One scratch buffer per parameter: every operation below writes in place, because allocating
        # fresh temporaries each step costs more than the arithmetic for arrays this size.
        self.scratch = [np.empty_like(p) for p, _ in params]

    def update(self, i: int, p: np.ndarray, g: np.ndarray) -> None:
        m, v, tmp = self.m[i], self.v[i], self.scratch[i]
        np.subtract(g, m, out=tmp)  # m += (1 - beta1) (g - m)  ==  beta1 m + (1 - beta1) g
        tmp *= 1 - self.beta1
        m += tmp
        np.multiply(g, g, out=tmp)  # v += (1 - beta2) (g^2 - v)
        tmp -= v
        tmp *= 1 - self.beta2
        v += tmp
        correction2 = np.sqrt(1 - self.beta2**self.t)
        step = self.lr * correction2 / (1 - self.beta1**self.t)
        np.sqrt(v, out=tmp)
        tmp += self.eps * correction2  # eps applied to the bias-corrected sqrt(v), as in the paper
        np.divide(m, tmp, out=tmp)
        tmp *= step
        p -= tmp


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
