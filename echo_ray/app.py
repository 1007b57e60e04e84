"""The Serve application builder: `serve run echo_ray.app:build_app` (what `make run`
starts), or `import_path: echo_ray.app:build_app` with `args:` in a Serve config.

Nothing is built at import: Serve calls `build_app(args)` when it deploys, and each ingress
replica builds its own FastAPI app (echo_ray.service.deployment).
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from echo_ray.autoscaling.policy import forecast_autoscaling_config
from echo_ray.routing.router import request_router_config
from echo_ray.service.deployment import Ingress
from echo_ray.service.worker import CognitiveWorker
from echo_ray.settings import SINGLE_THREAD_BLAS, ScalingSection, Settings

ACTOR_OPTIONS = {"num_cpus": 0, "runtime_env": {"env_vars": SINGLE_THREAD_BLAS}}
# One CPU per cognitive worker replica (as in deployments/serve_config.yaml): replicas that
# do not fit are what makes Ray's autoscaler add nodes; at 0 CPU it never sees the load.
WORKER_OPTIONS = {**ACTOR_OPTIONS, "num_cpus": 1}
# The ingress on the head, with the proxy (see deployments/serve_config.yaml: a worker node's
# loss must not take the ingress with it).
INGRESS_OPTIONS = {**ACTOR_OPTIONS, "resources": {"node:__internal_head__": 0.001}}


def worker_replica_options(scaling: ScalingSection) -> dict[str, Any]:
    """The worker's `.options(...)` for its replica count: ForecastPolicy with the scaling
    settings' `policy_kwargs()` when predictive, Ray's default policy with the same bounds and
    delays when not (PREDICTIVE_SCALING=false), a fixed MIN_INSTANCES when autoscaling is off
    (AUTO_SCALING_ENABLED=false)."""
    if not scaling.enabled:
        return {"num_replicas": scaling.min_instances}
    bounds = scaling.serve_bounds()
    if not scaling.predictive:
        return {"autoscaling_config": bounds}
    kwargs = scaling.policy_kwargs()
    if scaling.node_startup_s > 0:  # nodes ahead of demand: room for replicas of this shape
        kwargs["replica_resources"] = {"CPU": float(WORKER_OPTIONS["num_cpus"])}
    return {"autoscaling_config": forecast_autoscaling_config(kwargs, **bounds)}


def build_app(args: dict[str, Any] | Settings | None = None) -> Application:
    """Ingress + cognitive worker. `args`: the Settings, or sections of them that win over
    the environment (`{"service": {"max_request_bytes": 65536}}`, as a Serve config's
    `args:`), or None (the environment). The worker's replica bounds and its autoscaling
    policy's thresholds come from the `scaling` section (SCALE_UP_THRESHOLD, ...); the
    ingress's autoscaling bounds from the `service` section (INGRESS_MIN_REPLICAS, ...)."""
    settings = args if isinstance(args, Settings) else Settings.from_env(None, **(args or {}))
    worker = CognitiveWorker.options(
        **worker_replica_options(settings.scaling),
        max_ongoing_requests=settings.service.worker_max_ongoing,
        max_queued_requests=settings.service.worker_max_queued,
        request_router_config=request_router_config(settings.routing.strategy),
        ray_actor_options=WORKER_OPTIONS,
    ).bind(settings)
    return Ingress.options(
        autoscaling_config=settings.service.ingress_autoscaling_config(),
        ray_actor_options=INGRESS_OPTIONS,
    ).bind(worker, settings)
