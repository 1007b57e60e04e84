"""The named ScalingOptimizerActor on the real local cluster, and the `scaling` CLI reading it."""

from __future__ import annotations

import uuid

import pandas as pd
import pytest
import ray
from typer.testing import CliRunner

from echo_ray.autoscaling.actor import deployment_key, get_optimizer, get_or_create_optimizer
from echo_ray.autoscaling.cli import scaling_app
from echo_ray.waiting import wait_until

pytestmark = [pytest.mark.ray, pytest.mark.timeout(120)]
NAMESPACE = "echo_ray_tests_scaling"
CONFIG = {"min_instances": 1, "max_instances": 6, "replica_capacity_rps": 10.0,
          "scale_up_cooldown_s": 0.0, "price_per_replica_hour": 3.6}


@pytest.fixture
def optimizer(ray_session):
    name = f"optimizer_{uuid.uuid4().hex[:8]}"
    actor = get_or_create_optimizer(name, NAMESPACE)
    yield name, actor
    ray.kill(actor, no_restart=True)


def sample(t: float, replicas: int, rate: float = 5.0, utilisation: float = 0.5) -> dict:
    return {"t": t, "request_rate": rate, "utilisation": utilisation, "replicas": replicas}


def test_named_actor_is_shared_and_namespaced(optimizer):
    name, actor = optimizer
    again = get_or_create_optimizer(name, NAMESPACE)
    assert again._actor_id == actor._actor_id  # get-or-create, not a second actor
    assert get_optimizer(name, NAMESPACE)._actor_id == actor._actor_id
    assert get_optimizer(name, "some_other_namespace") is None
    assert ray.get(actor.ping.remote())


def test_observe_recommend_override_and_reports(optimizer):
    _, actor = optimizer
    key = deployment_key("app", "Model")
    assert ray.get(actor.recommend.remote(key)) is None
    ray.get(actor.set_forecast_override.remote(key, 40.0))  # known before the first sample
    d = ray.get(actor.observe.remote(key, sample(0.0, 2), CONFIG))
    assert d["desired_replicas"] == 6  # ceil(40 / 7) = 6, the maximum
    assert d["forecast_source"] == "override" and d["resource"] == key
    assert ray.get(actor.recommend.remote(key)) == d  # cached, not recomputed
    ray.get(actor.set_forecast_override.remote(key, None))
    ray.get(actor.observe.remote(key, sample(3600.0, 6), CONFIG))
    events = ray.get(actor.events.remote(key))
    assert [e["action"] for e in events] == ["scale_up"] and "forecast" in events[0]["triggers"]
    (usage,) = ray.get(actor.usage.remote(key))
    assert usage["replica_hours"] == pytest.approx(2.0)  # 2 replicas for the first hour
    assert usage["cost"] == pytest.approx(7.2)
    assert ray.get(actor.resources.remote()) == [key]
    with pytest.raises(ray.exceptions.RayTaskError, match="rate must be a number"):
        ray.get(actor.set_forecast_override.remote(key, -1.0))


def test_cli_reads_events_and_cost(optimizer, tmp_path):
    name, actor = optimizer
    key = deployment_key("cli", "Model")
    ray.get(actor.observe.remote(key, sample(0.0, 1, utilisation=0.95), CONFIG))
    ray.get(actor.observe.remote(key, sample(60.0, 2, utilisation=0.5), CONFIG))
    runner = CliRunner()
    where = ["--actor", name, "--namespace", NAMESPACE]

    result = runner.invoke(scaling_app, ["events", *where])
    assert result.exit_code == 0, result.output
    assert "scale_up" in result.output and key in result.output

    out = tmp_path / "events.csv"
    result = runner.invoke(scaling_app, ["events", "--all", *where, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(out)["action"]) == ["scale_up", "hold"]

    result = runner.invoke(scaling_app, ["cost", *where])
    assert result.exit_code == 0, result.output
    assert "TOTAL" in result.output and key in result.output

    result = runner.invoke(scaling_app, ["cost", "--actor", "no_such_actor",
                                         "--namespace", NAMESPACE])
    assert result.exit_code == 1


@pytest.mark.timeout(420)
def test_policy_creates_the_actor_and_recreates_it_after_a_kill(ray_session):
    """The default ForecastPolicy (create_actor=True), called as the Serve controller calls it,
    outside Serve: its thread gets-or-creates the named actor, and re-creates it if killed."""
    import time

    from ray.serve._private.common import DeploymentID
    from ray.serve.config import AutoscalingConfig, AutoscalingContext

    from echo_ray.autoscaling.policy import ForecastPolicy

    name = f"optimizer_{uuid.uuid4().hex[:8]}"
    policy = ForecastPolicy(actor_name=name, actor_namespace=NAMESPACE, poll_interval_s=0.1,
                            stale_after_s=1.0)
    config = AutoscalingConfig(min_replicas=1, max_replicas=4)

    def tick() -> str:
        ctx = AutoscalingContext(
            deployment_id=DeploymentID(name="Model", app_name="app"), deployment_name="Model",
            app_name="app", current_num_replicas=2, target_num_replicas=2, running_replicas=[],
            total_num_requests=1.0, total_queued_requests=0.0, aggregated_metrics={},
            raw_metrics={}, capacity_adjusted_min_replicas=1, capacity_adjusted_max_replicas=4,
            policy_state={}, last_scale_up_time=None, last_scale_down_time=None,
            current_time=time.time(), config=config)
        return policy(ctx)[1]["echo_ray_source"]

    def wait_for_forecast() -> None:
        # the policy's thread backs off between tries (2-s calls, waits doubling to 6.4 s):
        # an actor that takes ~27 s to start on a loaded machine is seen only at ~33 s
        wait_until(lambda: tick() == "forecast", 90.0, "a forecast answer", interval_s=0.1)

    try:
        assert tick() == "reactive:no_answer"
        wait_for_forecast()
        first = get_optimizer(name, NAMESPACE)
        # 1 ongoing request on 2 replicas is below the band; under Serve (its downscale delay
        # gates) the answer is at once ceil(2 * 0.175 / 0.7) = 1
        assert ray.get(first.recommend.remote("app/Model"))["desired_replicas"] == 1
        ray.kill(first, no_restart=True)
        sources = set()

        def recreated() -> bool:  # meanwhile the policy answers from its cache, or reactively
            sources.add(tick())
            second = get_optimizer(name, NAMESPACE)
            return (second is not None and second._actor_id != first._actor_id
                    and ray.get(second.recommend.remote("app/Model")) is not None)

        wait_until(recreated, 90.0, "the killed actor re-created", interval_s=0.1)
        assert sources <= {"forecast", "reactive:stale"}
        wait_for_forecast()
    finally:
        policy.link.stop.set()
        actor = get_optimizer(name, NAMESPACE)
        if actor is not None:
            ray.kill(actor, no_restart=True)


def test_decisions_are_exported_as_ray_metrics(optimizer):
    """Scrape this node's Ray metrics endpoint (Prometheus text) for the actor's gauges."""
    import httpx

    _, actor = optimizer
    key = deployment_key("metrics", uuid.uuid4().hex[:8])
    ray.get(actor.set_forecast_override.remote(key, 20.0))
    ray.get(actor.observe.remote(key, sample(0.0, 1), CONFIG))
    port = ray._private.worker.global_worker.node.metrics_export_port
    wanted = {"ray_echo_ray_scaling_forecast", "ray_echo_ray_scaling_desired_replicas",
              "ray_echo_ray_scaling_current_replicas", "ray_echo_ray_scaling_cost_per_hour",
              "ray_echo_ray_scaling_decisions_total"}
    found: dict[str, float] = {}

    def all_exported() -> bool:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5.0).text
        except httpx.HTTPError:
            return False
        for line in text.splitlines():
            if f'resource="{key}"' in line and not line.startswith("#"):
                name = line.split("{", 1)[0]
                if name != "ray_echo_ray_scaling_forecast" or 'bound="upper"' in line:
                    found[name] = float(line.rsplit(" ", 1)[1])
        return set(found) == wanted

    wait_until(all_exported, 60.0, lambda: f"all gauges exported (only {sorted(found)})",
               interval_s=1.0)
    assert found["ray_echo_ray_scaling_forecast"] == 20.0
    assert found["ray_echo_ray_scaling_desired_replicas"] == 3.0  # ceil(20 / 7)
    assert found["ray_echo_ray_scaling_current_replicas"] == 1.0
    assert found["ray_echo_ray_scaling_cost_per_hour"] == pytest.approx(3.6)  # 1 x 3.6
