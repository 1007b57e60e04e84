"""Trained readouts: closed-form ridge regression and recursive least squares (online)."""

from __future__ import annotations

import numpy as np
from scipy import linalg

from .validation import as_float_array, positive


def _as_2d(name: str, value, dim: int | None = None) -> np.ndarray:
    arr = as_float_array(name, value, (1, 2), None)
    arr = arr[:, None] if arr.ndim == 1 else arr
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name} must have {dim} features on its last axis, got shape {arr.shape}")
    return arr


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
        Xa, Ya = np.concatenate(X_parts), np.concatenate(Y_parts)
        # The unpenalised bias is solved by centring, which also conditions X^T X better.
        x_mean = Xa.mean(axis=0) if self.fit_bias else np.zeros(Xa.shape[1])
        y_mean = Ya.mean(axis=0) if self.fit_bias else np.zeros(Ya.shape[1])
        Xc, Yc = Xa - x_mean, Ya - y_mean
        A = Xc.T @ Xc + self.ridge * np.eye(Xc.shape[1])
        B = Xc.T @ Yc
        try:
            sol = linalg.solve(A, B, assume_a="pos")
        except (linalg.LinAlgError, ValueError):
            sol = linalg.lstsq(A, B)[0]
        self.W = sol.T
        self.b = y_mean - x_mean @ sol
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
