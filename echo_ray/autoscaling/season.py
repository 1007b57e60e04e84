"""Season length from the data: autocorrelation at the calendar periods, after detrending.

A fixed season (1,440 minutes) is wrong for traces whose cycle is the hour (timer-triggered
functions) or that have none (bursty traffic). For each candidate period m that the data covers
at least `min_cycles` times (hourly, daily and weekly at the data's step), the series minus its
centred moving average of length m (which removes trend, level shifts and every cycle slower
than m) is correlated with itself m steps back. A candidate is significant when that
autocorrelation is at least `min_acf` (an effect size: a season explaining under ~10% of what is
left after detrending does not pay for a seasonal model) and above the white-noise bound
3 / sqrt(n). The shortest significant candidate wins: at the few-steps-ahead horizons the
autoscaler uses, the level tracks the slower cycles, and a short season is learned from more
repetitions (a daily cycle also shows at the weekly lag, so "shortest" keeps it daily).
"""

from __future__ import annotations

import numpy as np

from echo_ray.checks import integer, positive

HOUR_S, DAY_S, WEEK_S = 3600, 86400, 7 * 86400
MIN_ACF = 0.1


def candidate_periods(step_s: float = 60.0) -> list[int]:
    """Hourly, daily and weekly periods in samples of `step_s` seconds (those >= 2 samples)."""
    step_s = positive("step_s", step_s)
    out = []
    for span in (HOUR_S, DAY_S, WEEK_S):
        m = span / step_s
        if m >= 2 and abs(m - round(m)) < 1e-9:
            out.append(int(round(m)))
    return out


def seasonal_acf(y, period: int) -> float:
    """Autocorrelation at lag `period` of y minus its centred moving average of that length."""
    m = integer("period", period, minimum=2)
    x = np.asarray(y, dtype=float)
    if x.ndim != 1 or x.size < 3 * m or not np.isfinite(x).all():
        raise ValueError(f"y must be a finite 1-D series of at least 3 periods (3 x {m})")
    c = np.concatenate([[0.0], np.cumsum(x)])
    ma = (c[m:] - c[:-m]) / m  # ma[i] = mean of x[i : i + m]
    half = m // 2
    r = x[half: half + ma.size] - ma  # centred (off by half a step for even m: harmless)
    r = r - r.mean()
    den = float(r @ r)
    if den <= 0:
        return 0.0
    return float(r[m:] @ r[:-m]) / den


def detect_period(y, step_s: float = 60.0, candidates=None, min_cycles: int = 3,
                  min_acf: float = MIN_ACF) -> int | None:
    """The shortest significant season among `candidates` (default: hourly, daily, weekly at
    `step_s`), or None when none is significant or the data covers none `min_cycles` times."""
    x = np.asarray(y, dtype=float)
    found = season_scores(x, step_s, candidates, min_cycles)
    bound = 3.0 / np.sqrt(max(x.size, 1))
    for m, acf in sorted(found.items()):
        if acf >= max(min_acf, bound):
            return m
    return None


def season_scores(y, step_s: float = 60.0, candidates=None, min_cycles: int = 3) -> dict:
    """{period: seasonal_acf} for every candidate the data covers `min_cycles` times."""
    x = np.asarray(y, dtype=float)
    cands = candidate_periods(step_s) if candidates is None else [
        integer("candidate period", c, minimum=2) for c in candidates]
    min_cycles = integer("min_cycles", min_cycles, minimum=3)
    return {m: seasonal_acf(x, m) for m in sorted(set(cands)) if x.size >= min_cycles * m}
