"""ForecastPolicy on a real local Serve app: the optimizer's forecast drives the replica count,
and killing the optimizer actor falls back to Serve's reactive rule without errors."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
import ray
from ray import serve

from echo_ray.autoscaling.actor import deployment_key, get_optimizer, get_or_create_optimizer
from echo_ray.autoscaling.policy import forecast_autoscaling_config
from echo_ray.autoscaling.replica_load import ReplicaLoad
from echo_ray.waiting import wait_until

pytestmark = [pytest.mark.ray, pytest.mark.timeout(240)]
NAMESPACE = "echo_ray_tests_scaling"
WAIT_S = 60.0


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=4,
                  graceful_shutdown_timeout_s=1.0, graceful_shutdown_wait_loop_s=0.2)
class Echo:
    """Reports its request rate, p95 and errors to the policy via record_autoscaling_stats."""

    def __init__(self) -> None:
        self.load = ReplicaLoad()

    def __call__(self, request) -> str:
        with self.load.track():
            return "ok"

    def record_autoscaling_stats(self) -> dict:
        return self.load.stats()


def running(app: str) -> tuple[str, int]:
    status = serve.status().applications[app].deployments["Echo"]
    return str(status.status.value), sum(n for state, n in status.replica_states.items()
                                         if state == "RUNNING")


def wait_for_replicas(app: str, n: int, what: str) -> float:
    """Bounded wait until `n` replicas run and the deployment is HEALTHY; returns seconds."""
    start = time.monotonic()
    seen = None

    def reached() -> bool:
        nonlocal seen
        seen = running(app)
        return seen == ("HEALTHY", n)

    wait_until(reached, WAIT_S, lambda: f"{what}: ('HEALTHY', {n}) (last: {seen})",
               interval_s=0.2)
    return time.monotonic() - start


def test_forecast_scales_up_and_down_and_a_dead_optimizer_falls_back(serve_session):
    app = f"scaling_{uuid.uuid4().hex[:8]}"
    actor_name = f"scaling_optimizer_{app}"
    actor = get_or_create_optimizer(actor_name, NAMESPACE)
    key = deployment_key(app, "Echo")
    policy_kwargs = {
        "actor_name": actor_name, "actor_namespace": NAMESPACE,
        "create_actor": False,  # so that after the kill nothing can answer but the fallback
        "poll_interval_s": 0.2, "stale_after_s": 2.0,
        "replica_capacity_rps": 10.0, "lead_time_s": 1.0,  # 7 req/s per replica at 70%
        "scale_up_cooldown_s": 0.0, "scale_down_cooldown_s": 0.0, "scale_down_window_s": 1.0,
    }
    config = forecast_autoscaling_config(policy_kwargs, min_replicas=1, max_replicas=3,
                                         initial_replicas=1, upscale_delay_s=0.5,
                                         downscale_delay_s=1.0)
    serve.run(Echo.options(autoscaling_config=config).bind(), name=app,
              route_prefix=f"/{app}")
    client = httpx.Client(base_url=f"{serve_session}/{app}", timeout=30.0)
    try:
        wait_for_replicas(app, 1, "deployed")
        assert client.get("/").text == "ok"

        ray.get(actor.set_forecast_override.remote(key, 20.0))  # ceil(20 / 7) = 3 replicas
        wait_for_replicas(app, 3, "forecast 20 req/s")
        decision = ray.get(actor.recommend.remote(key))
        assert decision["desired_replicas"] == 3 and decision["forecast_source"] == "override"
        ups = [e for e in ray.get(actor.events.remote(key)) if e["action"] == "scale_up"]
        assert ups[-1]["desired_replicas"] == 3 and "forecast" in ups[-1]["triggers"]

        ray.get(actor.set_forecast_override.remote(key, 0.5))  # one replica is plenty
        wait_for_replicas(app, 1, "forecast 0.5 req/s")
        assert ray.get(actor.recommend.remote(key))["desired_replicas"] == 1

        ray.get(actor.set_forecast_override.remote(key, 20.0))
        wait_for_replicas(app, 3, "forecast 20 req/s again")

        # The optimizer dies while still asking for 3. With no traffic the reactive rule
        # wants the minimum, so reaching 1 replica shows the policy fell back (and did not
        # raise: an exception in the policy stops the controller from scaling at all).
        ray.kill(actor, no_restart=True)
        wait_until(lambda: get_optimizer(actor_name, NAMESPACE) is None, WAIT_S,
                   "the killed actor's name released", interval_s=0.2)
        wait_for_replicas(app, 1, "optimizer killed: reactive fallback")
        assert [client.get("/").text for _ in range(5)] == ["ok"] * 5
        assert running(app) == ("HEALTHY", 1)
    finally:
        client.close()
        serve.delete(app)
        leftover = get_optimizer(actor_name, NAMESPACE)
        if leftover is not None:
            ray.kill(leftover, no_restart=True)
