"""Scaling policy settings for one resource type (Serve replicas, agent actors, membranes...).

One frozen dataclass, built in Python or from a dict (Serve `policy_kwargs`, YAML). The
environment variables (`SCALE_UP_THRESHOLD`, `MIN_INSTANCES`, ...) are read by echo_ray.settings:
`get_settings().scaling.config()` is the ScalingConfig they describe.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from echo_ray.checks import in_range, integer, positive


@dataclass(frozen=True)
class ScalingConfig:
    """Thresholds, bounds, cooldowns and prices for one resource type.

    Times are seconds on the samples' own clock (`Sample.t`), never the wall clock.
    """

    resource_type: str = "serve_replica"
    min_instances: int = 1
    max_instances: int = 4  # MAX_INSTANCES; one default, also the served worker's
    # Scale up when ANY of these holds on the latest sample.
    scale_up_threshold: float = 0.8  # utilisation above this
    target_latency_ms: float = 400.0  # p95 latency above this
    max_error_rate: float = 0.05  # error fraction above this
    max_queue_length: float = 50.0  # queued requests above this
    # Scale down only when ALL of these have held for `scale_down_window_s`.
    # [scale_down_threshold, scale_up_threshold] is the hysteresis band: inside it the target
    # holds; after a change the utilisation lands at target_utilisation, inside the band.
    scale_down_threshold: float = 0.5  # utilisation below this
    scale_down_latency_fraction: float = 0.5  # p95 below this fraction of the target
    scale_down_error_fraction: float = 0.2  # error rate below this fraction of the maximum
    # Also how long a quiet spell's peak load sizes the scale-down (then it is forgotten).
    scale_down_window_s: float = 60.0
    # Sizing: replicas needed so each runs at this utilisation.
    target_utilisation: float = 0.7
    scale_up_cooldown_s: float = 30.0  # since the last scale-up
    scale_down_cooldown_s: float = 120.0  # since the last change in either direction
    lead_time_s: float = 10.0  # replica start-up time: how far ahead to forecast
    backlog_drain_s: float = 60.0  # a backlog is sized to drain within this, flat out
    # Serve gates: Serve applies the bounds and its upscale/downscale delays on top of the
    # answer, so the cooldowns here are off (no double gating), and scale_down_window_s only
    # bounds the quiet spell's remembered peak (ForecastPolicy: Serve's downscale_delay_s).
    serve_gated: bool = False
    replica_capacity_rps: float | None = None  # per replica at 100% busy; None = measure it
    forecast_step_s: float = 1.0  # the forecaster sees one mean request rate per step
    forecast_max_horizon: int = 30  # steps the default forecaster can look ahead
    seasonal_period: int | None = None  # samples per season for Holt-Winters (None = off)
    # how many recent forecast errors calibrate the forecast's interval (its upper bound sizes
    # the node request): shorter forgets a regime sooner (e.g. errors made before a season
    # was learnt), longer is steadier
    forecast_interval_window: int = 500
    # Nodes ahead of demand (nodes.py): when the forecast at `node_startup_s` wants more
    # replicas than run, ask Ray's autoscaler for room for them (request_resources,
    # one bundle of `replica_resources` per replica); 0 or no resources: off.
    node_startup_s: float = 0.0
    replica_resources: dict[str, float] | None = None  # e.g. {"CPU": 1}: one replica's
    # Cost-benefit.
    price_per_replica_hour: float = 0.096  # stand-in: AWS m5.large on-demand list price
    violation_cost_per_hour: float = 10.0  # what an hour of SLO violation costs you
    cost_window_s: float = 300.0  # how long a change is assumed to stay in place
    latency_percentile: float = 0.95  # the SLO percentile (p95 < target latency)
    roi_threshold: float = 0.1  # |ROI| below this is "neutral"
    # Veto a change the metrics did not demand (forecast or scale-down) whose priced benefit
    # is below its cost; recorded in the decision as blocked_by "roi_veto". Off by default
    # until validated: the M/M/c model prices the target-utilisation headroom at nothing.
    roi_veto: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.resource_type, str) or not self.resource_type:
            raise ValueError(f"resource_type must be a non-empty string, got "
                             f"{self.resource_type!r}")
        integer("min_instances", self.min_instances, minimum=0)
        integer("max_instances", self.max_instances, minimum=1)
        if self.max_instances < self.min_instances:
            raise ValueError(f"max_instances must be >= min_instances={self.min_instances}, "
                             f"got {self.max_instances}")
        for name in ("scale_up_threshold", "scale_down_threshold", "target_utilisation"):
            in_range(name, getattr(self, name), 0.0, 1.0, lo_open=True)
        if not self.scale_down_threshold < self.target_utilisation < self.scale_up_threshold:
            raise ValueError(
                "target_utilisation must lie between scale_down_threshold and "
                f"scale_up_threshold, got {self.scale_down_threshold} < "
                f"{self.target_utilisation} < {self.scale_up_threshold}")
        positive("target_latency_ms", self.target_latency_ms)
        in_range("max_error_rate", self.max_error_rate, 0.0, 1.0)
        positive("max_queue_length", self.max_queue_length, strict=False)
        in_range("scale_down_latency_fraction", self.scale_down_latency_fraction, 0.0, 1.0)
        in_range("scale_down_error_fraction", self.scale_down_error_fraction, 0.0, 1.0)
        for name in ("scale_down_window_s", "scale_up_cooldown_s", "scale_down_cooldown_s",
                     "lead_time_s", "price_per_replica_hour", "violation_cost_per_hour",
                     "roi_threshold"):
            positive(name, getattr(self, name), strict=False)
        positive("cost_window_s", self.cost_window_s)
        positive("backlog_drain_s", self.backlog_drain_s)
        for name in ("serve_gated", "roi_veto"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a bool, got {getattr(self, name)!r}")
        positive("forecast_step_s", self.forecast_step_s)
        positive("node_startup_s", self.node_startup_s, strict=False)
        if self.replica_resources is not None:
            if not isinstance(self.replica_resources, Mapping) or not self.replica_resources \
                    or any(not isinstance(k, str) or isinstance(v, bool)
                           or not isinstance(v, (int, float)) or v < 0
                           for k, v in self.replica_resources.items()):
                raise ValueError("replica_resources must be a non-empty mapping of resource "
                                 f"names to numbers >= 0, got {self.replica_resources!r}")
            object.__setattr__(self, "replica_resources",
                               {k: float(v) for k, v in self.replica_resources.items()})
        in_range("latency_percentile", self.latency_percentile, 0.0, 1.0, lo_open=True,
                 hi_open=True)
        if self.replica_capacity_rps is not None:
            positive("replica_capacity_rps", self.replica_capacity_rps)
        integer("forecast_max_horizon", self.forecast_max_horizon, minimum=1)
        integer("forecast_interval_window", self.forecast_interval_window, minimum=2)
        if self.seasonal_period is not None:
            integer("seasonal_period", self.seasonal_period, minimum=2)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> ScalingConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, values: Mapping) -> ScalingConfig:
        """Build from a mapping (e.g. Serve `policy_kwargs`); unknown keys raise ValueError."""
        if not isinstance(values, Mapping):
            raise ValueError(f"values must be a mapping, got {type(values).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"values has unknown ScalingConfig keys {unknown}; "
                             f"expected some of {sorted(names)}")
        return cls(**dict(values))
