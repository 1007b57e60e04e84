"""Trained readouts: closed-form ridge regression, ridge with its penalty picked by exact
leave-one-out error, and recursive least squares (online).

The one ridge solver of the project: `ridge_solve` (fixed penalty; RidgeReadout and the
reasoning processor) and `fit_ridge_loo` (penalty from a grid; the cognitive criteria and
multi-modal readouts, stored as plain dicts).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from echo_ray.checks import as_float_array, positive


def _as_2d(name: str, value, dim: int | None = None) -> np.ndarray:
    arr = as_float_array(name, value, (1, 2), None)
    arr = arr[:, None] if arr.ndim == 1 else arr
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name} must have {dim} features on its last axis, got shape {arr.shape}")
    return arr


def ridge_solve(X: np.ndarray, Y: np.ndarray, ridge: float,
                fit_bias: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients (features, *outputs) and intercept of Y ~ X coef + b with penalty `ridge`.

    The unpenalised bias is solved by centring, which also conditions X^T X better; a matrix
    that is numerically not positive definite (tiny penalty) falls back to least squares."""
    x_mean = X.mean(axis=0) if fit_bias else np.zeros(X.shape[1])
    y_mean = Y.mean(axis=0) if fit_bias else np.zeros(Y.shape[1:])
    Xc = X - x_mean
    A = Xc.T @ Xc + ridge * np.eye(X.shape[1])
    B = Xc.T @ (Y - y_mean)
    try:
        sol = linalg.solve(A, B, assume_a="pos")
    except (linalg.LinAlgError, ValueError):
        sol = linalg.lstsq(A, B)[0]
    return sol, y_mean - x_mean @ sol


RIDGE_GRID = tuple(10.0 ** k for k in range(-6, 4))


def fit_ridge_loo(X: np.ndarray, Y: np.ndarray, grid: tuple[float, ...] = RIDGE_GRID) -> dict:
    """Fit y = W x + b on X (n, d), Y (n, outputs) for the grid penalty with the lowest
    leave-one-out RMSE. Returns a readout dict (see `predict`) with "ridge" and "loo_rmse".

    Why: criteria and multi-modal readouts are trained from a few to a few thousand labelled
    examples supplied by users, so no single fixed penalty suits every request. With the SVD
    of the centred, standardised features, the leave-one-out residual of every example for
    every penalty is exact and cheap (r_i / (1 - h_ii)), so the choice costs one SVD. Features
    are standardised for the fit and the scaling folded back into W and b."""
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
    assert best is not None, "grid: at least one penalty"
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


class RidgeReadout:
    """y = W x + b fitted in closed form on centred data: W = Yc^T Xc (Xc^T Xc + ridge I)^-1,
    b = mean(y) - W mean(x) (the bias is not penalised)."""

    def __init__(self, ridge: float = 1e-6, fit_bias: bool = True, warmup: int = 0):
        self.ridge = positive("ridge", ridge, strict=False)
        if not isinstance(warmup, (int, np.integer)) or warmup < 0:
            raise ValueError(f"warmup must be a non-negative integer, got {warmup!r}")
        self.fit_bias, self.warmup = fit_bias, int(warmup)
        self.W: np.ndarray | None = None
        self.b: np.ndarray | None = None

    def fit(self, X, Y) -> RidgeReadout:
        """X (T, features) states, Y (T, outputs) targets; or lists of such sequences, each of
        which loses its first `warmup` steps."""
        Xs = X if isinstance(X, (list, tuple)) else [X]
        Ys = Y if isinstance(Y, (list, tuple)) else [Y]
        if len(Xs) != len(Ys):
            raise ValueError(f"X and Y must hold as many sequences, got {len(Xs)} and {len(Ys)}")
        X_parts, Y_parts = [], []
        for i, (x, y) in enumerate(zip(Xs, Ys)):
            x, y = _as_2d(f"X[{i}]", x), _as_2d(f"Y[{i}]", y)
            if len(x) != len(y):
                raise ValueError(f"X[{i}] and Y[{i}] must have the same length, got {len(x)} and {len(y)}")
            if len(x) <= self.warmup:
                raise ValueError(f"X[{i}] has {len(x)} steps, not more than warmup={self.warmup}")
            X_parts.append(x[self.warmup:])
            Y_parts.append(y[self.warmup:])
        sol, self.b = ridge_solve(np.concatenate(X_parts), np.concatenate(Y_parts), self.ridge,
                                  self.fit_bias)
        self.W = sol.T
        return self

    @property
    def fitted(self) -> bool:
        return self.W is not None

    def predict(self, X) -> np.ndarray:
        if self.W is None:
            raise ValueError("readout is not fitted: call fit(X, Y) first")
        X = _as_2d("X", X, self.W.shape[1])
        return X @ self.W.T + self.b

    def to_dict(self) -> dict:
        return {"ridge": self.ridge, "fit_bias": self.fit_bias, "warmup": self.warmup,
                "W": self.W, "b": self.b}

    @classmethod
    def from_dict(cls, d: dict) -> RidgeReadout:
        r = cls(d["ridge"], d["fit_bias"], d["warmup"])
        r.W = None if d["W"] is None else np.asarray(d["W"], dtype=float)
        r.b = None if d["b"] is None else np.asarray(d["b"], dtype=float)
        return r


class RLSReadout:
    """Recursive least squares: updates W one sample at a time (streaming), with forgetting."""

    def __init__(self, features: int, outputs: int = 1, forgetting: float = 1.0,
                 delta: float = 1.0, fit_bias: bool = True):
        if forgetting <= 0 or forgetting > 1:
            raise ValueError(f"forgetting must be in (0, 1], got {forgetting}")
        positive("delta", delta)
        n = features + int(fit_bias)
        self.features, self.outputs, self.fit_bias = features, outputs, fit_bias
        self.lam = forgetting
        self.P = np.eye(n) / delta
        self.Wb = np.zeros((outputs, n))

    def _aug(self, x: np.ndarray) -> np.ndarray:
        return np.append(x, 1.0) if self.fit_bias else x

    def partial_fit(self, X, Y) -> RLSReadout:
        X, Y = _as_2d("X", X, self.features), _as_2d("Y", Y, self.outputs)
        if len(X) != len(Y):
            raise ValueError(f"X and Y must have the same length, got {len(X)} and {len(Y)}")
        for x, y in zip(X, Y):
            z = self._aug(x)
            Pz = self.P @ z
            k = Pz / (self.lam + z @ Pz)
            err = y - self.Wb @ z
            self.Wb += np.outer(err, k)
            self.P = (self.P - np.outer(k, Pz)) / self.lam
        return self

    def predict(self, X) -> np.ndarray:
        X = _as_2d("X", X, self.features)
        if self.fit_bias:
            return X @ self.Wb[:, :-1].T + self.Wb[:, -1]
        return X @ self.Wb.T
