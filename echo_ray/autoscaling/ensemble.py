"""Ensemble forecaster: members weighted by their own recently measured accuracy.

Weights at horizon h are proportional to 1 / MSE^power, where MSE is the exponentially weighted
mean squared error of that member's h-step forecasts, i.e. computed from the errors each member
really made, so weight flows to whichever model has been accurate lately. power=2 (sharper than
plain inverse-MSE) was chosen on the NASA trace's validation week, before the test week. The ensemble is itself a Forecaster: its interval
comes from the ensemble's own h-step errors.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .forecast import Forecaster
from .models import Holt, HoltWinters, LinearTrend, MovingAverage, SimpleExponentialSmoothing


class Ensemble(Forecaster):
    name = "ensemble"

    def __init__(self, members: Sequence[Forecaster], power: float = 2.0, **base) -> None:
        members = list(members)
        if not members or not all(isinstance(m, Forecaster) for m in members):
            raise ValueError("members must be a non-empty sequence of Forecaster instances")
        if any(m.n_observations for m in members):
            raise ValueError("members must be fresh (no observations yet): the ensemble feeds them")
        base.setdefault("max_horizon", members[0].max_horizon)
        super().__init__(**base)
        short = [m.name for m in members if m.max_horizon < self.max_horizon]
        if short:
            raise ValueError(f"members must have max_horizon >= {self.max_horizon}: {short}")
        names = [m.name for m in members]
        if len(set(names)) != len(names):
            raise ValueError(f"members must have distinct names, got {names}")
        if not power > 0:
            raise ValueError(f"power must be > 0, got {power!r}")
        self.members = members
        self.power = float(power)
        self._same_decay = len({m._decay for m in members}) == 1

    def params(self) -> dict:
        return {"power": self.power,
                "members": {m.name: m.params() for m in self.members}}

    def weight_matrix(self) -> np.ndarray:
        """Weights, shape (n_members, max_horizon); each column sums to 1."""
        H, M = self.max_horizon, len(self.members)
        if self._same_decay:  # equal bias corrections cancel in the normalisation
            mse = np.stack([m._ew_sq[:H] for m in self.members])
        else:
            mse = np.stack([m.recent_mse()[:H] for m in self.members])
        best = mse.min(axis=0)
        # MSE relative to the best member (>= 1); members with zero error share all the weight.
        with np.errstate(invalid="ignore"):
            ratio = np.divide(mse, best, out=np.where(mse > 0, np.inf, 1.0), where=best > 0)
        inv = ratio ** -self.power
        w = inv / inv.sum(axis=0)
        unscored = self._hs >= self._n  # no member has an error at these horizons yet
        if unscored.any():
            w[:, unscored] = 1.0 / M
        return w

    def weights(self, h: int = 1) -> dict[str, float]:
        self._check_h(h, need_data=False)
        col = self.weight_matrix()[:, h - 1]
        return {m.name: float(w) for m, w in zip(self.members, col, strict=True)}

    def _observe(self, y: float) -> None:
        for m in self.members:
            m.update(y)

    def _member_points(self) -> np.ndarray:
        H = self.max_horizon
        return np.stack([m._made[(m._n - 1) % m.max_horizon, :H] for m in self.members])

    def _points(self) -> np.ndarray:
        return (self.weight_matrix() * self._member_points()).sum(axis=0)

    def _point(self, h: int) -> float:
        return float(self._points()[h - 1])


def default_ensemble(max_horizon: int = 10, period: int | None = None, **base) -> Ensemble:
    """The ensemble the optimizer uses when none is given: robust defaults, no fitting needed."""
    kw = {"max_horizon": max_horizon, **base}
    members: list[Forecaster] = [
        MovingAverage(window=10, **kw),
        LinearTrend(window=30, **kw),
        SimpleExponentialSmoothing(alpha=0.3, **kw),
        Holt(alpha=0.3, beta=0.05, phi=0.9, **kw),
    ]
    if period is not None:
        members.append(HoltWinters(period=period, **kw))
    return Ensemble(members, **kw)
