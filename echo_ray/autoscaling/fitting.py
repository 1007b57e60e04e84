"""Parameter fitting on one-step-ahead squared error.

Exponential smoothing (SES, damped Holt, additive Holt-Winters) is fitted as statsmodels fits it:
a coarse grid supplies starting points, then `scipy.optimize.minimize` (L-BFGS-B, bounded) runs
from the best few and the lowest error wins. The parameterisation is statsmodels' too: beta and
gamma are searched as fractions of alpha and of 1 - alpha (so beta <= alpha, gamma <= 1 - alpha)
and phi lies in [0.8, 0.995]. The error is computed by plain-Python kernels that repeat the
models' own update equations (tests check they give the same error as running the model), about
0.5 us per sample, so a fit over a few weeks of minutes takes seconds, and one over a window of
a few thousand steps takes milliseconds.

Window-style models (moving average, linear trend) have one integer parameter: `grid_search`.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize

from echo_ray.checks import integer

from .forecast import Forecaster
from .models import seasonal_init

PHI_BOUNDS = (0.8, 0.995)  # statsmodels' default bounds for the damping parameter
ALPHA_MIN = 1e-4


def one_step_sse(model: Forecaster, y: Sequence[float], skip: int = 0) -> float:
    """Feed `y` through a fresh `model`; sum squared 1-step errors after the first `skip + 1`."""
    if model.n_observations:
        raise ValueError("model must be fresh (no observations yet)")
    values = _series(y, skip)
    observe, point = model._observe, model._point
    sse = 0.0
    for i, v in enumerate(values.tolist()):
        if i > skip:
            e = v - point(1)
            sse += e * e
        observe(v)
    return sse


def grid_search(factory: Callable[..., Forecaster], grid: Mapping[str, Sequence],
                y: Sequence[float], skip: int = 0) -> tuple[dict, list[dict]]:
    """Try every combination in `grid`; return (best params, table of {params, sse})."""
    if not grid:
        raise ValueError("grid must name at least one parameter")
    names = list(grid)
    table = []
    for combo in itertools.product(*(grid[n] for n in names)):
        params = dict(zip(names, combo, strict=True))
        table.append({"params": params, "sse": one_step_sse(factory(**params), y, skip)})
    best = min(table, key=lambda row: row["sse"])
    return dict(best["params"]), table


# ---- exponential smoothing: kernels ------------------------------------------------------------
def ses_sse(y: list[float], skip: int, alpha: float) -> float:
    """One-step SSE of SimpleExponentialSmoothing(alpha) on `y` (same equations)."""
    level, sse = y[0], 0.0
    for i in range(1, len(y)):
        e = y[i] - level
        if i > skip:
            sse += e * e
        level += alpha * e
    return sse


def holt_sse(y: list[float], skip: int, alpha: float, beta: float, phi: float) -> float:
    """One-step SSE of Holt(alpha, beta, phi) on `y` (same equations)."""
    level, trend, sse = y[0], 0.0, 0.0
    for i in range(1, len(y)):
        v = y[i]
        d = phi * trend
        f = level + d
        e = v - f
        if i > skip:
            sse += e * e
        new = f + alpha * e
        trend = beta * (new - level) + (1.0 - beta) * d
        level = new
    return sse


def holt_winters_sse(y: list[float], skip: int, period: int, alpha: float, beta: float,
                     gamma: float, phi: float, init_cycles: int = 3,
                     initial_state: tuple | None = None) -> float:
    """One-step SSE of HoltWinters(period, alpha, beta, gamma, phi, init_cycles,
    initial_state) on `y` (same equations): damped Holt over the first cycles, seasons from
    them, then Holt-Winters; or Holt-Winters from the first step with a known initial state."""
    m = period
    if initial_state is None:
        warm = init_cycles * m
        sse = holt_sse(y[:warm], skip, alpha, beta, phi)
        season_arr, level, trend = seasonal_init(y[:warm], m)
    else:
        warm, sse = 0, 0.0
        level, trend, season_arr = initial_state
    season = list(map(float, season_arr))
    p = 0
    for i in range(warm, len(y)):
        v = y[i]
        s = season[p]
        d = phi * trend
        base = level + d
        e = v - base - s
        if i > skip:
            sse += e * e
        new = base + alpha * e
        trend = beta * (new - level) + (1.0 - beta) * d
        season[p] = s + gamma * (v - base - s)
        level = new
        p = p + 1 if p + 1 < m else 0
    return sse


# ---- exponential smoothing: the optimiser ------------------------------------------------------
def heuristic_initial_state(y, period: int) -> tuple[float, float, list]:
    """(level, trend, season) before y[0], computed as statsmodels' heuristic initialisation
    (Hyndman & Athanasopoulos, sec. 2.6): seasons from the first 2-5 cycles detrended by a
    centred moving average, level and trend from a line through its first 10 values. The same
    start as statsmodels' Holt-Winters, so a fit on the same data compares like with like."""
    m = integer("period", period, minimum=2)
    x = np.asarray(y, dtype=float)
    min_obs = 10 + 2 * (m // 2)
    if x.size < max(2 * m, min_obs):
        raise ValueError(f"y must hold at least two periods and {min_obs} values, got {x.size}")
    k = max(min(5, x.size // m), int(np.ceil(min_obs / m)))
    series = x[: k * m]
    c = np.concatenate([[0.0], np.cumsum(series)])
    ma = np.full(series.size, np.nan)
    ma[m // 2: m // 2 + series.size - m + 1] = (c[m:] - c[:-m]) / m  # centred, window m
    if m % 2 == 0:  # 2 x m moving average, as statsmodels centres an even window
        shifted = np.r_[ma[1:], np.nan]
        ma = np.r_[np.nan, (shifted[:-1] + shifted[1:]) / 2.0]
    detrended = np.full(k * m, np.nan)
    detrended[: series.size] = series - ma
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN phases cannot happen: k >= 2
        season = np.nanmean(detrended.reshape(k, m), axis=0)
    season -= season.mean()
    trend_values = ma[~np.isnan(ma)][:10]
    design = np.c_[np.ones(10), np.arange(10) + 1]
    level, trend = np.linalg.pinv(design) @ trend_values
    return float(level), float(trend), season.tolist()


@dataclass(frozen=True)
class Fit:
    """A fitted model's parameters and how it was found."""

    model: str
    params: dict
    sse: float
    evaluations: int
    starts: list = field(default_factory=list)
    initial_state: tuple | None = None  # Holt-Winters with a known start

    def to_dict(self) -> dict:
        return {"model": self.model, "params": self.params, "sse": self.sse,
                "evaluations": self.evaluations}


# name -> (search-space names, bounds, coarse grid for starts)
_SPACES = {
    "ses": (("alpha",), [(ALPHA_MIN, 1.0)], [[0.02, 0.1, 0.3, 0.6, 0.95]]),
    "holt": (("alpha", "beta_frac", "phi"), [(ALPHA_MIN, 1.0), (0.0, 1.0), PHI_BOUNDS],
             [[0.05, 0.2, 0.5, 0.9], [0.01, 0.2], [0.85, 0.98]]),
    "holt_winters": (("alpha", "beta_frac", "gamma_frac", "phi"),
                     [(ALPHA_MIN, 1.0), (0.0, 1.0), (0.0, 1.0), PHI_BOUNDS],
                     [[0.05, 0.2, 0.5, 0.9], [0.01, 0.2], [0.02, 0.1, 0.4], [0.85, 0.98]]),
}


def _params(kind: str, x) -> dict:
    """Search-space point -> model parameters (beta = frac * alpha, gamma = frac * (1-alpha))."""
    a = float(x[0])
    if kind == "ses":
        return {"alpha": a}
    if kind == "holt":
        return {"alpha": a, "beta": float(x[1]) * a, "phi": float(x[2])}
    return {"alpha": a, "beta": float(x[1]) * a, "gamma": float(x[2]) * (1.0 - a),
            "phi": float(x[3])}


def _search_point(kind: str, p: dict) -> np.ndarray:
    """Model parameters -> search-space point (inverse of `_params`)."""
    a = float(p["alpha"])
    if kind == "ses":
        return np.array([a])
    beta_frac = min(float(p["beta"]) / a, 1.0) if a > 0 else 0.0
    if kind == "holt":
        return np.array([a, beta_frac, float(p["phi"])])
    gamma_frac = min(float(p["gamma"]) / (1.0 - a), 1.0) if a < 1 else 0.0
    return np.array([a, beta_frac, gamma_frac, float(p["phi"])])


def fit_smoothing(kind: str, y: Sequence[float], period: int | None = None,
                  skip: int | None = None, n_starts: int = 3, max_evals: int = 150,
                  init_cycles: int = 3, start: dict | None = None,
                  known_start: bool = False) -> Fit:
    """Fit "ses", "holt" or "holt_winters" to `y` by minimising one-step SSE.

    `skip`: errors of the first `skip + 1` samples are not counted (default: the
    `init_cycles` periods that only initialise Holt-Winters' seasons; 0 otherwise).
    `max_evals` bounds each L-BFGS-B run, so a fit's cost is bounded too. `start` (model
    parameters, e.g. the current ones) replaces the grid with that single starting point:
    the cheap warm start a periodic refit uses. `known_start` (Holt-Winters, batch use):
    start from `heuristic_initial_state(y)` instead of warming up, and count every error.
    """
    if kind not in _SPACES:
        raise ValueError(f"kind must be one of {sorted(_SPACES)}, got {kind!r}")
    if kind == "holt_winters":
        period = integer("period", period, minimum=2)
    cycles = integer("init_cycles", init_cycles, minimum=1)
    initial = None
    if kind == "holt_winters" and known_start:
        initial = heuristic_initial_state(y, period)
    warm = cycles * period if kind == "holt_winters" and initial is None else -1
    skip = warm if skip is None else skip
    skip = integer("skip", skip, minimum=-1)  # -1: every error counts (known start)
    values = _series(y, skip)
    if kind == "holt_winters" and initial is None and values.size < (cycles + 1) * period:
        raise ValueError(f"y must hold at least init_cycles + 1 periods "
                         f"({cycles + 1} x {period}), got {values.size}")
    data = values.tolist()
    scale = float(values.var()) * max(values.size - skip - 1, 1) or 1.0

    def sse(p: dict) -> float:
        if kind == "ses":
            return ses_sse(data, skip, p["alpha"])
        if kind == "holt":
            return holt_sse(data, skip, p["alpha"], p["beta"], p["phi"])
        return holt_winters_sse(data, skip, period, p["alpha"], p["beta"], p["gamma"], p["phi"],
                                cycles, initial)

    evals = 0

    def objective(x) -> float:
        nonlocal evals
        evals += 1
        return sse(_params(kind, x)) / scale

    _, bounds, grid = _SPACES[kind]
    if start is not None:
        x0 = np.clip(_search_point(kind, start), *np.array(bounds).T)
        tried = [(objective(x0), x0)]
    else:
        tried = sorted((objective(np.array(x)), x) for x in itertools.product(*grid))
    starts = [np.array(x) for _, x in tried[:n_starts]]
    best_x, best_f = starts[0], tried[0][0]
    for x0 in starts:
        res = minimize(objective, x0, method="L-BFGS-B", bounds=bounds,
                       options={"maxfun": max_evals})
        if res.fun < best_f:
            best_x, best_f = res.x, float(res.fun)
    params = {k: round(v, 6) for k, v in _params(kind, best_x).items()}
    params["alpha"] = max(params["alpha"], ALPHA_MIN)
    if kind == "holt_winters":
        params = {"period": period, **params, "init_cycles": cycles}
    return Fit(model=kind, params=params, sse=best_f * scale, evaluations=evals,
               starts=[_params(kind, x) for x in starts], initial_state=initial)


def _series(y, skip: int) -> np.ndarray:
    values = np.asarray(y, dtype=float)
    if values.ndim != 1 or values.size < max(skip + 2, 2) or not np.isfinite(values).all():
        raise ValueError(f"y must be a finite 1-D series longer than skip + 1 = {skip + 1}")
    return values
