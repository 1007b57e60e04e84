"""Scaling policies for the simulator: static, Ray Serve's default, and ours.

Serve-driven policies go through Ray's own code on the simulated clock, as Serve's controller
would run them:

- metrics: the handle records ongoing (running + queued) requests every
  `look_back_period_s * RAY_SERVE_AUTOSCALING_METRIC_RECORD_INTERVAL_FACTOR` seconds (capped by
  `metrics_interval_s`) and pushes the points of the last `look_back_period_s` every
  `metrics_interval_s`; replicas do the same with `record_autoscaling_stats()` custom metrics.
  The controller reduces what was pushed with Ray's `aggregate_timeseries` (time-weighted mean,
  the last point held until now), exactly like `DeploymentAutoscalingState`;
- the decision: an `AutoscalingContext` built from that state is handed to the policy function
  (`replica_queue_length_autoscaling_policy` for `ray_default`), then Ray's own
  `_apply_scaling_factors` and `_apply_delay_logic` run with `_now` = simulated time (Ray's
  wrapper `_apply_autoscaling_config` would read the wall clock), then min/max bounds, as
  `get_decision_num_replicas` does.

"ours" is the production path minus the actor hop: `ForecastPolicy`'s sample
(`sample_from_context`) feeds the pure `ScalingOptimizer`, whose target then gets the same Serve
delays/factors/bounds from the deployment config `forecast_autoscaling_config` builds.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from echo_ray.checks import integer

DEPLOYMENT = "sim"
APP = "sim"


@dataclass
class Observation:
    """What a deployment looks like at control tick t (all counts are instantaneous)."""

    t: float
    running: int  # replicas serving
    starting: int  # replicas provisioned, not ready yet
    target: int  # the target last decided
    ongoing: float  # requests at replicas (serving or queued there) + queued at the handle
    queued: float  # requests waiting at the handle
    window: Callable[[float], dict] = field(repr=False)  # request_rate/p95_latency_ms/error_rate


class SimPolicy(ABC):
    """Decides the target replica count once per control tick."""

    name: str = "policy"
    min_replicas: int = 1
    max_replicas: int = 1

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.decision_s = 0.0  # time spent deciding (wall clock)
        self.decisions = 0

    def initial_replicas(self) -> int:
        return self.min_replicas

    def decide(self, obs: Observation) -> int:
        t0 = time.perf_counter()
        target, reason = self._decide(obs)
        self.decision_s += time.perf_counter() - t0
        self.decisions += 1
        if target != obs.target:
            self.events.append({"t": obs.t, "policy": self.name, "from": obs.target,
                                "to": target, "running": obs.running, "reason": reason})
        return target

    @property
    def decision_ms(self) -> float:
        """Mean wall-clock milliseconds per decision."""
        return 1000.0 * self.decision_s / max(self.decisions, 1)

    @abstractmethod
    def _decide(self, obs: Observation) -> tuple[int, str]:
        """(target, reason)"""

    def describe(self) -> dict:
        return {"name": self.name, "min_replicas": self.min_replicas,
                "max_replicas": self.max_replicas}


class StaticPolicy(SimPolicy):
    """A fixed replica count (static provisioning)."""

    def __init__(self, replicas: int, name: str = "static") -> None:
        super().__init__()
        self.replicas = integer("replicas", replicas, minimum=1)
        self.min_replicas = self.max_replicas = self.replicas
        self.name = name

    def _decide(self, obs: Observation) -> tuple[int, str]:
        return self.replicas, "static"

    def describe(self) -> dict:
        return {**super().describe(), "replicas": self.replicas}


# ---- Serve's metrics pipeline and decision wrapper, on the simulated clock -------------------
class ServeMetrics:
    """The controller's view of a deployment's metrics (see the module docstring)."""

    def __init__(self, config, custom: tuple[str, ...] = ()) -> None:
        from ray.serve._private.constants import (
            RAY_SERVE_AUTOSCALING_METRIC_RECORD_INTERVAL_FACTOR,
        )

        self.config = config
        self.custom = custom
        self.record_s = min(config.look_back_period_s
                            * RAY_SERVE_AUTOSCALING_METRIC_RECORD_INTERVAL_FACTOR,
                            config.metrics_interval_s)
        self.push_s = config.metrics_interval_s
        self.look_back_s = config.look_back_period_s
        self._next_record = 0.0
        self._next_push = self.push_s
        self._recorded: list[tuple[float, dict]] = []
        self._pushed: dict[str, list] = {}

    def align(self, router_start_s: float) -> None:
        """Put the handle's record and push timers where a live router's are: it started
        at `router_start_s` (<= 0: before the run, e.g. at the first readiness probe) and
        records, then pushes, at once and every interval after (Serve's MetricsPusher)."""
        def first(interval: float) -> float:
            return router_start_s + math.ceil(-router_start_s / interval - 1e-9) * interval

        self._next_record = first(self.record_s)
        self._next_push = first(self.push_s)

    def update(self, obs: Observation) -> None:
        from ray.serve._private.common import TimeStampedValue

        while self._next_record <= obs.t + 1e-9:
            values = {"ongoing": float(obs.ongoing), "queued": float(obs.queued)}
            if self.custom:  # ReplicaLoad's default 10 s window
                window = obs.window(10.0)
                values.update({k: window[k] for k in self.custom})
            self._recorded.append((self._next_record, values))
            self._next_record += self.record_s
        while self._next_push <= obs.t + 1e-9:
            start = self._next_push - self.look_back_s  # prune_keys_and_compact_data
            self._recorded = [(t, v) for t, v in self._recorded if t >= start]
            keys = self._recorded[-1][1].keys() if self._recorded else ()
            self._pushed = {k: [TimeStampedValue(t, float(v[k])) for t, v in self._recorded]
                            for k in keys}
            self._next_push += self.push_s

    def aggregate(self, key: str, now: float) -> float:
        """`_merge_and_aggregate_timeseries` for one source."""
        from ray.serve._private.metrics_utils import aggregate_timeseries

        series = self._pushed.get(key)
        if not series:
            return 0.0
        last_window_s = now - series[-1].timestamp
        if last_window_s <= 0:
            last_window_s = 1e-3
        value = aggregate_timeseries(series, aggregation_function=self.config.aggregation_function,
                                     last_window_s=last_window_s)
        return 0.0 if value is None else float(value)

    def custom_metrics(self, now: float) -> dict:
        if not self.custom:
            return {}
        return {k: {"sim-replicas": self.aggregate(k, now)} for k in self.custom
                if k in self._pushed}


def ray_decide(policy_function: Callable, ctx) -> tuple[int, dict]:
    """Ray's `_apply_autoscaling_config(policy_function)(ctx)` with `_now=ctx.current_time`,
    then `get_decision_num_replicas`' ceil and bounds."""
    from ray.serve.autoscaling_policy import (
        _apply_delay_logic,
        _apply_scaling_factors,
        _extract_internal_policy_state,
        _get_cold_start_scale_up_replicas,
    )

    cold = _get_cold_start_scale_up_replicas(ctx)
    if cold is not None:
        decision, state = cold, ctx.policy_state
    else:
        policy_state = ctx.policy_state.copy()
        desired, user_state = policy_function(ctx)
        internal = _extract_internal_policy_state(policy_state)
        desired = _apply_scaling_factors(desired, ctx.current_num_replicas, ctx.config)
        if ctx.current_num_replicas == 0 and desired > 0:
            decision, updated = desired, internal
        else:
            decision, updated = _apply_delay_logic(max(0, desired), ctx.target_num_replicas,
                                                   ctx.config, internal,
                                                   _now=ctx.current_time)
        state = dict(user_state or {})
        state.update(updated)
    if isinstance(decision, float):
        decision = math.ceil(decision)
    bounded = max(ctx.capacity_adjusted_min_replicas,
                  min(ctx.capacity_adjusted_max_replicas, int(decision)))
    return bounded, state


class ServePolicy(SimPolicy):
    """Any Serve autoscaling policy function, run as Serve's controller runs it."""

    def __init__(self, config, policy_function: Callable | None = None,
                 name: str = "ray_default", custom_metrics: tuple[str, ...] = ()) -> None:
        super().__init__()
        from ray.serve.autoscaling_policy import replica_queue_length_autoscaling_policy
        from ray.serve.config import AutoscalingConfig

        if isinstance(config, Mapping):
            config = AutoscalingConfig(**config)
        if not isinstance(config, AutoscalingConfig):
            raise ValueError(f"config must be an AutoscalingConfig or dict, got "
                             f"{type(config).__name__}")
        self.config = config
        self.policy_function = policy_function or replica_queue_length_autoscaling_policy
        self.name = name
        self.min_replicas, self.max_replicas = config.min_replicas, config.max_replicas
        self.metrics = ServeMetrics(config, custom_metrics)
        self.state: dict[str, Any] = {}
        self.last_up: float | None = None
        self.last_down: float | None = None
        self.last_ctx = None

    def initial_replicas(self) -> int:
        if self.config.initial_replicas is not None:
            return self.config.initial_replicas
        return self.min_replicas

    def context(self, obs: Observation):
        from ray.serve._private.common import DeploymentID
        from ray.serve.config import AutoscalingContext

        self.metrics.update(obs)
        now = obs.t
        return AutoscalingContext(
            deployment_id=DeploymentID(name=DEPLOYMENT, app_name=APP), deployment_name=DEPLOYMENT,
            app_name=APP, current_num_replicas=obs.running, target_num_replicas=obs.target,
            running_replicas=[], total_num_requests=self.metrics.aggregate("ongoing", now),
            total_queued_requests=self.metrics.aggregate("queued", now),
            aggregated_metrics=self.metrics.custom_metrics(now), raw_metrics={},
            capacity_adjusted_min_replicas=self.min_replicas,
            capacity_adjusted_max_replicas=self.max_replicas, policy_state=self.state,
            last_scale_up_time=self.last_up, last_scale_down_time=self.last_down,
            current_time=now, config=self.config)

    def _decide(self, obs: Observation) -> tuple[int, str]:
        ctx = self.context(obs)
        self.last_ctx = ctx
        target, self.state = ray_decide(self.policy_function, ctx)
        if target > obs.target:
            self.last_up = obs.t
        elif target < obs.target:
            self.last_down = obs.t
        return target, self._reason(ctx)

    def _reason(self, ctx) -> str:
        return f"total_num_requests={ctx.total_num_requests:.2f}"

    def describe(self) -> dict:
        cfg = self.config
        return {**super().describe(), "target_ongoing_requests": cfg.target_ongoing_requests,
                "upscale_delay_s": cfg.upscale_delay_s,
                "downscale_delay_s": cfg.downscale_delay_s,
                "look_back_period_s": cfg.look_back_period_s,
                "metrics_interval_s": cfg.metrics_interval_s,
                "upscaling_factor": cfg.get_upscaling_factor(),
                "downscaling_factor": cfg.get_downscaling_factor(),
                "policy": getattr(self.policy_function, "__name__", str(self.policy_function))}


def ray_default(min_replicas: int = 1, max_replicas: int = 10, **fields) -> ServePolicy:
    """Serve's default policy with Ray 2.60's default AutoscalingConfig (bounds given)."""
    return ServePolicy({"min_replicas": min_replicas, "max_replicas": max_replicas, **fields},
                       name="ray_default")


def decision_record(d) -> dict:
    """The flat fields of an optimizer Decision that reports need."""
    f, c, s = d.forecast, d.cost, d.sample
    return {"t": d.t, "replicas": d.current_replicas, "previous_target": d.previous_target,
            "desired": d.desired_replicas, "action": d.action, "triggers": ",".join(d.triggers),
            "blocked_by": d.blocked_by, "reactive_need": d.reactive_need,
            "predictive_need": d.predictive_need, "capacity_rps": d.capacity_rps,
            "request_rate": s.request_rate, "utilisation": s.utilisation,
            "p95_latency_ms": s.p95_latency_ms, "queue_length": s.queue_length,
            "horizon_steps": d.horizon_steps,
            "forecast_point": None if f is None else f.point,
            "forecast_lower": None if f is None else f.lower,
            "forecast_upper": None if f is None else f.upper,
            "forecast_coverage": None if f is None else f.coverage,
            "roi": None if c is None else c.roi, "verdict": d.verdict,
            "net": None if c is None else c.net, "cost": None if c is None else c.cost,
            "benefit": None if c is None else c.benefit}


def _unpriced_optimizer_class():
    from echo_ray.autoscaling.optimizer import ScalingOptimizer

    class UnpricedOptimizer(ScalingOptimizer):
        """The same targets without the cost-benefit estimate, which only annotates a
        decision (it never changes `desired_replicas`) and is most of a step's cost."""

        def _assess(self, *args, **kwargs):
            return None

    return UnpricedOptimizer


class OursPolicy(ServePolicy):
    """ForecastPolicy's decision path with the pure ScalingOptimizer in-process.

    Replicas report `request_rate`, `p95_latency_ms` and `error_rate` (what `ReplicaLoad`
    measures) and, with `report_utilisation` (default), their busy fraction as `utilisation`;
    ForecastPolicy's sample (`sample_from_context`) takes the larger of that and the
    utilisation it derives from ongoing requests (without it, the derived one alone), so a
    saturated busy fraction cannot hide a queue. `price_decisions=False` skips the
    optimizer's cost-benefit annotation (same targets, several times faster: long runs);
    `predictive=False` is the reactive-only variant (no forecast: a baseline for the forecast);
    `poll_interval_s` is ForecastPolicy's: how often the optimizer is asked (0: every tick).
    """

    def __init__(self, min_replicas: int = 1, max_replicas: int = 10,
                 scaling: Mapping[str, Any] | None = None,
                 serve_fields: Mapping[str, Any] | None = None, name: str = "ours",
                 report_utilisation: bool = True, price_decisions: bool = True,
                 poll_interval_s: float = 0.0, keep_records: bool = False,
                 predictive: bool = True) -> None:
        from echo_ray.autoscaling.config import ScalingConfig
        from echo_ray.autoscaling.optimizer import Sample, ScalingOptimizer
        from echo_ray.autoscaling.policy import forecast_autoscaling_config, sample_from_context

        scaling = dict(scaling or {})
        config = forecast_autoscaling_config(scaling, min_replicas=min_replicas,
                                             max_replicas=max_replicas, **dict(serve_fields or {}))
        custom = ("request_rate", "p95_latency_ms", "error_rate")
        if report_utilisation:
            custom += ("utilisation",)
        super().__init__(config, self._optimizer_target, name=name, custom_metrics=custom)
        self.report_utilisation = report_utilisation
        self.scaling = ScalingConfig.from_dict({  # ForecastPolicy.config_for's defaults
            "min_instances": min_replicas, "max_instances": max_replicas, "serve_gated": True,
            "scale_down_window_s": float(config["downscale_delay_s"]), **scaling})
        self.optimizer = (ScalingOptimizer if price_decisions
                          else _unpriced_optimizer_class())(self.scaling, predictive=predictive)
        self.predictive = predictive
        self.price_decisions = price_decisions
        self.poll_interval_s = float(poll_interval_s)
        self._polled_at = -math.inf
        self.keep_records = keep_records
        self.records: list[dict] = []  # one per optimizer step when keep_records
        self._sample_cls = Sample
        self._sample_from_context = sample_from_context
        self.optimizer_s = 0.0
        self.last_decision = None

    def _optimizer_target(self, ctx) -> tuple[int, dict]:
        if self.last_decision is not None \
                and ctx.current_time - self._polled_at < self.poll_interval_s - 1e-9:
            return self.last_decision.desired_replicas, {}  # ForecastPolicy's cached answer
        self._polled_at = ctx.current_time
        sample = self._sample_from_context(ctx, self.scaling.target_utilisation)
        t0 = time.perf_counter()
        decision = self.optimizer.step(self._sample_cls(**sample))
        self.optimizer_s += time.perf_counter() - t0
        self.last_decision = decision
        if self.keep_records:
            self.records.append(decision_record(decision))
        return decision.desired_replicas, {}

    def _reason(self, ctx) -> str:
        d = self.last_decision
        if d is None:
            return "cold start"
        why = ",".join(d.triggers) or "-"
        return (f"optimizer target {d.desired_replicas} (triggers {why}"
                + (f"; blocked by {d.blocked_by}" if d.blocked_by else "") + ")")

    @property
    def optimizer_ms(self) -> float:
        """Mean wall-clock ms of ScalingOptimizer.step alone."""
        return 1000.0 * self.optimizer_s / max(self.decisions, 1)

    def describe(self) -> dict:
        out = super().describe()
        out["report_utilisation"] = self.report_utilisation
        out["price_decisions"] = self.price_decisions
        out["poll_interval_s"] = self.poll_interval_s
        out["predictive"] = self.predictive
        out["scaling_config"] = {k: v for k, v in self.scaling.to_dict().items()
                                 if k in ("target_utilisation", "scale_up_threshold",
                                          "scale_down_threshold", "target_latency_ms",
                                          "lead_time_s", "scale_down_window_s",
                                          "serve_gated", "backlog_drain_s",
                                          "scale_up_cooldown_s", "scale_down_cooldown_s",
                                          "replica_capacity_rps")}
        return out
