"""Online forecaster base: point forecasts plus intervals from each model's own measured errors.

Every model keeps, for each horizon h = 1..max_horizon, a rolling buffer of the errors of the
forecasts it made h steps ago. A prediction interval at horizon h is the point forecast plus
empirical quantiles of that buffer: coverage is measured, not assumed from a Gaussian.

The quantile levels are calibrated online (adaptive conformal inference, Gibbs & Candes 2021):
each tail's level moves by `adapt_rate` x (target miss rate - miss) whenever an interval issued h
steps ago is scored, so the long-run share of misses in each tail tends to (1 - coverage) / 2
whatever the trace does (shifts, outages, runs of ties such as zero-count minutes), which a
fixed quantile of past errors does not guarantee. adapt_rate=0 gives the plain empirical interval.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass

import numpy as np

from echo_ray.checks import in_range, integer, positive, real


@dataclass(frozen=True)
class Forecast:
    """A point forecast `horizon` steps ahead and its empirical prediction interval."""

    point: float
    lower: float
    upper: float
    horizon: int
    coverage: float
    n_residuals: int
    calibrated: bool  # True once at least `min_residuals` errors back the interval

    def to_dict(self) -> dict:
        return asdict(self)


class Forecaster(ABC):
    """Base class: subclasses implement `_observe(y)` and `_point(h)`; this class does the rest.

    `update(y)` costs O(max_horizon) numpy work plus the model's own update, so it can run at
    the ~10 Hz the autoscaling policy polls at. `forecast(h)` costs one quantile over at most
    `interval_window` residuals.
    """

    name = "forecaster"

    def __init__(self, *, max_horizon: int = 10, interval_window: int = 500,
                 coverage: float = 0.8, error_halflife: float = 60.0,
                 min_residuals: int = 10, adapt_rate: float = 0.01) -> None:
        self.max_horizon = integer("max_horizon", max_horizon, minimum=1)
        self.interval_window = integer("interval_window", interval_window, minimum=2)
        self.coverage = in_range("coverage", coverage, 0.0, 1.0, lo_open=True, hi_open=True)
        self.error_halflife = positive("error_halflife", error_halflife)
        self.min_residuals = integer("min_residuals", min_residuals, minimum=1)
        self.adapt_rate = in_range("adapt_rate", adapt_rate, 0.0, 1.0)
        H, W = self.max_horizon, self.interval_window
        self._hs = np.arange(1, H + 1)
        self._made = np.full((H, H), np.nan)  # row: origin step % H, column: h - 1
        # _diag[n % H] = flat indices into _made of the forecasts aimed at step n (h = 1..H)
        self._diag = np.array([((r - self._hs) % H) * H + self._hs - 1 for r in range(H)])
        self._resid = np.full((H, W), np.nan)  # ring of errors per horizon; NaN = none yet
        self._col = 0  # next ring column (shared by all horizons: one column per step)
        self._decay = 0.5 ** (1.0 / self.error_halflife)
        self._ew_sq = np.zeros(H)  # exponentially weighted squared error per horizon
        self._ew_abs = np.zeros(H)  # ... and absolute error
        self._n = 0
        q = (1.0 - self.coverage) / 2.0
        self._quantiles = (q, 1.0 - q)
        self._tail = q  # target miss rate of each tail
        self._tail_level = np.full((2, H), q)  # lower / upper tail quantile level (calibrated online)

    # ---- what subclasses provide -------------------------------------------------------
    @abstractmethod
    def _observe(self, y: float) -> None:
        """Fold one observation into the model state."""

    @abstractmethod
    def _point(self, h: int) -> float:
        """Point forecast h steps after the last observation (only called after one)."""

    def _points(self) -> np.ndarray:
        """Point forecasts for h = 1..max_horizon; override when a vectorised form is cheaper."""
        return np.array([self._point(h) for h in range(1, self.max_horizon + 1)])

    def params(self) -> dict:
        """The model's parameters (for reports and for rebuilding it)."""
        return {}

    # ---- public API --------------------------------------------------------------------
    @property
    def n_observations(self) -> int:
        return self._n

    @property
    def warmed_up(self) -> bool:
        """True once the model forecasts as designed (a seasonal model: after its first
        seasons); an ensemble does not judge a member by errors made before that."""
        return self._n > 0

    def update(self, y) -> None:
        """Record one new observation: score the forecasts aimed at it, then refit online."""
        y = real("y", y)
        H, n = self.max_horizon, self._n
        if n > 0:
            # Forecasts made 1..H steps ago that target this step (NaN where none was made).
            errors = y - self._made.take(self._diag[n % H])
            sq = errors * errors
            ab = np.abs(errors)
            if n < H:  # warming up: horizons > n have no forecast yet
                sq[n:] = 0.0
                ab[n:] = 0.0
            sq *= 1.0 - self._decay
            self._ew_sq *= self._decay
            self._ew_sq += sq
            ab *= 1.0 - self._decay
            self._ew_abs *= self._decay
            self._ew_abs += ab
            if self.adapt_rate > 0:  # judged before this step's errors join the window
                self._calibrate(errors)
            self._resid[:, self._col] = errors
            self._col = self._col + 1 if self._col + 1 < self.interval_window else 0
        self._observe(y)
        self._n = n + 1
        self._made[n % H] = self._points()

    def _calibrate(self, errors: np.ndarray) -> None:
        """Adaptive conformal step: a tail that missed widens, one that held narrows a little.

        A miss is judged against the interval the current error window gives (the one issued
        h steps ago came from a window differing by its h newest errors), by counting, so no
        sort is needed per update: s[k] > e iff at most k errors are <= e."""
        W = self.interval_window
        counts: int | np.ndarray
        issued: np.ndarray | None
        if self._n >= W + self.max_horizon:  # every horizon's window is full: the common case
            counts, issued = W, None
        else:
            counts = np.clip(self._n - self._hs, 0, W)
            issued = counts >= self.min_residuals
            if not issued.any():
                return
        k_lo, k_hi = self._ranks(counts)
        col = errors[:, None]
        step = self.adapt_rate * (self._tail - np.stack(
            [(self._resid <= col).sum(axis=1) <= k_lo,  # lower tail missed
             (self._resid < col).sum(axis=1) > k_hi]))  # upper tail missed
        if issued is not None:
            step[:, ~issued] = 0.0
        self._tail_level += step

    def _ranks(self, counts):
        """Order statistics that bound the interval: lower = s[k_lo], upper = s[k_hi]."""
        top = np.maximum(counts - 1, 0)
        lv = np.clip(self._tail_level, 0.0, 1.0)
        k_lo = np.minimum((lv[0] * counts).astype(np.int64), top)
        k_hi = np.clip(np.ceil((1.0 - lv[1]) * counts) - 1, 0, top).astype(np.int64)
        return k_lo, k_hi

    def point(self, h: int = 1) -> float:
        """Point forecast only (no quantile work)."""
        self._check_h(h)
        return float(self._made[(self._n - 1) % self.max_horizon, h - 1])

    def forecast(self, h: int = 1) -> Forecast:
        """Point forecast h steps ahead with its empirical `coverage` interval."""
        point = self.point(h)
        n_res = self.n_residuals(h)
        calibrated = n_res >= self.min_residuals
        if not calibrated:
            lower = upper = point
        elif self.adapt_rate > 0:
            r = self.residuals(h)
            k_lo, k_hi = (int(k[h - 1]) for k in self._ranks(np.full(self.max_horizon, r.size)))
            part = np.partition(r, sorted({k_lo, k_hi}))
            lower, upper = point + float(part[k_lo]), point + float(part[k_hi])
        else:
            lo, hi = empirical_quantiles(self.residuals(h), self._quantiles)
            lower, upper = point + lo, point + hi
        return Forecast(point=point, lower=lower, upper=upper, horizon=h,
                        coverage=self.coverage, n_residuals=n_res, calibrated=calibrated)

    def residuals(self, h: int = 1) -> np.ndarray:
        """The recent h-step errors (actual - forecast), at most `interval_window`, unordered."""
        self._check_h(h, need_data=False)
        row = self._resid[h - 1]
        if self._n - h >= self.interval_window:
            return row.copy()
        return row[~np.isnan(row)]

    def n_residuals(self, h: int = 1) -> int:
        return max(0, min(self.interval_window, self._n - h))

    def recent_mae(self) -> np.ndarray:
        """Exponentially weighted mean absolute error per horizon (NaN where none yet)."""
        return self._debias(self._ew_abs)

    def recent_mse(self) -> np.ndarray:
        """Exponentially weighted mean squared error per horizon (NaN where none yet)."""
        return self._debias(self._ew_sq)

    def _debias(self, ew: np.ndarray) -> np.ndarray:
        scored = np.maximum(self._n - self._hs, 0)  # errors seen at each horizon
        weight = 1.0 - self._decay ** scored
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(scored > 0, ew / weight, np.nan)

    def describe(self) -> dict:
        return {"model": self.name, "params": self.params(), "n_observations": self._n,
                "max_horizon": self.max_horizon, "coverage": self.coverage,
                "adapt_rate": self.adapt_rate}

    def _check_h(self, h, need_data: bool = True) -> None:
        integer("h", h, minimum=1)
        if h > self.max_horizon:
            raise ValueError(f"h must be <= max_horizon={self.max_horizon}, got {h}")
        if need_data and self._n == 0:
            raise ValueError("forecast needs at least one observation: call update(y) first")


def damped_sum(phi: float, h: int) -> float:
    """phi + phi^2 + ... + phi^h (the damped-trend multiplier)."""
    if phi == 1.0:
        return float(h)
    return phi * (1.0 - phi ** h) / (1.0 - phi)


def empirical_quantiles(values: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """Same as np.quantile(values, qs) (linear interpolation), with one partial sort.

    np.quantile's generality costs ~10x more than this on a few hundred residuals, and the
    forecast is asked for on every autoscaling poll.
    """
    n = values.size
    pos = [q * (n - 1) for q in qs]
    lows = [int(p) for p in pos]
    kth = sorted({k for lo in lows for k in (lo, min(lo + 1, n - 1))})
    part = np.partition(values, kth)
    return [float(part[lo] + (p - lo) * (part[min(lo + 1, n - 1)] - part[lo]))
            for p, lo in zip(pos, lows, strict=True)]
