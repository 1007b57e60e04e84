"""Ridge readouts whose penalty is picked by exact leave-one-out error, stored as plain dicts.

Why: criteria and multi-modal readouts are trained from a few to a few thousand labelled
examples supplied by users, so no single fixed penalty suits every request. With the SVD of the
centred, standardised features, the leave-one-out residual of every example for every penalty
is exact and cheap (r_i / (1 - h_ii)), so the choice costs one SVD.
"""

from __future__ import annotations

import numpy as np

RIDGE_GRID = tuple(10.0 ** k for k in range(-6, 4))


def fit_ridge_loo(X: np.ndarray, Y: np.ndarray, grid: tuple[float, ...] = RIDGE_GRID) -> dict:
    """Fit y = W x + b on X (n, d), Y (n, outputs) for the grid penalty with the lowest
    leave-one-out RMSE. Features are standardised for the fit and the scaling folded back into
    W and b. Returns a readout dict (see `predict`) with "ridge" and "loo_rmse"."""
    X, Y = np.asarray(X, float), np.asarray(Y, float)
    Y = Y[:, None] if Y.ndim == 1 else Y
    n = len(X)
    if n < 2:
        raise ValueError(f"examples: a readout needs at least 2 labelled examples, got {n}")
    x_mean, y_mean = X.mean(axis=0), Y.mean(axis=0)
    x_scale = X.std(axis=0)
    x_scale[x_scale < 1e-12] = 1.0  # constant features: left as zero after centring
    Z = (X - x_mean) / x_scale
    U, s, Vt = np.linalg.svd(Z, full_matrices=False)
    Yc = Y - y_mean
    UtY = U.T @ Yc
    U2 = U ** 2
    best = None
    for ridge in grid:
        shrink = s ** 2 / (s ** 2 + ridge)
        fitted = U @ (shrink[:, None] * UtY)
        hat = U2 @ shrink + 1.0 / n  # + 1/n: the intercept is fitted too
        loo = (Yc - fitted) / np.maximum(1.0 - hat, 1e-9)[:, None]
        rmse = float(np.sqrt(np.mean(loo ** 2)))
        if best is None or rmse < best[0] - 1e-15:
            best = (rmse, ridge, shrink)
    rmse, ridge, shrink = best
    coef = Vt.T @ ((shrink / np.where(s > 0, s, 1.0))[:, None] * UtY)  # (d, outputs) in z units
    W = np.ascontiguousarray((coef / x_scale[:, None]).T)  # C order: same bits after the codec
    b = y_mean - W @ x_mean
    return {"W": W, "b": b, "ridge": float(ridge), "loo_rmse": rmse}


def predict(readout: dict, X: np.ndarray) -> np.ndarray:
    """Outputs (n, outputs) of a readout dict for features X (n, d)."""
    W = np.asarray(readout["W"], float)
    X = np.asarray(X, float)
    if X.shape[-1] != W.shape[1]:
        raise ValueError(f"features must have {W.shape[1]} columns, got {X.shape[-1]}")
    return X @ W.T + np.asarray(readout["b"], float)
