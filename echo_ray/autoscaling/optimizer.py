"""ScalingOptimizer: decides a replica count from measured samples and a request-rate forecast.

desired = clamp(max(reactive need, predictive need), MIN_INSTANCES, MAX_INSTANCES)

- reactive need scales with the current size: when a scale-up trigger fires it is
  max(current + 1, ceil(current * utilisation / target_utilisation)) - except while replicas
  of an earlier scale-up are still starting, when it is max(target, ceil(request rate /
  (capacity * target_utilisation))): the backlog the running ones build until the others
  arrive is not steady demand; after a sustained quiet spell it is
  ceil(current * utilisation / target_utilisation); otherwise it is `current`.
  Utilisation above 1 means requests are waiting (ForecastPolicy's sample counts them, see
  policy.py), so one step can grow the target by more than 1 / target_utilisation.
- predictive need = ceil(upper forecast bound at the lead time / (per-replica capacity *
  target_utilisation)); the capacity is configured or measured from samples as the rate one
  replica serves per unit of utilisation.

The optimizer owns a target: once decided it is held (also while new replicas are still
starting and the samples show fewer) until a trigger or the forecast raises it, or a sustained
quiet spell lowers it. A target outside MIN/MAX_INSTANCES (e.g. 0 replicas while a deployment
registers) is put back inside at once and starts no cooldown; only a change beyond what the
bounds alone force does (else a deployment could not react to load for `scale_up_cooldown_s`
after it starts). Cooldowns and the "sustained" window run on the samples' clock (`Sample.t`),
so replaying a trace faster than real time gives the same decisions. The forecaster works on
fixed steps of `forecast_step_s` on that clock (mean request rate per step; steps with no
sample are interpolated), so it does not matter how often, or how regularly, samples arrive.
Pure Python, no Ray: a Ray actor wraps it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass, field

import numpy as np

from ._checks import integer, positive, real
from .config import ScalingConfig
from .cost import CostBenefit, assess_change
from .ensemble import default_ensemble
from .forecast import Forecast, Forecaster

UP_TRIGGERS = ("utilisation", "p95_latency", "error_rate", "queue_length")
MAX_GAP_STEPS = 1000  # at most this many missing forecast steps are interpolated


@dataclass(frozen=True, kw_only=True)
class Sample:
    """One measurement of a deployment (or pool) at time t (seconds, any monotone clock)."""

    t: float
    request_rate: float  # arriving requests per second
    utilisation: float  # load over capacity: ~ mean busy fraction, above 1 when requests
    #                     queue (ForecastPolicy: max(busy fraction, ongoing-derived))
    replicas: int
    ongoing_requests: float = 0.0
    p95_latency_ms: float = 0.0
    error_rate: float = 0.0  # failed fraction, 0..1
    queue_length: float = 0.0

    def __post_init__(self) -> None:
        real("t", self.t)
        for name in ("request_rate", "utilisation", "ongoing_requests", "p95_latency_ms",
                     "queue_length"):
            positive(name, getattr(self, name), strict=False)
        if not 0.0 <= real("error_rate", self.error_rate) <= 1.0:
            raise ValueError(f"error_rate must be in [0, 1], got {self.error_rate!r}")
        integer("replicas", self.replicas, minimum=0)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    """Everything that went into one recommendation, for the event log."""

    t: float
    resource_type: str
    current_replicas: int  # running, from the sample
    previous_target: int  # the target before this decision (running count at first)
    desired_replicas: int  # the new target
    action: str  # change of target: "scale_up" | "scale_down" | "hold"
    triggers: tuple[str, ...]  # why a change was wanted
    blocked_by: str | None  # why a wanted change was not made (cooldown, ...)
    reactive_need: int
    predictive_need: int | None
    capacity_rps: float | None  # per replica at 100% utilisation
    capacity_source: str  # "configured" | "measured" | "unknown"
    lead_time_s: float
    horizon_steps: int
    sample: Sample
    forecast: Forecast | None
    forecast_source: str  # "forecaster" | "override" | "none"
    cost: CostBenefit | None = field(default=None)

    @property
    def roi(self) -> float | None:
        return None if self.cost is None else self.cost.roi

    @property
    def verdict(self) -> str:
        return "neutral" if self.cost is None else self.cost.verdict

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (nested sample, forecast and cost)."""
        out = asdict(self)
        out["triggers"] = list(self.triggers)
        out["roi"] = self.roi
        out["verdict"] = self.verdict
        return out


class ScalingOptimizer:
    """Feed it samples with `observe`, ask `recommend()`; or do both with `step(sample)`."""

    def __init__(self, config: ScalingConfig | None = None,
                 forecaster: Forecaster | None = None, history: int = 1000,
                 capacity_window: int = 60) -> None:
        if config is not None and not isinstance(config, ScalingConfig):
            raise ValueError(f"config must be a ScalingConfig, got {type(config).__name__}")
        if forecaster is not None and not isinstance(forecaster, Forecaster):
            raise ValueError(f"forecaster must be a Forecaster, got {type(forecaster).__name__}")
        self.config = config or ScalingConfig()
        self.forecaster = forecaster or default_ensemble(
            max_horizon=self.config.forecast_max_horizon, period=self.config.seasonal_period)
        self.decisions: deque[Decision] = deque(maxlen=integer("history", history, minimum=1))
        self._capacity = deque(maxlen=integer("capacity_window", capacity_window, minimum=1))
        self._traffic_seen = False  # no arrivals seen yet: the forecaster waits
        self._step: int | None = None  # current forecast step (floor(t / forecast_step_s))
        self._step_sum = 0.0
        self._step_count = 0
        self._last: Sample | None = None
        self._low_since: float | None = None  # start of the current quiet spell
        self._last_up_t: float | None = None
        self._last_change_t: float | None = None
        self._override: Forecast | None = None
        self._target: int | None = None  # the replica count last decided
        self._samples_seen = 0
        self._decided_at = -1  # _samples_seen at the last decision

    # ---- inputs ------------------------------------------------------------------------
    def observe(self, sample: Sample) -> None:
        if not isinstance(sample, Sample):
            raise ValueError(f"sample must be a Sample, got {type(sample).__name__}")
        if self._last is not None and sample.t < self._last.t:
            raise ValueError(f"sample.t must not go backwards: got {sample.t} after "
                             f"{self._last.t}")
        self._last = sample
        self._samples_seen += 1
        self._feed_forecaster(sample.t, sample.request_rate)
        cfg = self.config
        # Capacity = rate served per unit of utilisation, so only from samples where that
        # ratio means something: some arrivals (else 0 req/s is recorded) and no overload
        # (above 1 the utilisation counts queued work, and the rate is capped by what runs).
        if (sample.replicas > 0 and 0.05 <= sample.utilisation <= 1.0
                and sample.request_rate > 0 and sample.error_rate <= cfg.max_error_rate):
            self._capacity.append(sample.request_rate / (sample.replicas * sample.utilisation))
        quiet = (sample.utilisation < cfg.scale_down_threshold
                 and sample.p95_latency_ms <= cfg.scale_down_latency_fraction
                 * cfg.target_latency_ms
                 and sample.error_rate <= cfg.scale_down_error_fraction * cfg.max_error_rate)
        if not quiet:
            self._low_since = None
        elif self._low_since is None:
            self._low_since = sample.t

    def _feed_forecaster(self, t: float, rate: float) -> None:
        """Average samples per step; a step is handed to the forecaster once it is complete.

        Samples before the first traffic are skipped: a new deployment's zeros say "no
        measurement yet", and forecasts made from them would score as huge errors that widen
        the interval (and over-provision) until they leave the error window.
        """
        if not self._traffic_seen:
            if rate <= 0:
                return
            self._traffic_seen = True
        step = math.floor(t / self.config.forecast_step_s)
        if self._step is not None and step == self._step:
            self._step_sum += rate
            self._step_count += 1
            return
        if self._step is not None:
            done = self._step_sum / self._step_count
            self.forecaster.update(done)
            missing = min(step - self._step - 1, MAX_GAP_STEPS)
            for k in range(1, missing + 1):  # steps without samples: straight line between
                self.forecaster.update(done + (rate - done) * k / (missing + 1))
        self._step, self._step_sum, self._step_count = step, rate, 1

    def set_forecast_override(self, forecast: Forecast | None) -> None:
        """Use this forecast instead of the model's (e.g. a known launch); None to clear."""
        if forecast is not None and not isinstance(forecast, Forecast):
            raise ValueError(f"forecast must be a Forecast or None, got {type(forecast).__name__}")
        self._override = forecast
        self._decided_at = -1  # the next recommend() decides afresh

    # ---- derived quantities --------------------------------------------------------------
    def capacity(self) -> tuple[float | None, str]:
        """Per-replica capacity (requests/s at 100% utilisation) and where it came from."""
        if self.config.replica_capacity_rps is not None:
            return self.config.replica_capacity_rps, "configured"
        if self._capacity:
            return float(np.median(self._capacity)), "measured"
        return None, "unknown"

    def horizon_steps(self) -> int:
        """Forecast steps from the newest complete step to now + lead time.

        The newest step the forecaster has seen ended at most one step ago, hence the +1.
        """
        ahead = math.ceil(self.config.lead_time_s / self.config.forecast_step_s - 1e-9) + 1
        return max(1, min(self.forecaster.max_horizon, ahead))

    def quiet_for(self) -> float:
        """Seconds the scale-down conditions have held (0 if they do not hold now)."""
        if self._low_since is None or self._last is None:
            return 0.0
        return self._last.t - self._low_since

    # ---- the decision --------------------------------------------------------------------
    def step(self, sample: Sample) -> Decision:
        self.observe(sample)
        return self.recommend()

    def recommend(self) -> Decision:
        """The decision for the newest sample (asking again without a new sample repeats it)."""
        if self._last is None:
            raise ValueError("recommend needs at least one sample: call observe(sample) first")
        if self._decided_at == self._samples_seen and self.decisions:
            return self.decisions[-1]
        cfg, s = self.config, self._last
        current = s.replicas
        base = current if self._target is None else self._target
        triggers: list[str] = []
        ratio_need = math.ceil(current * s.utilisation / cfg.target_utilisation - 1e-9)

        fired = [name for name, hit in zip(UP_TRIGGERS, (
            s.utilisation > cfg.scale_up_threshold,
            s.p95_latency_ms > cfg.target_latency_ms,
            s.error_rate > cfg.max_error_rate,
            s.queue_length > cfg.max_queue_length), strict=True) if hit]
        sustained_quiet = (self._low_since is not None
                           and s.t - self._low_since >= cfg.scale_down_window_s)
        capacity, capacity_source = self.capacity()
        if fired and base > current and capacity is not None and capacity > 0:
            # Replicas are still starting: the queue they will drain says nothing about the
            # steady need, so size from the arrival rate instead of the backlog.
            reactive = max(base, math.ceil(s.request_rate / (capacity * cfg.target_utilisation)
                                           - 1e-9))
            triggers += fired
        elif fired:
            reactive = max(current + 1, ratio_need)
            triggers += fired
        elif sustained_quiet:
            reactive = min(current, ratio_need)
        else:
            reactive = current

        h = self.horizon_steps()
        forecast, source = self._forecast(h)
        predictive = None
        if forecast is not None and capacity is not None and capacity > 0:
            upper = max(0.0, forecast.upper)
            predictive = math.ceil(upper / (capacity * cfg.target_utilisation) - 1e-9)
            if predictive > base:
                triggers.append("forecast")

        wanted = max(reactive, predictive if predictive is not None else 0)
        bounded = min(max(wanted, cfg.min_instances), cfg.max_instances)
        desired, blocked = base, None
        if base < cfg.min_instances or base > cfg.max_instances:
            desired = bounded  # bounds are enforced regardless of cooldowns
            triggers.append("min_instances" if base < cfg.min_instances else "max_instances")
        elif bounded > base:
            if self._last_up_t is not None and s.t - self._last_up_t < cfg.scale_up_cooldown_s:
                blocked = "scale_up_cooldown"
            else:
                desired = bounded
        elif bounded < base and sustained_quiet:  # down only after a sustained quiet spell
            triggers.append("sustained_low_load")
            if (self._last_change_t is not None
                    and s.t - self._last_change_t < cfg.scale_down_cooldown_s):
                blocked = "scale_down_cooldown"
            else:
                desired = bounded
        if blocked is None and wanted > cfg.max_instances and desired == base:
            blocked = "max_instances"

        action = ("scale_up" if desired > base else
                  "scale_down" if desired < base else "hold")
        forced = min(max(base, cfg.min_instances), cfg.max_instances)  # the bounds alone
        if desired != forced:  # cooldowns start from changes the metrics asked for
            self._last_change_t = s.t
            if desired > forced:
                self._last_up_t = s.t
        self._target = desired

        # priced: this decision's change of target (or, if blocked, the change it wanted)
        cost = self._assess(base, bounded if blocked else desired, forecast, source, h,
                            capacity, s)
        decision = Decision(
            t=s.t, resource_type=cfg.resource_type, current_replicas=current,
            previous_target=base, desired_replicas=desired, action=action,
            triggers=tuple(triggers), blocked_by=blocked, reactive_need=reactive,
            predictive_need=predictive, capacity_rps=capacity,
            capacity_source=capacity_source, lead_time_s=cfg.lead_time_s, horizon_steps=h,
            sample=s, forecast=forecast, forecast_source=source, cost=cost)
        self.decisions.append(decision)
        self._decided_at = self._samples_seen
        return decision

    def _forecast(self, h: int) -> tuple[Forecast | None, str]:
        if self._override is not None:
            return self._override, "override"
        if self.forecaster.n_observations == 0:
            return None, "none"
        f = self.forecaster.forecast(h)
        return (f, "forecaster") if f.calibrated else (None, "none")

    def _assess(self, before: int, after: int, forecast: Forecast | None, source: str,
                h: int, capacity: float | None, s: Sample) -> CostBenefit:
        """Cost-benefit of going from `before` to `after` replicas at the forecast rate."""
        cfg = self.config
        if forecast is None:
            rates = np.array([s.request_rate])
        elif source == "forecaster":  # point forecast plus this model's recent h-step errors
            rates = np.maximum(forecast.point + self.forecaster.residuals(h), 0.0)
        else:
            rates = np.array([max(forecast.point, 0.0)])
        return assess_change(
            before, after, rates, capacity,
            target_latency_s=cfg.target_latency_ms / 1000.0, window_s=cfg.cost_window_s,
            price_per_replica_hour=cfg.price_per_replica_hour,
            violation_cost_per_hour=cfg.violation_cost_per_hour,
            latency_percentile=cfg.latency_percentile, roi_threshold=cfg.roi_threshold)

    def history(self) -> list[dict]:
        """Recorded decisions as plain dicts, oldest first."""
        return [d.to_dict() for d in self.decisions]
