"""Optimizers against hand-computed steps, and schedules against their formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.optimizers import SGD, Adam, make_optimizer
from engine.schedules import learning_rate


def quadratic_run(opt_name: str, steps: int, **kw: float) -> list[float]:
    """Minimise f(p) = 0.5 * p^2 (gradient p) starting at p = 1; return p after each step."""
    p, g = np.array([1.0]), np.zeros(1)
    opt = make_optimizer(opt_name, [(p, g)], **kw)  # type: ignore[arg-type]
    out = []
    for _ in range(steps):
        g[...] = p
        opt.step()
        out.append(float(p[0]))
    return out


def test_sgd_steps_by_hand() -> None:
    # p <- p - 0.1 p  ==  0.9^k
    assert quadratic_run("sgd", 3, lr=0.1) == pytest.approx([0.9, 0.81, 0.729], abs=1e-12)


def test_momentum_steps_by_hand() -> None:
    # v1 = 1, p1 = 0.9; v2 = 0.5*1 + 0.9 = 1.4, p2 = 0.76; v3 = 0.7 + 0.76 = 1.46, p3 = 0.614
    assert quadratic_run("momentum", 3, lr=0.1, momentum=0.5) == pytest.approx([0.9, 0.76, 0.614], abs=1e-12)


def test_nesterov_steps_by_hand() -> None:
    # v1 = 1, p1 = 1 - 0.1 (1 + 0.5) = 0.85; g = 0.85, v2 = 0.5 + 0.85 = 1.35, p2 = 0.85 - 0.1 (0.85 + 0.675)
    assert quadratic_run("nesterov", 2, lr=0.1, momentum=0.5) == pytest.approx([0.85, 0.6975], abs=1e-12)


def test_adam_matches_reference_formula_over_several_steps() -> None:
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    p, m, v, expected = 1.0, 0.0, 0.0, []
    for t in range(1, 6):
        g = p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        p -= lr * m_hat / (math.sqrt(v_hat) + eps)
        expected.append(p)
    assert quadratic_run("adam", 5, lr=lr) == pytest.approx(expected, rel=1e-10)
    # Adam's first step has size lr whatever the gradient's scale
    assert expected[0] == pytest.approx(1 - lr, rel=1e-6)


def test_l2_decays_weights_not_biases() -> None:
    w, gw = np.ones((2, 2)), np.zeros((2, 2))
    b, gb = np.ones(2), np.zeros(2)
    SGD([(w, gw), (b, gb)], lr=0.1, l2=0.5).step()
    np.testing.assert_allclose(w, 1 - 0.1 * 0.5)
    np.testing.assert_allclose(b, 1.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"lr": float("nan")}, "learning rate"),
        ({"lr": -1.0}, "learning rate"),
        ({"lr": 0.1, "l2": -1.0}, "l2"),
        ({"lr": 0.1, "momentum": 1.0}, "momentum"),
    ],
)
def test_invalid_hyperparameters_are_refused(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SGD([(np.zeros(1), np.zeros(1))], **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="beta1"):
        Adam([(np.zeros(1), np.zeros(1))], beta1=1.0)


def test_schedules() -> None:
    assert learning_rate("constant", 0.1, 7.3, 10) == 0.1
    assert learning_rate("step", 0.1, 4.9, 10, step_size=5, gamma=0.5) == 0.1
    assert learning_rate("step", 0.1, 5.0, 10, step_size=5, gamma=0.5) == pytest.approx(0.05)
    assert learning_rate("step", 0.1, 10.0, 10, step_size=5, gamma=0.5) == pytest.approx(0.025)
    assert learning_rate("cosine", 0.1, 0.0, 10) == pytest.approx(0.1)
    assert learning_rate("cosine", 0.1, 5.0, 10) == pytest.approx(0.05)
    assert learning_rate("cosine", 0.1, 10.0, 10) == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError, match="unknown schedule"):
        learning_rate("exponential", 0.1, 0, 10)
