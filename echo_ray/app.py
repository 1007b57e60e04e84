"""The Serve application: `serve run echo_ray.app:app` (what `make run` starts)."""

from __future__ import annotations

import dataclasses

from echo_ray.autoscaling.policy import forecast_autoscaling_config
from echo_ray.routing.router import request_router_config
from echo_ray.service.ingress import Ingress
from echo_ray.service.settings import SINGLE_THREAD_BLAS, ServiceSettings
from echo_ray.service.worker import CognitiveWorker

ACTOR_OPTIONS = {"num_cpus": 0, "runtime_env": {"env_vars": SINGLE_THREAD_BLAS}}


def build_app(settings: ServiceSettings | None = None):
    """Ingress + cognitive worker, configured from `settings` (default: the environment)."""
    settings = settings or ServiceSettings.from_env()
    conf = dataclasses.asdict(settings)
    if settings.max_instances < settings.min_instances:
        raise ValueError(f"MAX_INSTANCES={settings.max_instances} must be >= "
                         f"MIN_INSTANCES={settings.min_instances}")
    bounds = {"min_replicas": settings.min_instances, "max_replicas": settings.max_instances,
              "initial_replicas": settings.min_instances, "target_ongoing_requests": 4,
              "upscale_delay_s": 5.0, "downscale_delay_s": 60.0}
    autoscaling = (forecast_autoscaling_config({"lead_time_s": 15.0, "scale_down_window_s": 60.0,
                                                "scale_down_cooldown_s": 120.0}, **bounds)
                   if settings.predictive_scaling else bounds)
    worker = CognitiveWorker.options(
        autoscaling_config=autoscaling,
        max_ongoing_requests=settings.worker_max_ongoing,
        max_queued_requests=settings.worker_max_queued,
        request_router_config=request_router_config(settings.lb_strategy),
        ray_actor_options=ACTOR_OPTIONS,
    ).bind(conf)
    return Ingress.options(ray_actor_options=ACTOR_OPTIONS).bind(worker, conf)


app = build_app()
