"""The single forecasting models, all online (one `update(y)` per sample, no refitting).

Equations follow Hyndman & Athanasopoulos, "Forecasting: Principles and Practice" (ch. 8), in the
same error-correction form statsmodels' Holt-Winters uses, so fitted parameters mean the same.
"""

from __future__ import annotations

import numpy as np

from ._checks import in_range, integer
from .forecast import Forecaster, damped_sum


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

    Until one full period has been seen the model runs as damped Holt; it then initialises the
    seasonal indices from that first period (deviations from its mean) and carries on online.
    """

    name = "holt_winters"

    def __init__(self, period: int, alpha: float = 0.2, beta: float = 0.01,
                 gamma: float = 0.1, phi: float = 0.9, **base) -> None:
        super().__init__(**base)
        self.period = integer("period", period, minimum=2)
        self.alpha = in_range("alpha", alpha, 0.0, 1.0, lo_open=True)
        self.beta = in_range("beta", beta, 0.0, 1.0)
        self.gamma = in_range("gamma", gamma, 0.0, 1.0)
        self.phi = in_range("phi", phi, 0.0, 1.0, lo_open=True)
        self._season = np.zeros(self.period)
        self._first: list[float] | None = []  # first period, until seasonal init
        self._level = None
        self._trend = 0.0
        self._t = -1  # index of the last observation
        self._phi_cum = np.array([damped_sum(self.phi, h) for h in self._hs])

    def params(self) -> dict:
        return {"period": self.period, "alpha": self.alpha, "beta": self.beta,
                "gamma": self.gamma, "phi": self.phi}

    @property
    def seasonal_ready(self) -> bool:
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
        if len(self._first) == self.period:
            first = np.asarray(self._first)
            mean = float(first.mean())
            self._season[:] = first - mean  # phase i holds observation i (t = i mod period)
            self._level, self._trend, self._first = mean, 0.0, None

    def _point(self, h: int) -> float:
        return (self._level + damped_sum(self.phi, h) * self._trend
                + self._season[(self._t + h) % self.period])

    def _points(self) -> np.ndarray:
        return (self._level + self._phi_cum * self._trend
                + self._season[(self._t + self._hs) % self.period])


MODELS = {cls.name: cls for cls in
          (Naive, MovingAverage, LinearTrend, SimpleExponentialSmoothing, Holt, HoltWinters)}
