"""ScalingOptimizerActor: one named Ray actor holding a ScalingOptimizer per resource.

Whoever measures a resource pushes samples with `observe(resource, sample, config)` and gets
the decision back in the same call; anyone can read the cached decision with
`recommend(resource)`. For Serve deployments the pusher is `ForecastPolicy` (policy.py), which
forwards the metrics the Serve controller already aggregates (ongoing and queued requests,
plus any `record_autoscaling_stats` custom metrics) - so deployments need no extra code and
there is exactly one writer per deployment.

Resources are named by strings; Serve deployments use `deployment_key(app, deployment)`.
The actor is detached and named (`DEFAULT_NAME` in the namespace `ECHO_RAY_SCALING_NAMESPACE`,
default "echo_ray": `default_namespace()`), so the policy in the Serve controller (namespace "serve"), the
manager and the CLI (any namespace) all find the same one.
"""

from __future__ import annotations

import time
from collections import deque

import ray

from .config import ScalingConfig
from .events import events_frame, flatten_decision, is_event
from .forecast import Forecast
from .gauges import ScalingGauges
from .nodes import NodeRequests, ahead_bundles
from .optimizer import Sample, ScalingOptimizer
from .usage import UsageMeter

DEFAULT_NAME = "echo_ray:scaling_optimizer"
# Fields whose change needs a new forecaster (the others are read at decision time).
_FORECASTER_FIELDS = ("forecast_max_horizon", "seasonal_period", "forecast_interval_window")


def default_namespace() -> str:
    """The optimizer actor's namespace (settings: `ECHO_RAY_SCALING_NAMESPACE`)."""
    from echo_ray.settings import get_settings

    return get_settings().cluster.namespace


def deployment_key(app_name: str | None, deployment_name: str) -> str:
    """The resource name of a Serve deployment: "app/deployment"."""
    if not isinstance(deployment_name, str) or not deployment_name:
        raise ValueError(f"deployment_name must be a non-empty string, got {deployment_name!r}")
    return f"{app_name or ''}/{deployment_name}"


def override_forecast(rate: float, horizon: int, spread: float = 0.0,
                      coverage: float = 0.8) -> Forecast:
    """A fixed forecast of `rate` +- `spread` (what an operator knows, or a test sets)."""
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or rate < 0:
        raise ValueError(f"rate must be a number >= 0 or None, got {rate!r}")
    if not isinstance(spread, (int, float)) or isinstance(spread, bool) or spread < 0:
        raise ValueError(f"spread must be a number >= 0, got {spread!r}")
    return Forecast(point=float(rate), lower=max(0.0, rate - spread), upper=rate + spread,
                    horizon=horizon, coverage=coverage, n_residuals=0, calibrated=True)


class ScalingOptimizerState:
    """The actor's logic as a plain class (usable in-process by the manager and in tests)."""

    def __init__(self, history: int = 20_000, export_metrics: bool = True,
                 node_requests: NodeRequests | None = None) -> None:
        if not isinstance(history, int) or history < 1:
            raise ValueError(f"history must be a positive integer, got {history!r}")
        self.optimizers: dict[str, ScalingOptimizer] = {}
        self.configs: dict[str, dict] = {}
        self.overrides: dict[str, tuple[float, float] | None] = {}
        self.latest: dict[str, dict] = {}
        self.rows: deque[dict] = deque(maxlen=history)  # every decision, flattened
        # the changes (and blocked changes) kept apart, so hours of "hold" rows from a
        # policy pushing twice a second do not push them out
        self.changes: deque[dict] = deque(maxlen=history)
        self.meters: dict[str, UsageMeter] = {}
        self.gauges = ScalingGauges() if export_metrics else None
        # nodes ahead of demand: the union of every resource's bundles, sent to Ray's
        # autoscaler (request_resources) when it changes
        self.node_requests = node_requests or NodeRequests()

    # ---- configuration --------------------------------------------------------------------
    def configure(self, resource: str, config: dict | None = None) -> dict:
        """Create the resource's optimizer, or update its config (keeping the forecaster's
        learned state unless the forecaster's own settings changed). Returns the config."""
        if not isinstance(resource, str) or not resource:
            raise ValueError(f"resource must be a non-empty string, got {resource!r}")
        cfg = ScalingConfig.from_dict(config or {})
        new = cfg.to_dict()
        opt = self.optimizers.get(resource)
        if opt is None or any(new[f] != self.configs[resource][f] for f in _FORECASTER_FIELDS):
            opt = self.optimizers[resource] = ScalingOptimizer(cfg)
            self._apply_override(resource)
        else:
            opt.config = cfg
        self.configs[resource] = new
        return new

    def set_forecast_override(self, resource: str, rate: float | None,
                              spread: float = 0.0) -> None:
        """Replace the forecast of `resource` by `rate` +- `spread` (None: back to the model).
        Kept for resources not seen yet and across config changes."""
        if rate is not None:
            override_forecast(rate, 1, spread)  # validates
        self.overrides[resource] = None if rate is None else (float(rate), float(spread))
        self._apply_override(resource)

    def _apply_override(self, resource: str) -> None:
        opt = self.optimizers.get(resource)
        if opt is None:
            return
        o = self.overrides.get(resource)
        opt.set_forecast_override(None if o is None else override_forecast(
            o[0], opt.horizon_steps(), o[1], opt.forecaster.coverage))

    # ---- samples and decisions ------------------------------------------------------------
    def observe(self, resource: str, sample: dict, config: dict | None = None,
                applied: int | None = None) -> dict:
        """Feed one sample (a `Sample` as dict) and return the decision as a dict.

        `config` (a ScalingConfig dict) creates or updates the resource's optimizer, so a
        pusher that carries its config survives a restart of this actor. Sample times that go
        backwards (wall-clock steps, a new pusher) are clamped to the last one.
        """
        if config is not None and self.configs.get(resource) != ScalingConfig.from_dict(
                config).to_dict():
            self.configure(resource, config)
        elif resource not in self.optimizers:
            self.configure(resource, None)
        opt = self.optimizers[resource]
        values = dict(sample)
        last = self.latest.get(resource)
        if last is not None and values.get("t", 0.0) < last["t"]:
            values["t"] = last["t"]
        decision = opt.step(Sample(**values)).to_dict()
        decision["resource"] = resource
        decision["decided_at"] = time.time()
        cfg = opt.config
        sent = False
        if cfg.node_startup_s > 0 and cfg.replica_resources:
            sent = self.node_requests.update(resource, ahead_bundles(
                decision["ahead_replicas"], decision["current_replicas"], cfg.replica_resources))
        elif resource in self.node_requests.by_resource:  # switched off: release its share
            sent = self.node_requests.update(resource, [])
        decision["node_request"] = len(self.node_requests.by_resource.get(resource, []))
        self.latest[resource] = decision
        row = flatten_decision(resource, decision, applied)
        self.rows.append(row)
        if is_event(row) or sent:  # a change of target, a blocked one, or of the node request
            self.changes.append(row)
        meter = self.meters.get(resource)
        if meter is None:
            meter = self.meters[resource] = UsageMeter(resource, cfg.resource_type,
                                                       cfg.price_per_replica_hour)
        s = decision["sample"]
        meter.add(s["t"], s["replicas"], s["request_rate"], s["utilisation"], s["error_rate"],
                  decision["capacity_rps"], cfg.price_per_replica_hour)
        if self.gauges is not None:
            self.gauges.record(resource, decision, cfg.price_per_replica_hour)
        return decision

    def mark_applied(self, resource: str, applied: int) -> None:
        """Record the size the resource really has after acting on its latest decision (the
        usage meter charges that size until the next sample)."""
        if resource in self.meters:
            self.meters[resource].resize(applied)
        for row in reversed(self.rows):
            if row["resource"] == resource:
                row["applied_replicas"] = applied
                return

    def recommend(self, resource: str) -> dict | None:
        """The latest decision for `resource` (None before its first sample)."""
        return self.latest.get(resource)

    # ---- reports --------------------------------------------------------------------------
    def resources(self) -> list[str]:
        return sorted(self.optimizers)

    def events(self, resource: str | None = None, changes_only: bool = True,
               limit: int | None = None) -> list[dict]:
        """Flat decision rows (see events.py), oldest first; by default only changes of target
        and blocked changes."""
        source = self.changes if changes_only else self.rows
        rows = [r for r in source if resource is None or r["resource"] == resource]
        return rows[-limit:] if limit else rows

    def usage(self, resource: str | None = None) -> list[dict]:
        """Cost/usage report per resource (see usage.py)."""
        return [m.report() for name, m in sorted(self.meters.items())
                if resource is None or name == resource]

    def events_frame(self, resource: str | None = None, changes_only: bool = True):
        return events_frame(self.events(resource, changes_only))


@ray.remote(num_cpus=0, max_restarts=0)
class ScalingOptimizerActor(ScalingOptimizerState):
    """`ScalingOptimizerState` as a named Ray actor (see `get_or_create_optimizer`)."""

    def ping(self) -> bool:
        return True

    def node_request(self) -> list[dict]:
        """The bundles standing with Ray's autoscaler (nodes ahead of demand)."""
        return self.node_requests.bundles()


def get_or_create_optimizer(name: str = DEFAULT_NAME, namespace: str | None = None,
                            detached: bool = True, **actor_kwargs):
    """The named optimizer actor, created if it does not exist yet (race-free). On the head
    node, whoever creates it first (the Serve controller's policy, a replica's scaling loop):
    a detached 0-CPU actor on a worker node would keep that node from ever idling."""
    options = {"name": name, "namespace": namespace or default_namespace(),
               "get_if_exists": True, "resources": {"node:__internal_head__": 0.001}}
    if detached:
        options["lifetime"] = "detached"
    return ScalingOptimizerActor.options(**options).remote(**actor_kwargs)


def get_optimizer(name: str = DEFAULT_NAME, namespace: str | None = None):
    """The named optimizer actor, or None if there is none."""
    try:
        return ray.get_actor(name, namespace=namespace or default_namespace())
    except ValueError:
        return None
