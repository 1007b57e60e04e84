"""The closed-loop model of the load test (echo_ray.sim.loadmodel): plain Python, no Ray."""

from __future__ import annotations

import numpy as np
import pytest

from echo_ray.sim.loadmodel import LoadModel, plan_replicas, simulate_users

MIX = {"a": 50, "b": 50}
KIND_OF = {"a": "x", "b": "y"}


def model(hit_a=0.5, front=(5.0, 6.0, 7.0), worker=None, think_s=1.0) -> LoadModel:
    return LoadModel(MIX, {"a": hit_a, "b": 0.0}, KIND_OF, front,
                     worker or {"x": (10.0, 20.0), "y": (30.0,)}, think_s)


def test_seeded_and_closed_loop_throughput():
    m = model()
    one = simulate_users(m, 20, 1, duration_s=200, seed=3)
    assert one == simulate_users(m, 20, 1, duration_s=200, seed=3)
    # closed loop: each user sends one request per (think + response) seconds
    expected = 20 / (m.think_s + one["mean_ms"] / 1000)
    assert one["rps"] == pytest.approx(expected, rel=0.05)


def test_one_user_never_queues():
    # hits take the front time only, misses the front time plus their type's worker time
    m = model(hit_a=1.0, front=(5.0,), worker={"x": (10.0,), "y": (30.0,)})
    out = simulate_users(m, 1, 1, duration_s=300)
    assert out["p50_ms"] in (pytest.approx(5.0), pytest.approx(35.0))
    assert out["p99_ms"] == pytest.approx(35.0)
    assert out["mean_ms"] == pytest.approx(20.0, abs=3.0)  # half hits (5), half b (35)


def test_more_workers_cut_the_queueing():
    m = model()
    few = simulate_users(m, 60, 1, 2, duration_s=120)
    many = simulate_users(m, 60, 4, 2, duration_s=120)
    assert many["p95_ms"] < few["p95_ms"]


def test_from_calibration_takes_the_front_median_off_the_worker_times():
    doc = {"types": {"x": {"latency_ms": [15.0, 25.0]}, "y": {"latency_ms": [36.0]}},
           "cache_hit": {"latency_ms": [5.0, 6.0, 7.0]}}
    m = LoadModel.from_calibration(doc, MIX, {"a": 0.5}, KIND_OF)
    assert m.worker_ms == {"x": (9.0, 19.0), "y": (30.0,)}
    front_s, worker_s = m.mean_times_s()
    assert front_s == pytest.approx(0.006)
    assert worker_s == pytest.approx((0.5 * 0.5 * 14.0 + 0.5 * 30.0) / 1000)


def test_only_the_fronts_cpu_part_queues():
    # every request a hit, 20 ms at the front, 100 users at 1 s think: ~100 req/s, so one
    # front server that holds each request 20 ms is overloaded; holding it 2 ms is not
    whole = LoadModel(MIX, {"a": 1.0, "b": 1.0}, KIND_OF, (20.0,), {"x": (1.0,), "y": (1.0,)})
    cpu = LoadModel(MIX, {"a": 1.0, "b": 1.0}, KIND_OF, (20.0,), {"x": (1.0,), "y": (1.0,)},
                    front_cpu_share=0.1)
    assert simulate_users(whole, 100, 1, 1, duration_s=60)["p95_ms"] > 200.0
    out = simulate_users(cpu, 100, 1, 1, duration_s=60)
    assert 20.0 <= out["p50_ms"] and out["p95_ms"] < 30.0
    assert cpu.mean_times_s()[0] == pytest.approx(0.002)  # what a front replica is busy for
    doc = {"types": {"x": {"latency_ms": [15.0]}, "y": {"latency_ms": [36.0]}},
           "cache_hit": {"latency_ms": [5.0, 7.0]}, "front_cpu_ms": 1.5}
    assert LoadModel.from_calibration(doc, MIX, {}, KIND_OF).front_cpu_share == 0.25
    with pytest.raises(ValueError, match="front_cpu_share"):
        LoadModel(MIX, {}, KIND_OF, (5.0,), {"x": (1.0,), "y": (1.0,)}, front_cpu_share=0.0)


def test_plan_meets_the_target_or_says_it_cannot():
    ok = plan_replicas(model(), 500, 50.0, duration_s=30)
    assert ok["feasible"] and ok["p95_ms"] <= 50.0
    assert ok["nodes"] == int(np.ceil((ok["worker_replicas"] + ok["front_replicas"]) / 4))
    slow = plan_replicas(model(worker={"x": (80.0,), "y": (90.0,)}), 100, 50.0, duration_s=30)
    assert not slow["feasible"] and slow["p95_floor_ms"] > 50.0
    assert slow["p95_ms"] <= slow["planned_for_ms"] == pytest.approx(1.2 * slow["p95_floor_ms"])


def test_rejects_a_mix_without_worker_times():
    with pytest.raises(ValueError, match="no worker times"):
        LoadModel(MIX, {}, {"a": "x", "b": "z"}, (5.0,), {"x": (1.0,)})
