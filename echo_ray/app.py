"""The Serve application: `serve run echo_ray.app:app` (what `make run` starts)."""

from __future__ import annotations

import dataclasses

from echo_ray.routing.router import request_router_config
from echo_ray.service.ingress import Ingress
from echo_ray.service.settings import SINGLE_THREAD_BLAS, ServiceSettings
from echo_ray.service.worker import CognitiveWorker

ACTOR_OPTIONS = {"num_cpus": 0, "runtime_env": {"env_vars": SINGLE_THREAD_BLAS}}


def build_app(settings: ServiceSettings | None = None):
    """Ingress + cognitive worker, configured from `settings` (default: the environment)."""
    settings = settings or ServiceSettings.from_env()
    conf = dataclasses.asdict(settings)
    worker = CognitiveWorker.options(
        num_replicas=settings.worker_replicas,
        max_ongoing_requests=settings.worker_max_ongoing,
        max_queued_requests=settings.worker_max_queued,
        request_router_config=request_router_config(settings.lb_strategy),
        ray_actor_options=ACTOR_OPTIONS,
    ).bind(conf)
    return Ingress.options(ray_actor_options=ACTOR_OPTIONS).bind(worker, conf)


app = build_app()
