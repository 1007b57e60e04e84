"""ScalabilityManager: one place applying per-resource-type scaling policies.

A policy is a `ScalingConfig` (min, max, thresholds, cooldowns, price per replica-hour) per
resource type. The manager drives three kinds of resource:

- Serve deployments ("serve_replica"): Serve itself resizes them, through `ForecastPolicy` and
  the `ScalingOptimizerActor`. The manager builds the deployment's `autoscaling_config` from
  the policy (`serve_autoscaling_config`), configures the actor, sets forecast overrides and
  reads the actor's decisions, events and usage.
- Agent pools ("agent"): an `AgentPool` of Ray actors. `autoscale(name)` measures the pool,
  decides, and really adds or kills actors.
- DTESN membrane actors ("dtesn_membrane"): a `DTESNSystem`; `observe(name, sample)` with a
  measured sample decides and regroups the membrane tree over more or fewer actors
  (`DTESNSystem.resize`, which keeps the reservoir state). At most one actor per membrane.

Pools and DTESN systems are decided in-process (the manager owns them), with the same
`ScalingOptimizerState` the actor wraps, so events, usage and metrics look the same for all.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import ray

from .actor import (
    DEFAULT_NAME,
    ScalingOptimizerState,
    deployment_key,
    get_optimizer,
    get_or_create_optimizer,
)
from .config import ScalingConfig
from .events import events_frame, export_frame
from .optimizer import Sample
from .policy import forecast_autoscaling_config
from .pool import AgentPool
from .usage import cost_frame

log = logging.getLogger(__name__)
RESOURCE_TYPES = ("serve_replica", "agent", "dtesn_membrane")


@dataclass
class _Managed:
    kind: str  # "deployment" | "pool" | "dtesn"
    resource_type: str
    target: Any = None  # the AgentPool or DTESNSystem
    max_size: int | None = None  # a hard limit of the resource itself


class ScalabilityManager:
    def __init__(self, policies: Mapping[str, ScalingConfig | Mapping] | None = None, *,
                 optimizer_name: str = DEFAULT_NAME, optimizer_namespace: str | None = None,
                 history: int = 20_000, export_metrics: bool = True) -> None:
        self.policies: dict[str, ScalingConfig] = {
            t: ScalingConfig(resource_type=t) for t in RESOURCE_TYPES}
        for resource_type, config in (policies or {}).items():
            self.set_policy(resource_type, config)
        self.optimizer_name = optimizer_name
        self.optimizer_namespace = optimizer_namespace
        self.local = ScalingOptimizerState(history=history, export_metrics=export_metrics)
        self.resources: dict[str, _Managed] = {}

    # ---- policies --------------------------------------------------------------------------
    def set_policy(self, resource_type: str, config: ScalingConfig | Mapping) -> ScalingConfig:
        """Set the policy of a resource type (reconfigures resources already registered)."""
        if not isinstance(resource_type, str) or not resource_type:
            raise ValueError(f"resource_type must be a non-empty string, got {resource_type!r}")
        if isinstance(config, Mapping):
            config = ScalingConfig.from_dict({**config, "resource_type": resource_type})
        elif isinstance(config, ScalingConfig):
            config = config.replace(resource_type=resource_type)
        else:
            raise ValueError(f"config must be a ScalingConfig or a mapping, got "
                             f"{type(config).__name__}")
        self.policies[resource_type] = config
        for name, managed in getattr(self, "resources", {}).items():
            if managed.resource_type == resource_type:
                self._configure(name, managed)
        return config

    def policy(self, resource_type: str) -> ScalingConfig:
        if resource_type not in self.policies:
            raise ValueError(f"resource_type {resource_type!r} has no policy; known: "
                             f"{sorted(self.policies)}")
        return self.policies[resource_type]

    def _config_for(self, managed: _Managed) -> dict:
        cfg = self.policy(managed.resource_type)
        if managed.max_size is not None and cfg.max_instances > managed.max_size:
            cfg = cfg.replace(max_instances=managed.max_size,
                              min_instances=min(cfg.min_instances, managed.max_size))
        return cfg.to_dict()

    def _configure(self, name: str, managed: _Managed) -> None:
        if managed.kind == "deployment":
            ray.get(self.optimizer().configure.remote(name, self._config_for(managed)))
        else:
            self.local.configure(name, self._config_for(managed))

    def _register(self, name: str, managed: _Managed) -> str:
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        if name in self.resources:
            raise ValueError(f"name {name!r} is already registered")
        self.policy(managed.resource_type)
        self.resources[name] = managed
        self._configure(name, managed)
        return name

    # ---- registration ----------------------------------------------------------------------
    def add_agent_pool(self, name: str, pool: AgentPool, resource_type: str = "agent") -> str:
        if not isinstance(pool, AgentPool):
            raise ValueError(f"pool must be an AgentPool, got {type(pool).__name__}")
        return self._register(name, _Managed("pool", resource_type, pool))

    def add_dtesn(self, name: str, system, resource_type: str = "dtesn_membrane") -> str:
        """Register a DTESNSystem; its actor count is bounded by its number of membranes."""
        if not (hasattr(system, "resize") and hasattr(system, "n_actors")):
            raise ValueError(f"system must be a DTESNSystem, got {type(system).__name__}")
        return self._register(name, _Managed("dtesn", resource_type, system,
                                             max_size=len(system.layout)))

    def add_deployment(self, app_name: str, deployment_name: str,
                       resource_type: str = "serve_replica") -> str:
        """Register a Serve deployment (deployed with `serve_autoscaling_config`); returns its
        resource name "app/deployment"."""
        return self._register(deployment_key(app_name, deployment_name),
                              _Managed("deployment", resource_type))

    def serve_autoscaling_config(self, resource_type: str = "serve_replica",
                                 policy_kwargs: Mapping | None = None, **serve_fields) -> dict:
        """The `autoscaling_config` for `serve.deployment`: ForecastPolicy carrying this
        resource type's policy (its bounds become min_replicas/max_replicas unless given).
        `serve_fields` are other Serve AutoscalingConfig fields (e.g. upscale_delay_s);
        `policy_kwargs` add ForecastPolicy's own keys (e.g. stale_after_s)."""
        cfg = self.policy(resource_type)
        kwargs = {**cfg.to_dict(), "actor_name": self.optimizer_name, **(policy_kwargs or {})}
        if self.optimizer_namespace:
            kwargs.setdefault("actor_namespace", self.optimizer_namespace)
        serve_fields.setdefault("min_replicas", cfg.min_instances)
        serve_fields.setdefault("max_replicas", cfg.max_instances)
        return forecast_autoscaling_config(kwargs, **serve_fields)

    def optimizer(self):
        """The shared ScalingOptimizerActor (created if missing)."""
        return get_or_create_optimizer(self.optimizer_name, self.optimizer_namespace)

    # ---- deciding and applying -------------------------------------------------------------
    def _managed(self, name: str) -> _Managed:
        if name not in self.resources:
            raise ValueError(f"name {name!r} is not registered; known: {sorted(self.resources)}")
        return self.resources[name]

    def observe(self, name: str, sample: Sample | Mapping) -> dict:
        """Feed one measured sample of a pool or DTESN system, decide, and apply the decision
        (actors really added/removed). Returns the decision dict (with `applied_replicas`)."""
        managed = self._managed(name)
        if managed.kind == "deployment":
            raise ValueError(f"name {name!r} is a Serve deployment: ForecastPolicy feeds it")
        values = sample.to_dict() if isinstance(sample, Sample) else dict(sample)
        decision = self.local.observe(name, values, self._config_for(managed))
        applied = self._apply(managed, decision["desired_replicas"])
        self.local.mark_applied(name, applied)
        return {**decision, "applied_replicas": applied}

    def autoscale(self, name: str, t: float | None = None) -> dict:
        """Measure an agent pool (`AgentPool.measure(t)`) and apply the decision."""
        managed = self._managed(name)
        if managed.kind != "pool":
            raise ValueError(f"name {name!r} is not an agent pool; use observe(name, sample)")
        return self.observe(name, managed.target.measure(t))

    def _apply(self, managed: _Managed, desired: int) -> int:
        target = managed.target
        if managed.kind == "pool":
            if desired != target.size:
                target.resize(desired)
            return target.size
        want = max(1, min(desired, managed.max_size or desired))
        if want != target.n_actors:
            target.resize(want)
        return target.n_actors

    def size(self, name: str) -> int | None:
        """The current size of a pool or DTESN system (None for deployments: ask Serve)."""
        managed = self._managed(name)
        if managed.kind == "pool":
            return managed.target.size
        if managed.kind == "dtesn":
            return managed.target.n_actors
        return None

    def set_forecast(self, name: str, rate: float | None, spread: float = 0.0) -> None:
        """Override the forecast of a resource (None: back to the model)."""
        managed = self._managed(name)
        if managed.kind == "deployment":
            ray.get(self.optimizer().set_forecast_override.remote(name, rate, spread))
        else:
            self.local.set_forecast_override(name, rate, spread)

    def decision(self, name: str) -> dict | None:
        managed = self._managed(name)
        if managed.kind == "deployment":
            return ray.get(self.optimizer().recommend.remote(name))
        return self.local.recommend(name)

    # ---- history and cost ------------------------------------------------------------------
    def _deployments(self) -> list[str]:
        return [n for n, m in self.resources.items() if m.kind == "deployment"]

    def _from_actor(self, method: str, **kwargs) -> list[dict]:
        names = self._deployments()
        if not names:
            return []
        actor = get_optimizer(self.optimizer_name, self.optimizer_namespace)
        if actor is None:
            log.warning("optimizer actor %r not found: deployments left out", self.optimizer_name)
            return []
        parts = ray.get([getattr(actor, method).remote(n, **kwargs) for n in names])
        return [row for part in parts for row in part]

    def events(self, changes_only: bool = True) -> pd.DataFrame:
        """Every managed resource's decisions (by default changes only) as a DataFrame."""
        rows = self.local.events(changes_only=changes_only)
        rows += self._from_actor("events", changes_only=changes_only)
        return events_frame(rows)

    def export_events(self, path: str | Path, changes_only: bool = False) -> Path:
        """Write the event history to .csv (or .parquet when pyarrow is installed)."""
        return export_frame(self.events(changes_only), path)

    def cost_report(self) -> pd.DataFrame:
        """Replica-hours, cost and efficiency per resource (plus a TOTAL row)."""
        return cost_frame(self.local.usage() + self._from_actor("usage"))
