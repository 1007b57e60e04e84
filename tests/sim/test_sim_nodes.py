"""Worker nodes in the fluid simulator: packing, node start-up, idle removal, the standing
request of nodes ahead of demand, and a ramp where asking ahead shortens the wait."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from echo_ray.sim.arrivals import RateTrace
from echo_ray.sim.config import SimConfig
from echo_ray.sim.fluid import run_fluid
from echo_ray.sim.nodes import NodeCluster
from echo_ray.sim.policies import OursPolicy


def test_replicas_pack_onto_started_nodes_then_wait_for_new_ones():
    nodes = NodeCluster(replicas_per_node=2, node_startup_s=100.0, initial_replicas=1)
    assert len(nodes.nodes) == 1
    assert nodes.place(10.0, 1, 5.0) == [15.0]  # room on the started node
    ready = nodes.place(10.0, 3, 5.0)  # two on a new node, then another new node
    assert ready == [115.0, 115.0, 115.0] and len(nodes.nodes) == 3
    assert nodes.replica_wait_s == pytest.approx(300.0)
    nodes.release(20.0, 1)  # from a node still starting
    assert [n.replicas for n in nodes.nodes] == [2, 2, 0]


def test_an_idle_node_goes_after_the_timeout_unless_the_request_needs_it():
    nodes = NodeCluster(replicas_per_node=2, node_startup_s=10.0, idle_timeout_s=30.0,
                        initial_replicas=4)
    nodes.release(0.0, 2)  # the emptiest node empties
    for t in range(1, 31):
        nodes.tick(float(t), 1.0)
    assert len(nodes.nodes) == 2  # idle for 29 s
    nodes.tick(31.0, 1.0)
    assert len(nodes.nodes) == 1 and nodes.removed == 1
    assert nodes.node_seconds == pytest.approx(30 * 2 + 1)


def test_the_request_launches_nodes_now_and_holds_them():
    nodes = NodeCluster(replicas_per_node=2, node_startup_s=60.0, idle_timeout_s=5.0,
                        initial_replicas=1, ahead=True)
    policy = SimpleNamespace(last_decision=SimpleNamespace(ahead_replicas=5))
    nodes.tick(0.0, 1.0, policy, running=1)
    assert nodes.request == 5 and len(nodes.nodes) == 3  # ceil(5 / 2)
    assert nodes.place(60.0, 4, 5.0) == [65.0] * 4  # the nodes are up when the load comes
    nodes.release(61.0, 4)
    for t in range(61, 100):
        nodes.tick(float(t), 1.0, policy, running=1)
    assert len(nodes.nodes) == 3  # idle, but the request holds them
    policy.last_decision.ahead_replicas = 1  # the forecast fell: released
    for t in range(100, 110):
        nodes.tick(float(t), 1.0, policy, running=1)
    assert nodes.request == 0 and len(nodes.nodes) == 1 and nodes.requests_sent == 2


def test_without_ahead_the_policy_is_not_asked():
    nodes = NodeCluster(initial_replicas=1)
    nodes.tick(0.0, 1.0, SimpleNamespace(last_decision=SimpleNamespace(ahead_replicas=9)), 1)
    assert nodes.request == 0 and len(nodes.nodes) == 1


def test_a_node_cap_leaves_replicas_pending():
    nodes = NodeCluster(replicas_per_node=1, max_nodes=1, initial_replicas=1)
    assert nodes.place(0.0, 1, 5.0) == [math.inf]


def test_on_a_predictable_ramp_asking_ahead_shortens_the_wait_for_nodes():
    """A linear ramp from 20 to 300 req/s over 40 minutes: the forecast sees it coming, so
    with the node request the replicas wait less for nodes; the same policy without it waits
    the node start-up at every step."""
    rates = np.concatenate([np.full(20, 20.0), np.linspace(20.0, 300.0, 40),
                            np.full(20, 300.0)])
    trace = RateTrace(rates, 60.0, "ramp")
    cfg = SimConfig(startup_s=20.0, tick_s=1.0)
    scaling = {"target_latency_ms": cfg.slo_ms, "lead_time_s": 20.0, "node_startup_s": 180.0,
               "forecast_step_s": 10.0, "forecast_max_horizon": 20}
    out = {}
    for ahead in (False, True):
        policy = OursPolicy(1, 40, scaling=scaling, price_decisions=False)
        nodes = NodeCluster(4, 180.0, 300.0, initial_replicas=policy.initial_replicas(),
                            ahead=ahead)
        out[ahead] = run_fluid(trace, policy, cfg, nodes=nodes).summary
    assert out[True]["replica_node_wait_s"] < 0.8 * out[False]["replica_node_wait_s"], out
    assert out[True]["slo_violation_minutes"] <= out[False]["slo_violation_minutes"], out
    assert out[True]["provision_ahead"] and not out[False]["provision_ahead"]
