"""Nodes ahead of demand: the pure decision (how many replicas' room to ask for, when to
release it) and the optimizer state that sends the union of requests (SDK call replaced)."""

from __future__ import annotations

import pytest

from echo_ray.autoscaling import Forecast, Sample, ScalingConfig, ScalingOptimizer
from echo_ray.autoscaling.actor import ScalingOptimizerState
from echo_ray.autoscaling.nodes import (
    NodeRequests,
    ahead_bundles,
    node_horizon_steps,
    peak_ahead,
    replicas_ahead,
)

CPU = {"CPU": 1.0}


def forecast(upper: float) -> Forecast:
    return Forecast(point=upper, lower=upper, upper=upper, horizon=1, coverage=0.8,
                    n_residuals=0, calibrated=True)


def test_replicas_ahead_from_the_upper_bound_within_the_bounds():
    cfg = ScalingConfig(min_instances=1, max_instances=10, node_startup_s=120.0)
    assert replicas_ahead(forecast(140.0), 20.0, cfg) == 10  # ceil(140 / 14)
    assert replicas_ahead(forecast(1000.0), 20.0, cfg) == 10  # at most max_instances
    assert replicas_ahead(forecast(0.0), 20.0, cfg) == 1  # at least min_instances
    assert replicas_ahead(None, 20.0, cfg) is None and replicas_ahead(forecast(1), None, cfg) is None


def test_peak_ahead_covers_every_step_until_a_node_is_up():
    cfg = ScalingConfig(min_instances=1, max_instances=10, node_startup_s=120.0)
    # a peak that ends before the start-up time still needs its nodes now
    assert peak_ahead([forecast(10.0), forecast(140.0), forecast(20.0)], 20.0, cfg) == 10
    assert peak_ahead([None, forecast(30.0)], 20.0, cfg) == 3
    assert peak_ahead([None, None], 20.0, cfg) is None and peak_ahead([], 20.0, cfg) is None


def test_a_recurring_step_is_asked_for_before_it_comes_and_held_through_it():
    """A square wave (1 req/s for 120 s, 4.5 req/s for 40 s) seen as Serve's pushed metrics
    (a 10-s mean every 10 s), the season given: from the third step on, the node request
    stands before the step comes and until it ends, and is released in the quiet part."""
    period, low_s = 160.0, 120.0
    rate = lambda t: 4.5 if t % period >= low_s else 1.0  # noqa: E731
    cfg = ScalingConfig(min_instances=1, max_instances=3, replica_capacity_rps=2.5,
                        target_latency_ms=60_000, forecast_step_s=2.0, seasonal_period=80,
                        forecast_max_horizon=28, node_startup_s=50.0, replica_resources=CPU,
                        lead_time_s=5.0, serve_gated=True)
    opt = ScalingOptimizer(cfg)
    seen, replicas, ahead = 1.0, 1, {}
    for i in range(1000):  # 500 s at Serve's 0.5-s poll
        t = i * 0.5
        if i % 20 == 0:
            seen = sum(rate(t - k * 0.1) for k in range(100)) / 100
        d = opt.step(Sample(t=t, request_rate=seen, utilisation=seen / (2.5 * replicas),
                            replicas=replicas, target_replicas=replicas))
        replicas, ahead[t] = d.desired_replicas, d.ahead_replicas
    step = 2 * period + low_s  # 440 s
    assert all(ahead[t] == 3 for t in ahead if step - 20 <= t <= step + 40)
    assert any(ahead[t] == 1 for t in ahead if step - 90 <= t <= step - 40)  # released


def test_bundles_only_beyond_what_runs():
    assert ahead_bundles(6, 4, CPU) == [CPU] * 6  # the total: request_resources counts usage
    assert ahead_bundles(4, 4, CPU) == [] and ahead_bundles(None, 4, CPU) == []
    assert ahead_bundles(6, 4, None) == []


def test_node_horizon_covers_the_start_up_within_the_forecasters_reach():
    cfg = ScalingConfig(node_startup_s=120.0, forecast_step_s=10.0)
    assert node_horizon_steps(cfg, 30) == 13  # ceil(120 / 10) + 1
    assert node_horizon_steps(cfg, 5) == 5


def test_requests_are_sent_as_one_union_only_when_it_changes():
    sent = []
    nodes = NodeRequests(send=lambda b: sent.append(list(b)))
    assert not nodes.update("a", [])  # nothing asked, nothing to release
    assert nodes.update("a", [CPU] * 2) and sent == [[CPU] * 2]
    assert not nodes.update("a", [CPU] * 2)  # unchanged: no call
    assert nodes.update("b", [{"GPU": 1.0}]) and sent[-1] == [CPU, CPU, {"GPU": 1.0}]
    assert nodes.update("a", []) and sent[-1] == [{"GPU": 1.0}]
    assert nodes.update("b", []) and sent[-1] == []  # released
    assert nodes.calls == 4


def test_a_failing_sdk_call_is_retried_on_the_next_change():
    calls = []

    def send(bundles):
        calls.append(bundles)
        if len(calls) == 1:
            raise RuntimeError("no autoscaler")

    nodes = NodeRequests(send=send)
    assert not nodes.update("a", [CPU]) and nodes.failures == 1 and nodes.sent is None
    assert nodes.update("a", [CPU]) and nodes.sent == [CPU]


def test_the_optimizer_state_asks_ahead_and_releases_when_the_forecast_falls():
    sent = []
    state = ScalingOptimizerState(export_metrics=False,
                                  node_requests=NodeRequests(send=lambda b: sent.append(b)))
    cfg = ScalingConfig(min_instances=1, max_instances=8, replica_capacity_rps=10.0,
                        node_startup_s=60.0, replica_resources=CPU, serve_gated=True,
                        forecast_max_horizon=61).to_dict()
    state.configure("app/W", cfg)
    state.set_forecast_override("app/W", 40.0)  # 40 / (10 x 0.7) -> 6 replicas
    d = state.observe("app/W", {"t": 0.0, "request_rate": 5.0, "utilisation": 0.6,
                                "replicas": 2, "target_replicas": 2}, cfg)
    assert d["ahead_replicas"] == 6 and sent == [[CPU] * 6] and d["node_request"] == 6
    assert state.events("app/W")[-1]["node_request"] == 6  # listed with the events
    state.set_forecast_override("app/W", 5.0)
    d = state.observe("app/W", {"t": 1.0, "request_rate": 5.0, "utilisation": 0.6,
                                "replicas": 6, "target_replicas": 6}, cfg)
    assert d["ahead_replicas"] == 1 and sent[-1] == [] and d["node_request"] == 0


def test_off_by_default():
    opt = ScalingOptimizer(ScalingConfig(replica_capacity_rps=10.0))
    assert opt.step(Sample(t=0.0, request_rate=1.0, utilisation=0.5, replicas=1)).ahead_replicas \
        is None
    with pytest.raises(ValueError, match="replica_resources"):
        ScalingConfig(replica_resources={"CPU": -1})
    with pytest.raises(ValueError, match="node_startup_s"):
        ScalingConfig(node_startup_s=-1.0)
