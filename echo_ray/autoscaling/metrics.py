"""Forecast accuracy measures used by the benchmark and the tests."""

from __future__ import annotations

import numpy as np


def _pair(actual, predicted) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(actual, dtype=float)
    p = np.asarray(predicted, dtype=float)
    if a.shape != p.shape or a.ndim != 1 or a.size == 0:
        raise ValueError(f"actual and predicted must be equal-length non-empty 1-D arrays, "
                         f"got shapes {a.shape} and {p.shape}")
    if not (np.isfinite(a).all() and np.isfinite(p).all()):
        raise ValueError("actual and predicted must be finite")
    return a, p


def smape(actual, predicted) -> float:
    """Symmetric MAPE in percent: mean of 2|F - A| / (|A| + |F|); a 0/0 term counts as 0."""
    a, p = _pair(actual, predicted)
    den = np.abs(a) + np.abs(p)
    terms = np.divide(2.0 * np.abs(p - a), den, out=np.zeros_like(den), where=den > 0)
    return float(100.0 * terms.mean())


def mae(actual, predicted) -> float:
    a, p = _pair(actual, predicted)
    return float(np.abs(p - a).mean())


def coverage(actual, lower, upper) -> float:
    """Fraction of actual values inside [lower, upper]."""
    a, lo = _pair(actual, lower)
    _, hi = _pair(actual, upper)
    return float(((a >= lo) & (a <= hi)).mean())
