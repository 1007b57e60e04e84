"""The fluid (time-stepped) mode against the exact event-driven mode, and its queueing laws."""

from __future__ import annotations

import math

import numpy as np
import pytest

from echo_ray.autoscaling.cost import mmc_prob_response_exceeds
from echo_ray.sim import (
    ClosedPopulation,
    RateTrace,
    ServiceModel,
    SimConfig,
    StaticPolicy,
    ray_default,
    run_events,
    run_fluid,
)
from echo_ray.sim.queueing import quantile, replicas_needed, tail

STEP = RateTrace.steps([25, 75, 25], [600, 600, 600])
CFG = SimConfig(service=ServiceModel.exponential(0.1), startup_s=30, seed=1, keep_requests=False)


@pytest.mark.parametrize("make, routing", [
    (lambda: StaticPolicy(10), "power_of_two"),
    (lambda: StaticPolicy(10), "round_robin"),
    (lambda: ray_default(1, 30), "power_of_two"),
])
def test_fluid_agrees_with_events_within_10_percent(make, routing):
    cfg = CFG.replace(routing=routing)
    event, fluid = run_events(STEP, make(), cfg), run_fluid(STEP, make(), cfg)
    for key in ("p95_ms", "replica_seconds"):
        assert fluid.summary[key] == pytest.approx(event.summary[key], rel=0.10), key
    assert fluid.summary["arrivals"] == pytest.approx(event.summary["arrivals"], rel=0.02)


def test_fluid_closed_population_matches_events():
    pop = ClosedPopulation(users=600, think_s=5.0, duration_s=600)
    cfg = CFG.replace(service=ServiceModel.exponential(0.05))
    event, fluid = run_events(pop, StaticPolicy(8), cfg), run_fluid(pop, StaticPolicy(8), cfg)
    assert fluid.summary["served"] == pytest.approx(event.summary["served"], rel=0.05)
    assert fluid.summary["p95_ms"] == pytest.approx(event.summary["p95_ms"], rel=0.10)


def test_fluid_is_deterministic_and_counts_overload_as_drops():
    overload = RateTrace.constant(100, 300)
    a = run_fluid(overload, StaticPolicy(2), CFG)
    b = run_fluid(overload, StaticPolicy(2), CFG)
    assert a.summary["dropped"] == b.summary["dropped"] > 0
    s = a.summary
    assert s["arrivals"] == pytest.approx(s["served"] + s["dropped"] + s["in_flight_end"])
    assert s["slo_violation_minutes"] == s["minutes"]


def test_queueing_laws():
    mu = 10.0
    # central = M/M/c: the closed form used by the cost model
    for c, rho, x in ((1, 0.5, 0.2), (8, 0.7, 0.3), (40, 0.9, 0.25)):
        assert float(tail(x, mu, c, rho, "central")) == pytest.approx(
            mmc_prob_response_exceeds(rho * c * mu, mu, c, x), rel=1e-9)
    # one replica: every router reduces to M/M/1, T ~ Exp(mu (1 - rho))
    for model in ("pod2", "rr", "random"):
        assert float(tail(0.3, mu, 1, 0.6, model)) == pytest.approx(math.exp(-mu * 0.4 * 0.3))
    # better routers, shorter tails; more load, longer tails
    p = {m: float(quantile(0.95, mu, 20, 0.8, m)) for m in ("central", "pod2", "rr", "random")}
    assert p["central"] < p["pod2"] < p["random"] and p["rr"] < p["random"]
    assert np.all(np.diff(quantile(0.95, mu, 10, [0.3, 0.6, 0.9], "pod2")) > 0)
    # sizing: the fewest replicas whose p95 meets the SLO
    c = replicas_needed(300.0, mu, 0.4, model="pod2")
    assert float(quantile(0.95, mu, c, 300 / (c * mu), "pod2")) <= 0.4
    assert float(quantile(0.95, mu, c - 1, min(300 / ((c - 1) * mu), 0.98), "pod2")) > 0.4
    with pytest.raises(ValueError, match="slo_s"):
        replicas_needed(10.0, mu, 0.1)
