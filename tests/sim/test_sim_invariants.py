"""Simulator invariants: conservation, Little's law and M/M/c against Erlang C, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from echo_ray.autoscaling.cost import erlang_c, mmc_mean_wait, mmc_response_percentile
from echo_ray.sim import (
    ClosedPopulation,
    RateTrace,
    ServiceModel,
    SimConfig,
    StaticPolicy,
    ray_default,
    run_events,
)


def test_conservation_with_scaling_and_drops():
    # A load step that overwhelms one replica; a short handle queue forces rejections.
    trace = RateTrace.steps([5, 60, 5], [120, 120, 240])
    cfg = SimConfig(service=ServiceModel.exponential(0.1), startup_s=10, seed=3,
                    max_queued_requests=20, timeout_s=5.0)
    r = run_events(trace, ray_default(1, 8), cfg)
    s = r.summary
    assert s["dropped"] > 0 and s["scaling_events"] > 0
    assert s["arrivals"] == s["served"] + s["dropped"] + s["in_flight_end"]
    req = r.requests
    assert len(req) == s["arrivals"]
    assert (req["status"] == "served").sum() == s["served"]
    assert r.timeline["arrivals"].sum() == s["arrivals"]
    assert r.timeline["served"].sum() == s["served"]
    assert r.minutes["arrivals"].sum() == s["arrivals"]
    served = req[req["status"] == "served"]
    assert (served["latency_ms"] > 0).all() and req.loc[req["status"] != "served",
                                                         "latency_ms"].isna().all()


def test_closed_population_conserves_users():
    pop = ClosedPopulation(users=50, think_s=2.0, duration_s=300)
    r = run_events(pop, StaticPolicy(2), SimConfig(service=ServiceModel.exponential(0.05)))
    s = r.summary
    assert s["arrivals"] == s["served"] + s["dropped"] + s["in_flight_end"]
    assert s["in_flight_end"] <= 50  # never more requests out than users
    # throughput of a closed system: users / (think + response)
    expected = 50 / (2.0 + s["mean_ms"] / 1000.0)
    assert s["served"] / 300 == pytest.approx(expected, rel=0.05)


def test_mmc_against_erlang_c_and_littles_law():
    # max_ongoing_requests = 1: requests wait in one FIFO queue at the handle and go to
    # whichever replica frees up -- exactly M/M/c.
    c, mu, lam = 4, 10.0, 32.0
    cfg = SimConfig(service=ServiceModel.exponential(1 / mu), max_ongoing_requests=1,
                    routing="least_connections", seed=11, timeout_s=None)
    r = run_events(RateTrace.constant(lam, 5400, bin_seconds=60), StaticPolicy(c), cfg)
    req = r.requests
    steady = req[(req["arrival_s"] > 300) & (req["status"] == "served")]
    lat = steady["latency_ms"].to_numpy() / 1000.0
    w_theory = 1 / mu + mmc_mean_wait(lam, mu, c)
    assert lat.mean() == pytest.approx(w_theory, rel=0.05)
    assert np.percentile(lat, 95) == pytest.approx(mmc_response_percentile(lam, mu, c), rel=0.05)
    tl = r.timeline[r.timeline["t"] >= 300]
    # Little's law: time-average number in system = arrival rate x mean time in system
    assert tl["ongoing"].mean() == pytest.approx(lam * lat.mean(), rel=0.06)
    assert tl["busy_servers"].mean() / c == pytest.approx(lam / (c * mu), rel=0.03)
    # share of time all replicas are busy = share of arrivals that wait (PASTA) = Erlang C
    all_busy = (tl["ongoing"] >= c).mean()  # sampled at tick instants
    assert all_busy == pytest.approx(erlang_c(c, lam / mu), abs=0.05)


def test_same_seed_same_run_other_seed_other_run():
    trace = RateTrace.steps([20, 80], [200, 200])
    cfg = SimConfig(service=ServiceModel.exponential(0.05), startup_s=5, seed=7)
    a = run_events(trace, ray_default(1, 10), cfg)
    b = run_events(trace, ray_default(1, 10), cfg)
    c = run_events(trace, ray_default(1, 10), cfg.replace(seed=8))
    drop = ("wall_s", "decision_ms")
    assert {k: v for k, v in a.summary.items() if k not in drop} == \
        {k: v for k, v in b.summary.items() if k not in drop}
    assert a.events.equals(b.events)
    assert a.requests.equals(b.requests)
    assert a.summary["arrivals"] != c.summary["arrivals"]


def test_bad_input_is_rejected_with_the_argument_named():
    with pytest.raises(ValueError, match="rates"):
        RateTrace(np.array([1.0, -2.0]))
    with pytest.raises(ValueError, match="concurrency"):
        SimConfig(max_ongoing_requests=2, concurrency=3)
    with pytest.raises(ValueError, match="LB_STRATEGY|routing|strategy"):
        SimConfig(routing="nope")
    with pytest.raises(ValueError, match="kind"):
        ServiceModel("gamma", 0.1)
    with pytest.raises(ValueError, match="service"):
        ServiceModel.parse("exp:fast")
    with pytest.raises(ValueError, match="policy"):
        run_events(RateTrace.constant(1, 10), "ours", SimConfig())
    with pytest.raises(ValueError, match="replicas"):
        StaticPolicy(0)
