"""ScalabilityManager on the real local cluster: it really grows and shrinks an agent pool and a
DTESNSystem's membrane actors, and reports events and cost for them and for a deployment."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import pytest
import ray
from ray.serve.config import AutoscalingConfig

from echo_ray.autoscaling import Sample
from echo_ray.autoscaling.actor import get_optimizer
from echo_ray.autoscaling.manager import ScalabilityManager
from echo_ray.autoscaling.pool import AgentPool
from echo_ray.dtesn import TreeSpec
from echo_ray.waiting import wait_until
from tests.support.gated_agents import Agent, Gate

pytestmark = [pytest.mark.ray, pytest.mark.timeout(180)]
NAMESPACE = "echo_ray_tests_scaling"
FAST = {"min_instances": 1, "scale_up_cooldown_s": 0.0, "scale_down_cooldown_s": 0.0,
        "scale_down_window_s": 10.0,  # seconds on the samples' clock
        "replica_capacity_rps": 100.0}  # so the (tiny) forecast load never holds a size up


def dead(actor) -> bool:
    try:
        ray.get(actor.ping.remote(), timeout=10)
        return False
    except ray.exceptions.RayActorError:
        return True


@pytest.fixture
def manager(ray_session):
    name = f"optimizer_{uuid.uuid4().hex[:8]}"
    # the agent pool's capacity is left to measure: its held calls say nothing about a rate, so
    # it is sized by the utilisation rule (with a configured capacity: by the arrival rate)
    m = ScalabilityManager({"agent": {**FAST, "max_instances": 3, "price_per_replica_hour": 1.0,
                                      "replica_capacity_rps": None},
                            "dtesn_membrane": {**FAST, "max_instances": 8}},
                           optimizer_name=name, optimizer_namespace=NAMESPACE)
    yield m
    actor = get_optimizer(name, NAMESPACE)
    if actor is not None:
        ray.kill(actor, no_restart=True)


def test_manager_grows_and_shrinks_an_agent_pool(manager, tmp_path):
    pool = AgentPool(Agent, size=1)
    gate = Gate.remote()
    try:
        manager.add_agent_pool("agents", pool)
        assert manager.autoscale("agents", t=0.0)["action"] == "hold"
        refs = [pool.call("work", gate) for _ in range(4)]  # held until the gate opens
        d = manager.autoscale("agents", t=1.0)
        # 4 calls in flight on 1 slot: utilisation 4 -> ceil(4 / 0.7) = 6, bounded to 3
        assert d["triggers"] == ["utilisation"]
        assert d["desired_replicas"] == 3 and d["applied_replicas"] == 3
        assert pool.size == 3 and ray.get([a.ping.remote() for a in pool.actors]) == ["pong"] * 3
        first = pool.actors[0]
        newest = pool.actors[1:]

        ray.get(gate.open.remote())
        assert ray.get(refs, timeout=30) == ["done"] * 4
        wait_until(lambda: pool.in_flight() == 0, 30, "calls to complete")
        assert manager.autoscale("agents", t=2.0)["action"] == "hold"  # quiet, not yet long
        d = manager.autoscale("agents", t=12.0)  # quiet for 10 s of sample time
        assert d["action"] == "scale_down" and d["applied_replicas"] == 1 and pool.size == 1
        assert pool.actors == [first]
        # really killed: ray.kill is asynchronous, so a call sent at once may still be answered
        wait_until(lambda: all(dead(a) for a in newest), 30, "the removed actors to die")

        events = manager.events()
        assert list(events["action"]) == ["scale_up", "scale_down"]
        assert list(events["applied_replicas"]) == [3, 1]
        path = manager.export_events(tmp_path / "events.csv")
        assert len(pd.read_csv(path)) == 4  # every decision, not only the changes
        cost = manager.cost_report().set_index("resource")
        # 1 replica for 1 s, then 3 (as applied) for 11 s = 34 replica-seconds at 1.0 / hour
        assert cost.loc["agents", "replica_hours"] == pytest.approx(34 / 3600)
        assert cost.loc["agents", "cost"] == pytest.approx(34 / 3600)
        assert cost.loc["TOTAL", "cost"] == pytest.approx(34 / 3600)
    finally:
        pool.shutdown()


def test_manager_changes_dtesn_membrane_actors(manager, tmp_path):
    from echo_ray.dtesn.actors import DTESNSystem

    system = DTESNSystem(TreeSpec.from_depth(3, units=10, seed=1), n_actors=1, chunk_size=64,
                         checkpoint_dir=tmp_path)
    U = np.random.default_rng(0).uniform(-1, 1, (50, 1))
    try:
        manager.add_dtesn("membranes", system)
        before = system.run(U)
        d = manager.observe("membranes", Sample(t=0.0, request_rate=100.0, utilisation=1.0,
                                                replicas=system.n_actors))
        # utilisation 1 > 0.8: at least one more actor (ceil(1 * 1 / 0.7) = 2)
        assert d["applied_replicas"] == system.n_actors == 2
        assert sorted(system.run(U)) == sorted(before)  # still runs, on 2 actors
        manager.set_forecast("membranes", 1000.0)  # ceil(1000 / 70) = 15, far more than 4
        d = manager.observe("membranes", Sample(t=1.0, request_rate=100.0, utilisation=0.7,
                                                replicas=system.n_actors))
        assert d["desired_replicas"] == 4 and system.n_actors == 4  # one actor per membrane
        manager.set_forecast("membranes", None)
        for t in (2.0, 13.0):
            d = manager.observe("membranes", Sample(t=t, request_rate=1.0, utilisation=0.05,
                                                    replicas=system.n_actors))
        assert d["action"] == "scale_down" and system.n_actors == 1
        assert len(system.run(U)[0]) == 50
    finally:
        system.shutdown()


def test_manager_configures_deployments_through_the_optimizer_actor(manager):
    config = manager.serve_autoscaling_config(upscale_delay_s=1.0)
    parsed = AutoscalingConfig(**config)
    kwargs = parsed.policy.policy_kwargs
    # MAX_INSTANCES' one default (settings and ScalingConfig alike)
    assert parsed.max_replicas == 4 and kwargs["resource_type"] == "serve_replica"
    assert kwargs["actor_name"] == manager.optimizer_name
    assert kwargs["actor_namespace"] == NAMESPACE

    key = manager.add_deployment("app", "Model")
    manager.set_forecast(key, 30.0)
    # what ForecastPolicy pushes from the Serve controller
    actor = manager.optimizer()
    policy_config = {k: v for k, v in kwargs.items()
                     if k not in ("actor_name", "actor_namespace")}
    ray.get(actor.observe.remote(key, {"t": 0.0, "request_rate": 1.0, "utilisation": 0.5,
                                       "replicas": 1, "ongoing_requests": 1.0},
                                 policy_config))
    decision = manager.decision(key)
    assert decision["forecast_source"] == "override" and decision["current_replicas"] == 1
    events = manager.events(changes_only=False)
    assert key in set(events["resource"])
    assert key in set(manager.cost_report()["resource"])
    with pytest.raises(ValueError, match="is a Serve deployment"):
        manager.observe(key, Sample(t=1.0, request_rate=1.0, utilisation=0.5, replicas=1))
    with pytest.raises(ValueError, match="already registered"):
        manager.add_deployment("app", "Model")
