"""Ensemble forecaster: follow whichever expert has lately been most accurate, per horizon.

The experts are the members and one combination of them (weights ~ 1 / recent MSE^power, the
classic Bates-Granger combination). A weighted average alone can lose to its best member when
one member is much better (it keeps some weight on the others), so the ensemble selects:

- for each half-life in `halflives`, a selector follows the expert with the lowest
  exponentially weighted mean absolute error at that horizon, switching only when a
  challenger is better by more than `margin` (hysteresis: no flapping between near-equals);
- with several half-lives, the ensemble follows the selector whose own past choices had the
  lowest error over the longest half-life (same hysteresis), i.e. the decay is chosen online.

The default is one half-life of 600 steps (10 hours of minutes, 10 minutes of seconds). On the
synthetic families (seeds other than the benchmark's) it had the lowest worst-case loss
against the best member: choosing among 60/600/6000 online lost up to 2.5%, because the
short selector wins on the history by chasing regimes and then loses on the test span.

MAE is the score because it is the benchmark's primary metric and, unlike squared error, it is
not dominated by a few burst minutes. In the long run the ensemble tracks its best member (and
the combination, when that is better); the benchmark measures it on every trace family.
The ensemble is itself a Forecaster: its interval comes from its own calibrated h-step errors.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from echo_ray.checks import in_range, integer, positive

from .fitting import fit_smoothing
from .forecast import Forecaster
from .models import (
    Holt,
    HoltWinters,
    LinearTrend,
    MovingAverage,
    Naive,
    SeasonalNaive,
    SimpleExponentialSmoothing,
    retune,
)

HALFLIVES = (600.0,)


class Ensemble(Forecaster):
    name = "ensemble"

    def __init__(self, members: Sequence[Forecaster], power: float = 1.0,
                 halflives: Sequence[float] = HALFLIVES, margin: float = 0.01,
                 refit_every: int | None = None, fit_window: int = 1800,
                 **base) -> None:
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
        halflives = [positive("halflives", h) for h in halflives]
        if not halflives:
            raise ValueError("halflives must name at least one half-life")
        self.members = members
        self.power = float(power)
        self.halflives = tuple(halflives)
        self.margin = in_range("margin", margin, 0.0, 1.0, hi_open=True)
        self._same_decay = len({m._decay for m in members}) == 1
        H, M, K = self.max_horizon, len(members), len(halflives)
        E = M + 1  # experts: each member, then the combination
        self._xmade = np.full((H, E, H), np.nan)  # expert forecasts by origin row (like _made)
        self._sel_made = np.zeros((H, K, H), dtype=np.int64)  # expert each selector followed
        self._kdecay = 0.5 ** (1.0 / np.array(halflives))
        # EW absolute error per selector decay, expert, h: numerator and weight, so an expert
        # is scored only on forecasts it made once warmed up (NaN in _xmade: not counted)
        self._num = np.zeros((K, E, H))
        self._den = np.zeros((K, E, H))
        self._meta_decay = 0.5 ** (1.0 / max(halflives))
        self._meta = np.zeros((K, H))  # EW absolute error of each selector's choices
        self._leader = np.full((K, H), M)  # start with the combination
        self._pick = np.full(H, K - 1)  # the selector followed: the steadiest until beaten
        self._cols = np.arange(H)
        # Periodic refit: every `refit_every` updates, one smoothing member (round robin) is
        # refitted on the last `fit_window` observations, warm-started from its parameters.
        self.refit_every = None if refit_every is None else integer(
            "refit_every", refit_every, minimum=1)
        self.fit_window = integer("fit_window", fit_window, minimum=10)
        self._window = np.zeros(self.fit_window)
        self._fittable = [m for m in members if m.name in ("ses", "holt") or (
            m.name == "holt_winters"
            and self.fit_window >= (m.init_cycles + 1) * m.period + 2)]  # type: ignore[attr-defined]
        self._refits = 0
        self.last_refit: dict | None = None

    def params(self) -> dict:
        return {"power": self.power, "halflives": list(self.halflives), "margin": self.margin,
                "refit_every": self.refit_every, "fit_window": self.fit_window,
                "members": {m.name: m.params() for m in self.members}}

    @property
    def expert_names(self) -> list[str]:
        return [m.name for m in self.members] + ["combination"]

    def combination_weights(self) -> np.ndarray:
        """Weights ~ 1 / MSE^power, shape (n_members, max_horizon); each column sums to 1."""
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

    def chosen(self) -> np.ndarray:
        """Index of the expert the ensemble follows at each horizon (M = the combination)."""
        return self._leader[self._pick, self._cols]

    def weight_matrix(self) -> np.ndarray:
        """Weights on the members, shape (n_members, max_horizon); each column sums to 1."""
        M = len(self.members)
        w = self.combination_weights()
        chosen = self.chosen()
        single = chosen < M
        if single.any():
            w[:, single] = 0.0
            w[chosen[single], self._cols[single]] = 1.0
        return w

    def weights(self, h: int = 1) -> dict[str, float]:
        self._check_h(h, need_data=False)
        col = self.weight_matrix()[:, h - 1]
        return {m.name: float(w) for m, w in zip(self.members, col, strict=True)}

    def choice(self, h: int = 1) -> str:
        """Name of the expert followed at horizon h (a member or "combination")."""
        self._check_h(h, need_data=False)
        return self.expert_names[int(self.chosen()[h - 1])]

    def _observe(self, y: float) -> None:
        for m in self.members:
            m.update(y)
        n, H = self._n, self.max_horizon  # n = index of this observation
        if self.refit_every is not None:
            self._window[n % self.fit_window] = y
            if n + 1 >= self.fit_window and (n + 1) % self.refit_every == 0 and self._fittable:
                self._refit(n)
        if n == 0:
            return
        valid = self._hs <= n  # horizons with a forecast aimed at this step
        rows = (n - self._hs) % H
        made = self._xmade[rows, :, self._cols].T  # (E, H): expert forecasts aimed at y
        err = np.abs(y - made)
        counted = valid & ~np.isnan(err)
        err = np.where(counted, err, 0.0)
        sel = self._sel_made[rows, :, self._cols].T  # (K, H)
        sel_err = err[sel, self._cols]
        d = np.where(counted, self._kdecay[:, None, None], 1.0)
        self._num = d * self._num + (1.0 - d) * err
        self._den = d * self._den + (1.0 - d)
        md = np.where(valid, self._meta_decay, 1.0)
        self._meta = md * self._meta + (1.0 - md) * sel_err
        keep = 1.0 - self.margin
        with np.errstate(invalid="ignore", divide="ignore"):
            score = np.where(self._den > 0, self._num / self._den, np.inf)
        best = score.argmin(axis=1)  # (K, H)
        k_idx = np.arange(best.shape[0])[:, None]
        cur_s = score[k_idx, self._leader, self._cols]
        best_s = score[k_idx, best, self._cols]
        self._leader = np.where(best_s < keep * cur_s, best, self._leader)
        best_k = self._meta.argmin(axis=0)
        cur_m = self._meta[self._pick, self._cols]
        best_m = self._meta[best_k, self._cols]
        self._pick = np.where(best_m < keep * cur_m, best_k, self._pick)

    def _refit(self, n: int) -> None:
        """Refit one member on the last `fit_window` observations (bounded cost: one warm start,
        at most 40 error evaluations over the window, i.e. milliseconds, not per tick)."""
        m = self._fittable[self._refits % len(self._fittable)]
        self._refits += 1
        window = np.roll(self._window, -((n + 1) % self.fit_window))  # oldest first
        p = m.params()
        extra = ({"period": m.period, "init_cycles": m.init_cycles}  # type: ignore[attr-defined]
                 if m.name == "holt_winters" else {})
        fit = fit_smoothing(m.name, list(window), start=p, n_starts=1, max_evals=40, **extra)
        new = {k: v for k, v in fit.params.items() if k in ("alpha", "beta", "gamma", "phi")}
        retune(m, **new)
        self.last_refit = {"member": m.name, "at": n + 1, "params": new,
                           "evaluations": fit.evaluations}

    def _member_points(self) -> np.ndarray:
        H = self.max_horizon
        return np.stack([m._made[(m._n - 1) % m.max_horizon, :H] for m in self.members])

    def _experts(self) -> np.ndarray:
        P = self._member_points()
        return np.vstack([P, (self.combination_weights() * P).sum(axis=0)])

    def _points(self) -> np.ndarray:
        """Called once per update (after the base counted it): records what each expert and
        selector forecast from this origin, so they can be scored when the targets arrive."""
        experts = self._experts()
        row = (self._n - 1) % self.max_horizon
        self._xmade[row] = np.where(self._ready()[:, None], experts, np.nan)
        self._sel_made[row] = self._leader
        return experts[self.chosen(), self._cols]

    def _ready(self) -> np.ndarray:
        return np.array([m.warmed_up for m in self.members] + [True])

    def _point(self, h: int) -> float:
        return float(self._experts()[self.chosen()[h - 1], h - 1])


def default_ensemble(max_horizon: int = 10, period: int | None = None,
                     refit_every: int | None = 300, fit_window: int = 1800,
                     **base) -> Ensemble:
    """The ensemble the optimizer uses when none is given: it starts from robust defaults and
    refits one smoothing member every `refit_every` steps on the last `fit_window` steps
    (milliseconds each, never per tick; None: never). Members do not calibrate their own
    intervals (only the ensemble's is used)."""
    kw = {"max_horizon": max_horizon, **base}
    mkw = {**kw, "adapt_rate": 0.0}
    members: list[Forecaster] = [
        Naive(**mkw),
        MovingAverage(window=10, **mkw),
        LinearTrend(window=30, **mkw),
        SimpleExponentialSmoothing(alpha=0.3, **mkw),
        Holt(alpha=0.3, beta=0.05, phi=0.9, **mkw),
    ]
    if period is not None:
        if period >= max_horizon:
            members.append(SeasonalNaive(period=period, **mkw))
        members.append(HoltWinters(period=period, **mkw))
    return Ensemble(members, refit_every=refit_every, fit_window=fit_window, **kw)
