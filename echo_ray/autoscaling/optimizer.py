"""ScalingOptimizer: decides a replica count from measured samples and a request-rate forecast.

One decision, as pure functions: `reactive_need` (what the measurements ask for),
`predictive_need` (what the forecast's upper bound at the lead time asks for), then one
`gate`: desired = gate(max(reactive, predictive)).

- Hysteresis band: [scale_down_threshold, scale_up_threshold] of utilisation. Above it (or on
  the latency, error or queue triggers) the target grows; below it the target shrinks to run
  the quiet spell's peak load (utilisation x replicas, over its last `scale_down_window_s`)
  at target_utilisation, which lands inside the band, so a change never calls for its own
  reversal. Inside it the target holds. The peak is a load, not a utilisation, and it is
  forgotten after the window: a spell that began on the tail of a load step (utilisation
  just under the band) would otherwise hold that size for as long as the spell lasts, and a
  real stop of the load would never scale down (issue 14's shrink).
- A backlog never sizes the deployment as steady demand: while requests wait (utilisation
  above 1, a queue, or replicas still starting) and the per-replica capacity is known, the
  need is the arrival rate at target utilisation, or the rate plus the backlog drained within
  `backlog_drain_s` flat out, whichever is more (`rate_need`).
- The predictive need comes from the forecast's upper bound, so a dip the interval calls
  noise does not lower the target.
- Gating, once: with `serve_gated` (ForecastPolicy, the simulator's "ours") Serve owns the
  bounds' enforcement on the target and the delays (upscale/downscale_delay_s), the change is
  measured from Serve's target (`Sample.target_replicas`), and the optimizer's cooldowns are
  off (`scale_down_window_s` only bounds how long a quiet spell's peak is remembered:
  ForecastPolicy sets it to Serve's `downscale_delay_s` unless given); without it (pools,
  own gate) `scale_up_cooldown_s`, `scale_down_cooldown_s` and `scale_down_window_s` apply. Bounds always apply; a target outside them is put back at
  once and starts no cooldown.

Cooldowns and windows run on the samples' clock (`Sample.t`), so replaying a trace faster than
real time gives the same decisions. The forecaster works on fixed steps of `forecast_step_s`
on that clock (mean request rate per step; steps with no sample are interpolated).
Pure Python, no Ray: a Ray actor wraps it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass, field

import numpy as np

from echo_ray.checks import integer, positive, real

from .config import ScalingConfig
from .cost import CostBenefit, assess_change
from .ensemble import default_ensemble
from .forecast import Forecast, Forecaster
from .nodes import node_horizon_steps, peak_ahead

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
    target_replicas: int | None = None  # the target the scaler applies now (Serve's), if known

    def __post_init__(self) -> None:
        real("t", self.t)
        if self.target_replicas is not None:
            integer("target_replicas", self.target_replicas, minimum=0)
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
    # replicas the forecast wants at the node start-up time (node_startup_s > 0), else None
    ahead_replicas: int | None = None

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


def fired_triggers(s: Sample, cfg: ScalingConfig) -> tuple[str, ...]:
    """The scale-up triggers that hold on this sample (above the band's top)."""
    return tuple(name for name, hit in zip(UP_TRIGGERS, (
        s.utilisation > cfg.scale_up_threshold,
        s.p95_latency_ms > cfg.target_latency_ms,
        s.error_rate > cfg.max_error_rate,
        s.queue_length > cfg.max_queue_length), strict=True) if hit)


def _ceil(x: float) -> int:
    return math.ceil(x - 1e-9)


def rate_need(rate: float, backlog: float, capacity: float, cfg: ScalingConfig) -> int:
    """Replicas for the arrival rate at the target utilisation, and enough to drain the
    backlog within `backlog_drain_s` running flat out: a backlog is a one-off debt, not
    steady demand, so it never sizes the deployment as if it kept arriving."""
    steady = _ceil(rate / (capacity * cfg.target_utilisation))
    drain = _ceil((rate + backlog / cfg.backlog_drain_s) / capacity)
    return max(steady, drain)


def reactive_need(s: Sample, cfg: ScalingConfig, capacity: float | None, base: int,
                  quiet: bool, quiet_peak_load: float, arrival_rate: float | None = None
                  ) -> tuple[int, tuple[str, ...]]:
    """Replicas the measurements ask for, and the triggers that fired.

    Above the band: with requests waiting (utilisation above 1, a queue, or replicas still
    starting) and a known capacity, `rate_need` at `arrival_rate` (the served rate plus the
    queue's growth: saturated replicas measure only what they serve, draining ones more than
    arrives); otherwise at least one more, or as many as
    bring the utilisation back to the target. Below the band (`quiet`): as many as run the
    spell's recent peak load (utilisation x replicas) at the target (a dip is sized by its
    highest point within the window, never above the current count). Inside the band: the
    current count.
    """
    current = s.replicas
    fired = fired_triggers(s, cfg)
    if fired:
        waiting = s.utilisation > 1.0 or s.queue_length > 0 or base > current
        if waiting and capacity:
            rate = s.request_rate if arrival_rate is None else arrival_rate
            return rate_need(rate, s.queue_length, capacity, cfg), fired
        return max(current + 1, _ceil(current * s.utilisation / cfg.target_utilisation)), fired
    if quiet:
        return min(current, _ceil(quiet_peak_load / cfg.target_utilisation)), ()
    return current, ()


def predictive_need(forecast: Forecast | None, capacity: float | None,
                    cfg: ScalingConfig) -> int | None:
    """Replicas for the forecast's upper bound at the lead time, at the target utilisation."""
    if forecast is None or not capacity:
        return None
    return _ceil(max(0.0, forecast.upper) / (capacity * cfg.target_utilisation))


def gate(base: int, wanted: int, cfg: ScalingConfig, t: float, quiet: bool,
         last_up_t: float | None, last_change_t: float | None
         ) -> tuple[int, str | None, tuple[str, ...]]:
    """The one gate: (desired, blocked_by, extra triggers).

    Bounds always apply. Up whenever more is wanted; down only when below the band (`quiet`),
    so the band [scale_down_threshold, scale_up_threshold] is the hysteresis. The cooldowns
    apply only when their times are given (own gate; None when Serve's delays gate).
    """
    bounded = min(max(wanted, cfg.min_instances), cfg.max_instances)
    if base < cfg.min_instances or base > cfg.max_instances:  # bounds regardless of cooldowns
        return bounded, None, ("min_instances" if base < cfg.min_instances
                               else "max_instances",)
    extra: tuple[str, ...] = ()
    desired, blocked = base, None
    if bounded > base:
        if last_up_t is not None and t - last_up_t < cfg.scale_up_cooldown_s:
            blocked = "scale_up_cooldown"
        else:
            desired = bounded
    elif bounded < base and quiet:
        extra = ("sustained_low_load",)
        if last_change_t is not None and t - last_change_t < cfg.scale_down_cooldown_s:
            blocked = "scale_down_cooldown"
        else:
            desired = bounded
    if blocked is None and wanted > cfg.max_instances and desired == base:
        blocked = "max_instances"
    return desired, blocked, extra


def roi_vetoes(cost: CostBenefit | None, desired: int, base: int, fired: tuple[str, ...],
               cfg: ScalingConfig) -> bool:
    """True when a change is priced and its benefit (violation time avoided, at the price of
    violation time) is below its cost (replica time): net < 0. Only changes the model can
    price and the metrics did not demand: never inside the bounds' corrections, never when a
    measured trigger fired (a measured SLO breach beats the queueing model)."""
    if cost is None or cost.p_violation_current is None or desired == base or fired:
        return False
    if not cfg.min_instances <= base <= cfg.max_instances:
        return False
    return cost.net < 0


class ScalingOptimizer:
    """Feed it samples with `observe`, ask `recommend()`; or do both with `step(sample)`."""

    def __init__(self, config: ScalingConfig | None = None,
                 forecaster: Forecaster | None = None, history: int = 1000,
                 capacity_window: int = 60, predictive: bool = True) -> None:
        if config is not None and not isinstance(config, ScalingConfig):
            raise ValueError(f"config must be a ScalingConfig, got {type(config).__name__}")
        if forecaster is not None and not isinstance(forecaster, Forecaster):
            raise ValueError(f"forecaster must be a Forecaster, got {type(forecaster).__name__}")
        self.config = config or ScalingConfig()
        self.predictive = bool(predictive)  # False: the reactive need alone (a baseline)
        self.forecaster = forecaster or default_ensemble(
            max_horizon=self.config.forecast_max_horizon, period=self.config.seasonal_period,
            interval_window=self.config.forecast_interval_window)
        self.decisions: deque[Decision] = deque(maxlen=integer("history", history, minimum=1))
        self._capacity: deque[float] = deque(maxlen=integer("capacity_window", capacity_window, minimum=1))
        self._traffic_seen = False  # no arrivals seen yet: the forecaster waits
        self._step: int | None = None  # current forecast step (floor(t / forecast_step_s))
        self._step_sum = 0.0
        self._step_count = 0
        self._last: Sample | None = None
        self._low_since: float | None = None  # start of the current quiet spell
        self._quiet_loads: deque[tuple[float, float]] = deque()  # (t, utilisation x replicas)
        self._queue: deque[tuple[float, float]] = deque(maxlen=256)  # (t, queue_length)
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
        self._queue.append((sample.t, sample.queue_length))
        rate = self.arrival_rate()
        assert rate is not None  # a sample was just recorded
        self._feed_forecaster(sample.t, rate)
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
            self._quiet_loads.clear()
        else:
            if self._low_since is None:
                self._low_since = sample.t
            # a running maximum over the window: loads kept in decreasing order
            load, loads = sample.utilisation * sample.replicas, self._quiet_loads
            while loads and loads[-1][1] <= load:
                loads.pop()
            loads.append((sample.t, load))
            while loads[0][0] < sample.t - cfg.scale_down_window_s:
                loads.popleft()

    def quiet_peak_load(self) -> float:
        """Highest load (utilisation x replicas, in replicas at 100%) of the quiet spell's
        last `scale_down_window_s`; 0 outside a spell."""
        return self._quiet_loads[0][1] if self._quiet_loads else 0.0

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

    def arrival_rate(self, window_s: float = 30.0) -> float | None:
        """Requests/s arriving: the served rate plus the queue's growth over `window_s`
        (negative while a backlog drains: then replicas serve more than arrives)."""
        if self._last is None:
            return None
        now, q_now = self._queue[-1]
        t0, q0 = next(((t, q) for t, q in self._queue if t >= now - window_s), (now, q_now))
        growth = (q_now - q0) / (now - t0) if now > t0 else 0.0
        return max(0.0, self._last.request_rate + growth)

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
        """The decision for the newest sample (asking again without a new sample repeats it):
        reactive need, predictive need, then one gate (see the module docstring)."""
        if self._last is None:
            raise ValueError("recommend needs at least one sample: call observe(sample) first")
        if self._decided_at == self._samples_seen and self.decisions:
            return self.decisions[-1]
        cfg, s = self.config, self._last
        base = self._base(s)
        capacity, capacity_source = self.capacity()
        quiet = self._quiet_now(s)
        reactive, fired = reactive_need(s, cfg, capacity, base, quiet, self.quiet_peak_load(),
                                        self.arrival_rate())
        h = self.horizon_steps()
        forecast, source = self._forecast(h)
        predictive = predictive_need(forecast, capacity, cfg)
        triggers = list(fired)
        if predictive is not None and predictive > base:
            triggers.append("forecast")
        wanted = max(reactive, predictive if predictive is not None else 0)
        last_up = None if cfg.serve_gated else self._last_up_t
        last_change = None if cfg.serve_gated else self._last_change_t
        desired, blocked, extra = gate(base, wanted, cfg, s.t, quiet, last_up, last_change)
        triggers += extra
        bounded = min(max(wanted, cfg.min_instances), cfg.max_instances)
        # priced: this decision's change of target (or, if blocked, the change it wanted)
        cost = self._assess(base, bounded if blocked else desired, forecast, source, h,
                            capacity, s)
        if cfg.roi_veto and roi_vetoes(cost, desired, base, fired, cfg):
            desired, blocked = base, "roi_veto"
        forced = min(max(base, cfg.min_instances), cfg.max_instances)  # the bounds alone
        if desired != forced:  # cooldowns start from changes the metrics asked for
            self._last_change_t = s.t
            if desired > forced:
                self._last_up_t = s.t
        self._target = desired
        ahead = None
        if cfg.node_startup_s > 0:  # the most replicas wanted at any step until a node is up
            ahead = peak_ahead((self._forecast(k)[0] for k in range(
                1, node_horizon_steps(cfg, self.forecaster.max_horizon) + 1)), capacity, cfg)
        action = ("scale_up" if desired > base else
                  "scale_down" if desired < base else "hold")
        decision = Decision(
            t=s.t, resource_type=cfg.resource_type, current_replicas=s.replicas,
            previous_target=base, desired_replicas=desired, action=action,
            triggers=tuple(triggers), blocked_by=blocked, reactive_need=reactive,
            predictive_need=predictive, capacity_rps=capacity,
            capacity_source=capacity_source, lead_time_s=cfg.lead_time_s, horizon_steps=h,
            sample=s, forecast=forecast, forecast_source=source, cost=cost,
            ahead_replicas=ahead)
        self.decisions.append(decision)
        self._decided_at = self._samples_seen
        return decision

    def _base(self, s: Sample) -> int:
        """The target the change is measured from: Serve's own when Serve gates (it owns the
        target), else the one this optimizer last decided (running count at first)."""
        if self.config.serve_gated and s.target_replicas is not None:
            return s.target_replicas
        return s.replicas if self._target is None else self._target

    def _quiet_now(self, s: Sample) -> bool:
        """Below the band for long enough to size down: now (Serve's downscale delay does the
        waiting) or for `scale_down_window_s` (own gate)."""
        if self.config.serve_gated:
            return self._low_since is not None
        return self._low_since is not None and s.t - self._low_since >= \
            self.config.scale_down_window_s

    def _forecast(self, h: int) -> tuple[Forecast | None, str]:
        if not self.predictive:
            return None, "none"
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
