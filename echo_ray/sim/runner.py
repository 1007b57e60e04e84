"""Capacity planning runs: size a trace, build the policies by name, simulate, compare.

`plan(trace, config, peak_replicas=40)` scales a trace so that its peak needs `peak_replicas`
(the fewest replicas whose steady-state p95 meets the SLO at that rate, under the law of the
configured router) and derives the static baselines: `static_peak` holds what the peak needs,
`static_mean` what the mean rate needs. `ray_default` and `ours` share the bounds
[min_replicas, max_replicas] and the deployment's max_ongoing_requests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from .arrivals import ClosedPopulation, RateTrace
from .config import SimConfig
from .engine import run_events
from .fluid import run_fluid
from .policies import OursPolicy, SimPolicy, StaticPolicy, ray_default
from .queueing import RHO_CAP, ResponseLaw, replicas_needed, routing_model
from .results import SimResult, comparison_table

POLICIES = ("ours", "ray_default", "static_peak", "static_mean")
MODES = ("event", "fluid")
SLO_QUANTILE = 0.95


def rate_limit(replicas: int, config: SimConfig) -> float:
    """Largest arrival rate at which `replicas` keep the steady-state p95 within the SLO."""
    mu = 1.0 / config.service.mean_s
    servers = replicas * config.concurrency
    model = routing_model(config.routing, config.concurrency)
    law = ResponseLaw(model, mu, None if model == "central" else config.max_ongoing_requests)
    slo = config.slo_ms / 1000.0
    if float(law.tail(slo, law.prepare(servers, 0.0))[0]) > 1.0 - SLO_QUANTILE:
        return 0.0
    lo, hi = 0.0, servers * mu * RHO_CAP
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if float(law.tail(slo, law.prepare(servers, mid / (servers * mu)))[0]) \
                <= 1.0 - SLO_QUANTILE:
            lo = mid
        else:
            hi = mid
    return lo


def needed(rate: float, config: SimConfig) -> int:
    """Replicas the steady-state law says `rate` needs to meet the SLO."""
    model = routing_model(config.routing, config.concurrency)
    servers = replicas_needed(rate, 1.0 / config.service.mean_s, config.slo_ms / 1000.0,
                              SLO_QUANTILE, model,
                              None if model == "central" else config.max_ongoing_requests)
    return max(1, math.ceil(servers / config.concurrency))


@dataclass
class Plan:
    """A sized workload and the bounds every policy gets."""

    workload: RateTrace | ClosedPopulation
    config: SimConfig
    min_replicas: int
    max_replicas: int
    peak_replicas: int  # what the peak needs (static_peak)
    mean_replicas: int  # what the mean needs (static_mean)
    scale: float = 1.0  # the factor applied to the trace's rates
    ours: dict = field(default_factory=dict)  # extra ScalingConfig fields for "ours"
    ours_options: dict = field(default_factory=dict)  # OursPolicy options (price_decisions...)

    def describe(self) -> dict:
        w = self.workload
        out = {"min_replicas": self.min_replicas, "max_replicas": self.max_replicas,
               "peak_replicas": self.peak_replicas, "mean_replicas": self.mean_replicas,
               "scale": self.scale, "duration_s": w.duration_s,
               "ours_scaling": self.ours_scaling(), "ours_options": dict(self.ours_options)}
        if isinstance(w, RateTrace):
            out.update(trace=w.name, bin_seconds=w.bin_seconds, peak_rps=w.peak_rate,
                       mean_rps=w.mean_rate)
        else:
            out.update(users=w.users, think_s=w.think_s)
        return out

    def ours_scaling(self) -> dict:
        """ScalingConfig fields for ours: the SLO as latency target, start-up as lead time."""
        return {"target_latency_ms": self.config.slo_ms, "lead_time_s": self.config.startup_s,
                **self.ours}


def plan(trace: RateTrace, config: SimConfig, peak_replicas: int | None = 40,
         max_factor: float = 1.5, min_replicas: int = 1, ours: dict | None = None,
         ours_options: dict | None = None) -> Plan:
    """Scale `trace` so its peak needs `peak_replicas` (None: keep its rates as they are)."""
    scale = 1.0
    if peak_replicas is not None:
        if trace.peak_rate <= 0:
            raise ValueError("trace must have a peak rate > 0 to be scaled")
        scale = rate_limit(peak_replicas, config) / trace.peak_rate
        trace = trace.scaled(scale)
    peak = needed(trace.peak_rate, config)
    mean = needed(trace.mean_rate, config)
    max_replicas = max(peak, math.ceil(peak * max_factor))
    return Plan(trace, config, min_replicas, max_replicas, peak, mean, scale, dict(ours or {}),
                dict(ours_options or {}))


def make_policy(name: str, p: Plan) -> SimPolicy:
    """One of POLICIES (also "ray-default", "ours_reactive", "static:N")."""
    key = name.strip().lower().replace("-", "_")
    if key == "ours":
        return OursPolicy(p.min_replicas, p.max_replicas, scaling=p.ours_scaling(),
                          **p.ours_options)
    if key == "ours_reactive":  # ours without the forecast (the reactive need alone)
        return OursPolicy(p.min_replicas, p.max_replicas, scaling=p.ours_scaling(),
                          **{**p.ours_options, "predictive": False}, name="ours_reactive")
    if key == "ray_default":
        return ray_default(p.min_replicas, p.max_replicas)
    if key == "static_peak":
        return StaticPolicy(p.peak_replicas, name="static_peak")
    if key == "static_mean":
        return StaticPolicy(p.mean_replicas, name="static_mean")
    if key.startswith("static:"):
        try:
            n = int(key.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"policy {name!r}: expected static:N with N an integer") from None
        return StaticPolicy(n, name=f"static_{n}")
    raise ValueError(f"policy must be one of {POLICIES} or static:N, got {name!r}")


def simulate(p: Plan, policy: str | SimPolicy, mode: str = "event") -> SimResult:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    pol = make_policy(policy, p) if isinstance(policy, str) else policy
    run = run_events if mode == "event" else run_fluid
    result = run(p.workload, pol, p.config)
    result.setup["plan"] = p.describe()
    return result


def compare(p: Plan, policies=POLICIES, mode: str = "event") -> tuple[list[SimResult],
                                                                      pd.DataFrame]:
    """Every policy on the same workload and seed; one table."""
    results = [simulate(p, name, mode) for name in policies]
    return results, comparison_table(results)
