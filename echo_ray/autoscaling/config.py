"""Scaling policy settings for one resource type (Serve replicas, agent actors, membranes...).

One frozen dataclass, built in Python, from a dict (Serve `policy_kwargs`, YAML), or from the
environment (`SCALE_UP_THRESHOLD`, `MIN_INSTANCES`, ... : each field's name in upper case,
optionally behind a prefix).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass

from ._checks import in_range, integer, positive


@dataclass(frozen=True)
class ScalingConfig:
    """Thresholds, bounds, cooldowns and prices for one resource type.

    Times are seconds on the samples' own clock (`Sample.t`), never the wall clock.
    """

    resource_type: str = "serve_replica"
    min_instances: int = 1
    max_instances: int = 10
    # Scale up when ANY of these holds on the latest sample.
    scale_up_threshold: float = 0.8  # utilisation above this
    target_latency_ms: float = 400.0  # p95 latency above this
    max_error_rate: float = 0.05  # error fraction above this
    max_queue_length: float = 50.0  # queued requests above this
    # Scale down only when ALL of these have held for `scale_down_window_s`.
    scale_down_threshold: float = 0.3  # utilisation below this
    scale_down_latency_fraction: float = 0.5  # p95 below this fraction of the target
    scale_down_error_fraction: float = 0.2  # error rate below this fraction of the maximum
    scale_down_window_s: float = 60.0
    # Sizing: replicas needed so each runs at this utilisation.
    target_utilisation: float = 0.7
    scale_up_cooldown_s: float = 30.0  # since the last scale-up
    scale_down_cooldown_s: float = 120.0  # since the last change in either direction
    lead_time_s: float = 10.0  # replica start-up time: how far ahead to forecast
    replica_capacity_rps: float | None = None  # per replica at 100% busy; None = measure it
    forecast_step_s: float = 1.0  # the forecaster sees one mean request rate per step
    forecast_max_horizon: int = 30  # steps the default forecaster can look ahead
    seasonal_period: int | None = None  # samples per season for Holt-Winters (None = off)
    # Cost-benefit.
    price_per_replica_hour: float = 0.096  # stand-in: AWS m5.large on-demand list price
    violation_cost_per_hour: float = 10.0  # what an hour of SLO violation costs you
    cost_window_s: float = 300.0  # how long a change is assumed to stay in place
    latency_percentile: float = 0.95  # the SLO percentile (p95 < target latency)
    roi_threshold: float = 0.1  # |ROI| below this is "neutral"

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
        positive("forecast_step_s", self.forecast_step_s)
        in_range("latency_percentile", self.latency_percentile, 0.0, 1.0, lo_open=True,
                 hi_open=True)
        if self.replica_capacity_rps is not None:
            positive("replica_capacity_rps", self.replica_capacity_rps)
        integer("forecast_max_horizon", self.forecast_max_horizon, minimum=1)
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

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, prefix: str = "",
                 **overrides) -> ScalingConfig:
        """Read `<prefix><FIELD>` variables (e.g. `SCALE_UP_THRESHOLD=0.8`, `MIN_INSTANCES=2`).

        Unset variables keep the defaults; `overrides` win over the environment. An empty value
        for `REPLICA_CAPACITY_RPS` or `SEASONAL_PERIOD` means None.
        """
        env = os.environ if environ is None else environ
        values: dict = {}
        for f in dataclasses.fields(cls):
            key = f"{prefix}{f.name.upper()}"
            if key not in env:
                continue
            raw = env[key].strip()
            kind = str(f.type)
            try:
                if f.name == "resource_type":
                    values[f.name] = raw
                elif "None" in kind and raw in ("", "none", "None"):
                    values[f.name] = None
                elif kind.startswith("int"):
                    values[f.name] = int(raw)
                else:
                    values[f.name] = float(raw)
            except ValueError:
                raise ValueError(f"environment variable {key} must be a number "
                                 f"({kind}), got {raw!r}") from None
        values.update(overrides)
        return cls.from_dict(values)
