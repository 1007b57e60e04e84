"""The single forecasting models, all online (one `update(y)` per sample, no refitting).

Equations follow Hyndman & Athanasopoulos, "Forecasting: Principles and Practice" (ch. 8), in the
same error-correction form statsmodels' Holt-Winters uses, so fitted parameters mean the same.
"""

from __future__ import annotations

import numpy as np

from echo_ray.checks import in_range, integer, real

from .forecast import Forecaster, damped_sum


def retune(model: Forecaster, **params) -> None:
    """Set new smoothing parameters on a running SES / Holt / Holt-Winters model, keeping its
    state (level, trend, seasons): what a periodic refit does between two updates."""
    checks = {"alpha": (0.0, True), "beta": (0.0, False), "gamma": (0.0, False),
              "phi": (0.0, True)}
    for name, value in params.items():
        if name not in checks or not hasattr(model, name):
            raise ValueError(f"{model.name} has no smoothing parameter {name!r}")
        setattr(model, name, in_range(name, value, 0.0, 1.0, lo_open=checks[name][1]))
    if hasattr(model, "_phi_cum"):
        model._phi_cum = np.array([damped_sum(model.phi, h) for h in model._hs])


class Naive(Forecaster):
    """Tomorrow looks like today: the last observation, at every horizon."""

    name = "naive"

    def __init__(self, **base) -> None:
        super().__init__(**base)
        self._last = 0.0

    def _observe(self, y: float) -> None:
        self._last = y

    def _point(self, h: int) -> float:
        return self._last

    def _points(self) -> np.ndarray:
        return np.full(self.max_horizon, self._last)


class SeasonalNaive(Forecaster):
    """Same time last season: y[t + h - period] (the last observation until a season is seen).

    The scale for MASE and the benchmark a seasonal model has to beat; on traces whose season
    repeats exactly (timer-triggered bursts) it is hard to beat at any horizon up to `period`.
    """

    name = "seasonal_naive"

    def __init__(self, period: int, **base) -> None:
        super().__init__(**base)
        self.period = integer("period", period, minimum=2)
        if self.period < self.max_horizon:
            raise ValueError(f"period must be >= max_horizon={self.max_horizon}, got {period}")
        self._buf = np.zeros(self.period)  # _buf[t % period] = y[t]
        self._t = -1

    def params(self) -> dict:
        return {"period": self.period}

    @property
    def warmed_up(self) -> bool:
        return self._t + 1 >= self.period

    def _observe(self, y: float) -> None:
        self._t += 1
        self._buf[self._t % self.period] = y

    def _point(self, h: int) -> float:
        return float(self._points()[h - 1])

    def _points(self) -> np.ndarray:
        t, m = self._t, self.period
        if t + 1 < m:  # no full season yet
            return np.full(self.max_horizon, self._buf[t % m])
        return self._buf[(t + self._hs) % m]


class MovingAverage(Forecaster):
    """Mean of the last `window` observations (fewer while warming up)."""

    name = "moving_average"

    def __init__(self, window: int = 10, **base) -> None:
        super().__init__(**base)
        self.window = integer("window", window, minimum=1)
        self._buf = np.zeros(self.window)
        self._pos = 0
        self._count = 0
        self._sum = 0.0

    def params(self) -> dict:
        return {"window": self.window}

    def _observe(self, y: float) -> None:
        old = self._buf[self._pos]
        self._buf[self._pos] = y
        self._pos = (self._pos + 1) % self.window
        if self._count < self.window:
            self._count += 1
            self._sum += y
        else:
            self._sum += y - old
        if self._pos == 0:  # re-add from scratch once per window: no float drift
            self._sum = float(self._buf[: self._count].sum())

    def _point(self, h: int) -> float:
        return self._sum / self._count

    def _points(self) -> np.ndarray:
        return np.full(self.max_horizon, self._sum / self._count)


class LinearTrend(Forecaster):
    """Least-squares line through the last `window` observations, extrapolated."""

    name = "linear"

    def __init__(self, window: int = 30, **base) -> None:
        super().__init__(**base)
        self.window = integer("window", window, minimum=2)
        k = self.window
        self._buf = np.zeros(2 * k)  # each value stored twice so the window is one slice
        self._pos = 0
        self._count = 0
        self._xc = np.arange(k) - (k - 1) / 2.0
        self._sxx = float(self._xc @ self._xc)
        self._mean = 0.0
        self._slope = 0.0
        self._offset = (k - 1) / 2.0  # last x minus mean x

    def params(self) -> dict:
        return {"window": self.window}

    def _observe(self, y: float) -> None:
        k = self.window
        self._buf[self._pos] = y
        self._buf[self._pos + k] = y
        self._pos = (self._pos + 1) % k
        if self._count < k:
            self._count += 1
            w = self._buf[k + self._pos - self._count: k + self._pos]
            m = w.size
            self._mean = float(w.mean())
            if m >= 2:
                xc = np.arange(m) - (m - 1) / 2.0
                self._slope = float(xc @ w) / float(xc @ xc)
            self._offset = (m - 1) / 2.0
            return
        w = self._buf[self._pos: self._pos + k]
        self._mean = float(w.sum()) / k
        self._slope = float(self._xc @ w) / self._sxx

    def _point(self, h: int) -> float:
        return self._mean + self._slope * (self._offset + h)

    def _points(self) -> np.ndarray:
        return self._mean + self._slope * (self._offset + self._hs)


class SimpleExponentialSmoothing(Forecaster):
    """Level only: l_t = l_{t-1} + alpha (y_t - l_{t-1}); flat forecast."""

    name = "ses"

    def __init__(self, alpha: float = 0.3, **base) -> None:
        super().__init__(**base)
        self.alpha = in_range("alpha", alpha, 0.0, 1.0, lo_open=True)
        self._level = None

    def params(self) -> dict:
        return {"alpha": self.alpha}

    def _observe(self, y: float) -> None:
        if self._level is None:
            self._level = y
        else:
            self._level += self.alpha * (y - self._level)

    def _point(self, h: int) -> float:
        return self._level

    def _points(self) -> np.ndarray:
        return np.full(self.max_horizon, self._level)


class Holt(Forecaster):
    """Holt's linear method with a damped trend (phi < 1 stops trends running away)."""

    name = "holt"

    def __init__(self, alpha: float = 0.3, beta: float = 0.05, phi: float = 0.9,
                 **base) -> None:
        super().__init__(**base)
        self.alpha = in_range("alpha", alpha, 0.0, 1.0, lo_open=True)
        self.beta = in_range("beta", beta, 0.0, 1.0)
        self.phi = in_range("phi", phi, 0.0, 1.0, lo_open=True)
        self._level = None
        self._trend = 0.0
        self._phi_cum = np.array([damped_sum(self.phi, h) for h in self._hs])

    def params(self) -> dict:
        return {"alpha": self.alpha, "beta": self.beta, "phi": self.phi}

    def _observe(self, y: float) -> None:
        if self._level is None:
            self._level = y
            return
        a, b, phi = self.alpha, self.beta, self.phi
        prev = self._level
        self._level = a * y + (1.0 - a) * (prev + phi * self._trend)
        self._trend = b * (self._level - prev) + (1.0 - b) * phi * self._trend

    def _point(self, h: int) -> float:
        return self._level + damped_sum(self.phi, h) * self._trend

    def _points(self) -> np.ndarray:
        return self._level + self._phi_cum * self._trend


class HoltWinters(Forecaster):
    """Additive Holt-Winters with damped trend and a fixed season length `period`.

    For the first `init_cycles` periods the model runs as damped Holt; it then initialises the
    seasonal indices as each phase's mean deviation from its cycle's mean over those cycles
    (one cycle alone gives indices as noisy as single observations; statsmodels' heuristic
    averages up to five), the level and trend from the cycle means, and carries on online.
    `initial_state` (level, trend, season before the first observation, e.g. from
    `fitting.heuristic_initial_state` on training data) skips that warm-up, as statsmodels'
    fitted initial states do.
    """

    name = "holt_winters"

    def __init__(self, period: int, alpha: float = 0.2, beta: float = 0.01,
                 gamma: float = 0.1, phi: float = 0.9, init_cycles: int = 3,
                 initial_state: tuple | None = None, **base) -> None:
        super().__init__(**base)
        self.period = integer("period", period, minimum=2)
        self.alpha = in_range("alpha", alpha, 0.0, 1.0, lo_open=True)
        self.beta = in_range("beta", beta, 0.0, 1.0)
        self.gamma = in_range("gamma", gamma, 0.0, 1.0)
        self.phi = in_range("phi", phi, 0.0, 1.0, lo_open=True)
        self.init_cycles = integer("init_cycles", init_cycles, minimum=1)
        self._season = np.zeros(self.period)
        self._first: list[float] | None = []  # the first cycles, until seasonal init
        self._level = None
        self._trend = 0.0
        self._t = -1  # index of the last observation
        self._phi_cum = np.array([damped_sum(self.phi, h) for h in self._hs])
        self.known_start = initial_state is not None
        if initial_state is not None:
            level, trend, season = initial_state
            season = np.asarray(season, dtype=float)
            if season.shape != (self.period,) or not np.isfinite(season).all():
                raise ValueError(f"initial_state season must hold {self.period} finite values")
            self._level, self._trend = real("level", level), real("trend", trend)
            self._season[:], self._first = season, None

    def params(self) -> dict:
        return {"period": self.period, "alpha": self.alpha, "beta": self.beta,
                "gamma": self.gamma, "phi": self.phi, "init_cycles": self.init_cycles,
                "known_start": self.known_start}

    @property
    def seasonal_ready(self) -> bool:
        return self._first is None

    @property
    def warmed_up(self) -> bool:
        return self._first is None

    def _observe(self, y: float) -> None:
        self._t += 1
        a, b, g, phi = self.alpha, self.beta, self.gamma, self.phi
        if self._level is None:
            self._level = y
        elif self._first is None:
            p = self._t % self.period
            s_old = self._season[p]
            prev, damped = self._level, phi * self._trend
            self._level = a * (y - s_old) + (1.0 - a) * (prev + damped)
            self._trend = b * (self._level - prev) + (1.0 - b) * damped
            self._season[p] = g * (y - prev - damped) + (1.0 - g) * s_old
            return
        else:  # warming up: plain damped Holt
            prev = self._level
            self._level = a * y + (1.0 - a) * (prev + phi * self._trend)
            self._trend = b * (self._level - prev) + (1.0 - b) * phi * self._trend
        self._first.append(y)
        if len(self._first) == self.init_cycles * self.period:
            self._season[:], self._level, self._trend = seasonal_init(
                self._first, self.period)
            self._first = None

    def _point(self, h: int) -> float:
        return (self._level + damped_sum(self.phi, h) * self._trend
                + self._season[(self._t + h) % self.period])

    def _points(self) -> np.ndarray:
        return (self._level + self._phi_cum * self._trend
                + self._season[(self._t + self._hs) % self.period])


def seasonal_init(first, period: int) -> tuple[np.ndarray, float, float]:
    """(season, level, trend) after whole cycles `first`: phase i of season holds observation
    i mod period's mean deviation from its cycle mean; the trend is the slope of the cycle
    means, the level the last cycle's mean carried to its last step."""
    cycles = np.asarray(first, dtype=float).reshape(-1, period)
    means = cycles.mean(axis=1)
    season = (cycles - means[:, None]).mean(axis=0)
    k = means.size
    trend = float(means[-1] - means[0]) / ((k - 1) * period) if k > 1 else 0.0
    level = float(means[-1]) + trend * (period - 1) / 2.0
    return season, level, trend


MODELS = {cls.name: cls for cls in
          (Naive, SeasonalNaive, MovingAverage, LinearTrend, SimpleExponentialSmoothing, Holt,
           HoltWinters)}
