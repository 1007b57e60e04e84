"""Every resource under the loop (issue 17 item 5), on the real local cluster: a ScalingLoop
grows and shrinks an agent pool and a DTESN membrane actor group from their own load, with no
manual autoscale()/observe() calls; in the served app, the worker's membrane groups do the
same under request load, and `echo-ray scaling events` lists their decisions."""

from __future__ import annotations

import threading
import uuid

import httpx
import numpy as np
import pytest
import ray
from typer.testing import CliRunner

from echo_ray.autoscaling import ScalingConfig
from echo_ray.autoscaling.actor import get_optimizer
from echo_ray.autoscaling.cli import scaling_app
from echo_ray.autoscaling.loop import ScalingLoop
from echo_ray.autoscaling.pool import AgentPool
from echo_ray.dtesn import TreeSpec
from echo_ray.waiting import wait_until
from tests.support.gated_agents import Agent, Gate

pytestmark = [pytest.mark.ray, pytest.mark.timeout(600)]
NAMESPACE = "echo_ray_tests_loop"
FAST = {"min_instances": 1, "scale_up_cooldown_s": 0.0, "scale_down_cooldown_s": 0.0,
        "scale_down_window_s": 1.0}


@pytest.fixture
def actor_name(ray_session):
    name = f"loop_optimizer_{uuid.uuid4().hex[:8]}"
    yield name
    actor = get_optimizer(name, NAMESPACE)
    if actor is not None:
        ray.kill(actor, no_restart=True)


def actions(name: str, resource: str) -> list[tuple[str, int | None]]:
    rows = ray.get(get_optimizer(name, NAMESPACE).events.remote(resource))
    return [(r["action"], r["applied_replicas"]) for r in rows]


def cli_events(name: str, resource: str) -> str:
    out = CliRunner().invoke(scaling_app, ["events", "--actor", name, "--namespace", NAMESPACE,
                                           "--resource", resource])
    assert out.exit_code == 0, out.output
    return out.output


def test_the_loop_grows_and_shrinks_an_agent_pool_from_its_own_load(actor_name):
    pool = AgentPool(Agent, size=1)
    gate = Gate.remote()
    loop = ScalingLoop(0.2, actor_name=actor_name, actor_namespace=NAMESPACE)
    try:
        loop.add("agents", pool, ScalingConfig(resource_type="agent", max_instances=3, **FAST))
        loop.start()
        refs = [pool.call("work", gate) for _ in range(4)]  # held: 4 calls on 1 slot
        wait_until(lambda: pool.size == 3, 60, "the pool to grow to its maximum")
        ray.get(gate.open.remote())
        assert ray.get(refs, timeout=60) == ["done"] * 4
        wait_until(lambda: actions(actor_name, "agents")[-1] == ("scale_down", 1), 60,
                   "the idle pool to shrink")
        assert pool.size == 1
        seen = actions(actor_name, "agents")
        assert ("scale_up", 3) in seen and seen[-1] == ("scale_down", 1), seen
        out = cli_events(actor_name, "agents")
        assert "scale_up" in out and "scale_down" in out
    finally:
        loop.stop()
        pool.shutdown()


def test_the_loop_resizes_a_membrane_group_under_load_and_keeps_its_outputs(actor_name):
    from echo_ray.dtesn.actors import DTESNSystem

    system = DTESNSystem(TreeSpec.from_depth(3, units=20, seed=3), n_actors=1, checkpoints=False)
    U = np.random.default_rng(0).uniform(-1, 1, (200, 1))
    before = system.encode(U)
    stop, outputs = threading.Event(), []

    def client() -> None:
        while not stop.is_set():
            outputs.append(system.encode(U))

    loop = ScalingLoop(0.2, actor_name=actor_name, actor_namespace=NAMESPACE)
    clients = [threading.Thread(target=client, daemon=True) for _ in range(4)]
    try:
        loop.add("membranes", system,
                 ScalingConfig(resource_type="dtesn_membrane", max_instances=8, **FAST))
        assert loop._entries["membranes"].config["max_instances"] == 4  # one per membrane
        loop.start()
        for c in clients:
            c.start()
        wait_until(lambda: system.n_actors > 1, 60, "the membrane group to grow")
        stop.set()
        for c in clients:
            c.join(60)
        wait_until(lambda: actions(actor_name, "membranes")[-1] == ("scale_down", 1), 60,
                   "the idle membrane group to shrink")
        assert system.n_actors == 1
        seen = actions(actor_name, "membranes")
        assert seen[0][0] == "scale_up" and seen[-1] == ("scale_down", 1), seen
        # calls made while it was resized all answered, and the same as before
        assert outputs and all(sorted(o) == sorted(before) for o in outputs)
        assert all(np.allclose(o[m], before[m]) for o in outputs[::10] for m in before)
    finally:
        stop.set()
        loop.stop()
        system.shutdown()


@pytest.mark.timeout(600)
def test_the_served_apps_membrane_groups_follow_request_load(serve_session, tmp_path):
    """No manual call: the worker replica's own loop measures its membrane actor group (the
    reasoning engine: 4 membranes), which grows under 8 clients and shrinks when they stop;
    the decisions are in the optimizer actor and `echo-ray scaling events`."""
    from ray import serve

    from echo_ray.app import build_app
    from echo_ray.settings import Settings

    name = f"loop_{uuid.uuid4().hex[:8]}"
    settings = Settings.from_env({}, paths={"data_dir": tmp_path},
                                 cluster={"namespace": NAMESPACE},
                                 # every encode on the actors: small requests load them
                                 service={"worker_inprocess_max_work": 0},
                                 scaling={"max_instances": 1, "membrane_interval_s": 0.5,
                                          "scale_up_cooldown_s": 0.0,
                                          "scale_down_cooldown_s": 0.0,
                                          "scale_down_window_s": 2.0})
    serve.run(build_app(settings), name=name, route_prefix=f"/{name}")
    url = f"{serve_session}/{name}"
    wait_until(lambda: httpx.get(f"{url}/readyz", timeout=30).status_code == 200, 120,
               f"app {name} ready", interval_s=0.2)
    actor = "echo_ray:scaling_optimizer"  # the worker's loop uses the default name

    def groups() -> dict[str, list[dict]]:
        handle = get_optimizer(actor, NAMESPACE)
        rows = ray.get(handle.events.remote()) if handle is not None else []
        out: dict[str, list[dict]] = {}
        for r in rows:
            if r["resource"].startswith(f"{name}/CognitiveWorker/") and \
                    r["resource_type"] == "dtesn_membrane":
                out.setdefault(r["resource"], []).append(r)
        return out

    stop, answered = threading.Event(), []
    series = [0.1, 0.4, 0.9, 0.4] * 16

    def client() -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            while not stop.is_set():
                try:
                    r = c.post("/v1/reasoning", json={"input": {"series": series, "horizon": 8},
                                                      "options": {"cache": False}})
                except Exception as exc:  # recorded, so the assertion below names it
                    answered.append(type(exc).__name__)
                else:
                    answered.append(r.status_code)

    # The replica's warm-up (its constructor) is load too and may already have grown and
    # shrunk a group: only decisions after this point count.
    before = {k: len(rows) for k, rows in groups().items()}

    def since_load(rows_by_group: dict[str, list[dict]]) -> dict[str, list[dict]]:
        return {k: rows[before.get(k, 0):] for k, rows in rows_by_group.items()}

    clients = [threading.Thread(target=client, daemon=True) for _ in range(8)]
    try:
        for c in clients:
            c.start()

        def grew() -> bool:
            return len(answered) >= 8 and any(
                r["action"] == "scale_up" and (r["applied_replicas"] or 0) > 1
                for rows in since_load(groups()).values() for r in rows)

        wait_until(grew, 240, "a membrane group of the worker to grow under load")
    finally:
        stop.set()
        for c in clients:
            c.join(90)
    try:
        def shrank() -> bool:
            return any(rows and any(r["action"] == "scale_up" for r in rows)
                       and rows[-1]["action"] == "scale_down" and rows[-1]["applied_replicas"] == 1
                       for rows in since_load(groups()).values())

        wait_until(shrank, 240, "the membrane group to shrink back when the load stopped")
        assert answered and set(answered) == {200}, sorted(map(str, set(answered)))
        # one group per tree shape the replica serves (its warm-up builds them all): take
        # one that grew and shrank
        resource = next(k for k, rows in since_load(groups()).items()
                        if rows and any(r["action"] == "scale_up" for r in rows)
                        and rows[-1]["action"] == "scale_down")
        out = CliRunner().invoke(scaling_app, ["events", "--namespace", NAMESPACE,
                                               "--resource", resource, "--limit", "0"])
        assert out.exit_code == 0 and "scale_up" in out.output and "scale_down" in out.output
    finally:
        serve.delete(name)
        handle = get_optimizer(actor, NAMESPACE)
        if handle is not None:
            ray.kill(handle, no_restart=True)
