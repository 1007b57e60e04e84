"""Standard reservoir-computing tasks (generated here, nothing downloaded) and their score."""

from __future__ import annotations

import numpy as np


def mackey_glass(n: int, tau: int = 17, a: float = 0.2, b: float = 0.1, p: float = 10.0,
                 x0: float = 1.2, h: float = 1.0, subsample: int = 1) -> np.ndarray:
    """Mackey-Glass series dx/dt = a x(t-tau)/(1+x(t-tau)^p) - b x(t), integrated with RK4 at
    step h (delayed term linearly interpolated), one value per `subsample` steps. Shape (n,)."""
    lag = int(round(tau / h))
    total = n * subsample + lag + 1
    x = np.empty(total)
    x[: lag + 1] = x0  # constant history
    f = lambda xt, xd: a * xd / (1 + xd**p) - b * xt  # noqa: E731
    for t in range(lag, total - 1):
        xd, xd1 = x[t - lag], x[t - lag + 1]
        xm = 0.5 * (xd + xd1)
        k1 = f(x[t], xd)
        k2 = f(x[t] + 0.5 * h * k1, xm)
        k3 = f(x[t] + 0.5 * h * k2, xm)
        k4 = f(x[t] + h * k3, xd1)
        x[t + 1] = x[t] + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x[lag + 1:][::subsample][:n]


def scale_to_unit(x: np.ndarray) -> np.ndarray:
    """Min-max scale to [-1, 1]."""
    lo, hi = np.min(x), np.max(x)
    return 2 * (x - lo) / (hi - lo) - 1


def narma10(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Canonical NARMA10: y[t+1] = 0.3 y[t] + 0.05 y[t] sum_{i<10} y[t-i] + 1.5 u[t-9] u[t] + 0.1,
    u ~ U[0, 0.5]. Returns (u, y), each shape (n,)."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(0, 0.5, n)
    y = np.zeros(n)
    for t in range(9, n - 1):
        y[t + 1] = (0.3 * y[t] + 0.05 * y[t] * np.sum(y[t - 9: t + 1])
                    + 1.5 * u[t - 9] * u[t] + 0.1)
    return u, y


def nrmse(y_true, y_pred) -> float:
    """Root mean squared error divided by the standard deviation of the target."""
    y_true, y_pred = np.asarray(y_true, float).ravel(), np.asarray(y_pred, float).ravel()
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)) / np.std(y_true))
