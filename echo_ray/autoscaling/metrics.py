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


def mase(actual, predicted, insample, period: int | None = None) -> float:
    """Mean absolute scaled error: MAE over the in-sample MAE of the seasonal-naive forecast
    y[t - period] (naive y[t - 1] when `period` is None). Below 1 beats that yardstick; zeros
    in the data distort it no more than they distort MAE (Hyndman & Koehler 2006)."""
    m = 1 if period is None else int(period)
    x = np.asarray(insample, dtype=float)
    if x.ndim != 1 or x.size <= m or not np.isfinite(x).all() or m < 1:
        raise ValueError(f"insample must be a finite 1-D series longer than period={m}")
    scale = float(np.abs(x[m:] - x[:-m]).mean())
    if scale <= 0:
        raise ValueError("insample is constant at the seasonal lag: MASE is undefined")
    return mae(actual, predicted) / scale
