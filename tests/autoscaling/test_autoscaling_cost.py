"""Erlang B/C, M/M/c latency and the cost-benefit arithmetic on hand-computed cases."""

from __future__ import annotations

import heapq
import math

import numpy as np
import pytest

from echo_ray.autoscaling import (
    assess_change,
    erlang_b,
    erlang_c,
    mmc_mean_wait,
    mmc_prob_response_exceeds,
    mmc_prob_wait_exceeds,
    mmc_response_percentile,
    slo_rate_limit,
)


def test_erlang_hand_computed():
    assert erlang_b(1, 1.0) == pytest.approx(0.5)
    assert erlang_b(2, 1.0) == pytest.approx(0.2)  # (1/2) / (1 + 1 + 1/2)
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert erlang_c(1, 0.6) == pytest.approx(0.6)  # M/M/1: P(wait) = rho
    assert erlang_c(3, 3.0) == 1.0 and erlang_c(0, 0.5) == 1.0 and erlang_c(4, 0.0) == 0.0


def test_erlang_c_is_stable_for_many_servers():
    c = erlang_c(2000, 1950.0)
    assert 0.0 < c < 1.0 and math.isfinite(c)
    assert erlang_c(2000, 1900.0) < c  # less load, less waiting


def test_mm1_and_mm2_hand_computed():
    # M/M/1, lam=0.5, mu=1: Wq = rho / (mu - lam) = 1; T ~ Exp(mu - lam)
    assert mmc_mean_wait(0.5, 1.0, 1) == pytest.approx(1.0)
    assert mmc_prob_response_exceeds(0.5, 1.0, 1, 2.0) == pytest.approx(math.exp(-1.0))
    assert mmc_response_percentile(5.0, 10.0, 1, 0.95) == pytest.approx(-math.log(0.05) / 5)
    # M/M/2, lam=mu=1: C = 1/3, Wq = C / (2 - 1)
    assert mmc_mean_wait(1.0, 1.0, 2) == pytest.approx(1 / 3)
    assert mmc_prob_wait_exceeds(1.0, 1.0, 2, 1.0) == pytest.approx(math.exp(-1.0) / 3)
    # theta = c mu - lam = mu: P(T > 1) = (2/3) e^-1 + (1/3)(1 + 1) e^-1
    assert mmc_prob_response_exceeds(1.0, 1.0, 2, 1.0) == pytest.approx(4 / 3 * math.exp(-1))
    near = mmc_prob_response_exceeds(1.0 + 1e-7, 1.0, 2, 1.0)
    assert near == pytest.approx(4 / 3 * math.exp(-1), rel=1e-5)


def test_unstable_queue():
    assert mmc_mean_wait(2.0, 1.0, 2) == math.inf
    assert mmc_prob_response_exceeds(3.0, 1.0, 2, 10.0) == 1.0
    assert mmc_response_percentile(3.0, 1.0, 2) == math.inf


def test_response_tail_matches_a_simulated_mmc_queue():
    """FCFS M/M/3 simulated with a seeded RNG: the closed form must match the simulation."""
    rng = np.random.default_rng(0)
    lam, mu, c, n = 1.8, 1.0, 3, 300_000
    arrivals = np.cumsum(rng.exponential(1 / lam, n)).tolist()
    service = rng.exponential(1 / mu, n).tolist()
    free = [0.0] * c  # heap of the times each server becomes free
    response = []
    for arrive, work in zip(arrivals, service, strict=True):
        done = max(arrive, heapq.heappop(free)) + work
        heapq.heappush(free, done)
        response.append(done - arrive)
    response = np.array(response[5000:])  # drop the empty-system start
    for t in (0.5, 2.0, 4.0):
        assert np.mean(response > t) == pytest.approx(mmc_prob_response_exceeds(lam, mu, c, t),
                                                      abs=0.008)
    mean_wait = np.mean(response) - 1 / mu
    assert mean_wait == pytest.approx(mmc_mean_wait(lam, mu, c), rel=0.05)


def test_slo_rate_limit_mm1_closed_form():
    # M/M/1: P(T > t) = exp(-(mu - lam) t) <= 0.05  <=>  lam <= mu + ln(0.05) / t
    assert slo_rate_limit(10.0, 1, 0.4, 0.95) == pytest.approx(10 + math.log(0.05) / 0.4,
                                                               rel=1e-6)
    assert slo_rate_limit(1.0, 4, 0.4) == 0.0  # service alone (mean 1 s) breaks 400 ms p95
    assert slo_rate_limit(10.0, 0, 0.4) == 0.0


def _assess(current, desired, rate, violation_cost=10.0):
    return assess_change(current, desired, [rate], service_rate=10.0, target_latency_s=0.4,
                         window_s=3600.0, price_per_replica_hour=0.5,
                         violation_cost_per_hour=violation_cost, latency_percentile=0.95,
                         roi_threshold=0.1)


def test_cost_benefit_scale_up_that_fixes_an_overload_is_recommended():
    # 25 rps on 2 replicas of 10 rps is unstable; 4 replicas keep p95 < 400 ms
    assert mmc_response_percentile(25.0, 10.0, 4) < 0.4
    cb = _assess(2, 4, 25.0)
    assert cb.replica_seconds == 7200.0 and cb.cost == pytest.approx(1.0)  # 2 h x $0.5
    assert (cb.p_violation_current, cb.p_violation_desired) == (1.0, 0.0)
    assert cb.violation_s_avoided == 3600.0 and cb.benefit == pytest.approx(10.0)
    assert cb.net == pytest.approx(9.0) and cb.roi == pytest.approx(9.0)
    assert cb.verdict == "recommended"


def test_cost_benefit_other_verdicts():
    idle_up = _assess(2, 4, 5.0)  # no violation either way: pure cost
    assert idle_up.roi == pytest.approx(-1.0) and idle_up.verdict == "not-recommended"
    safe_down = _assess(4, 2, 5.0)  # saves $1, risks nothing
    assert safe_down.cost == pytest.approx(-1.0) and safe_down.roi == pytest.approx(1.0)
    assert safe_down.verdict == "recommended"
    risky_down = _assess(4, 2, 25.0)  # saves $1, costs an hour of violation ($10)
    assert risky_down.violation_s_avoided == -3600.0
    assert risky_down.roi == pytest.approx(-9.0) and risky_down.verdict == "not-recommended"
    break_even = _assess(2, 4, 25.0, violation_cost=1.0)
    assert break_even.roi == pytest.approx(0.0) and break_even.verdict == "neutral"
    hold = _assess(3, 3, 25.0)
    assert hold.cost == 0.0 and hold.roi is None and hold.verdict == "neutral"


def test_violation_probability_uses_the_rate_distribution():
    # 3 replicas x 10 rps: M/M/3 limit is between 15 and 25 rps -> half the samples violate
    cb = assess_change(3, 3, [5.0, 15.0, 25.0, 35.0], 10.0, 0.4, 60.0, 1.0, 1.0)
    assert cb.p_violation_current == 0.5


def test_unknown_capacity_prices_only_the_replicas():
    cb = assess_change(1, 3, [10.0], None, 0.4, 1800.0, 2.0, 10.0)
    assert cb.cost == pytest.approx(2.0) and cb.p_violation_current is None
    assert cb.verdict == "neutral"


@pytest.mark.parametrize("call, name", [
    (lambda: erlang_c(-1, 1.0), "c"),
    (lambda: erlang_b(2, -1.0), "a"),
    (lambda: mmc_mean_wait(1.0, 0.0, 1), "mu"),
    (lambda: mmc_response_percentile(1.0, 2.0, 1, q=1.0), "q"),
    (lambda: assess_change(1, 2, [], 1.0, 0.4, 60.0, 1.0, 1.0), "rates"),
    (lambda: assess_change(1, 2, [1.0], 1.0, 0.4, 0.0, 1.0, 1.0), "window_s"),
])
def test_bad_arguments(call, name):
    with pytest.raises(ValueError, match=name):
        call()
