"""ForecastPolicy's decision and fallback logic on hand-built Serve AutoscalingContexts.

No Ray cluster: the policy's polling thread is switched off and its answer cache is filled by
hand, exactly as the thread would fill it.
"""

from __future__ import annotations

import math
import time

import pytest
from ray.serve._private.common import DeploymentID
from ray.serve.autoscaling_policy import replica_queue_length_autoscaling_policy
from ray.serve.config import AutoscalingConfig, AutoscalingContext

from echo_ray.autoscaling import Sample, ScalingConfig, ScalingOptimizer
from echo_ray.autoscaling.actor import deployment_key
from echo_ray.autoscaling.policy import (
    POLICY_PATH,
    ForecastPolicy,
    choose,
    forecast_autoscaling_config,
    sample_from_context,
)

KEY = deployment_key("app", "Model")


def context(ongoing: float = 0.0, running: int = 2, target: int = 2, queued: float = 0.0,
            custom: dict | None = None, target_ongoing: float = 2.0,
            now: float = 1000.0) -> AutoscalingContext:
    config = AutoscalingConfig(min_replicas=1, max_replicas=5,
                               target_ongoing_requests=target_ongoing)
    return AutoscalingContext(
        deployment_id=DeploymentID(name="Model", app_name="app"), deployment_name="Model",
        app_name="app", current_num_replicas=running, target_num_replicas=target,
        running_replicas=[], total_num_requests=ongoing, total_queued_requests=queued,
        aggregated_metrics=custom or {}, raw_metrics={}, capacity_adjusted_min_replicas=1,
        capacity_adjusted_max_replicas=5, policy_state={}, last_scale_up_time=None,
        last_scale_down_time=None, current_time=now, config=config)


def offline_policy(**kwargs) -> ForecastPolicy:
    policy = ForecastPolicy(**kwargs)
    policy.link.autostart = False
    return policy


def answer(policy: ForecastPolicy, desired: int, age_s: float) -> None:
    policy.link.answers[KEY] = ({"desired_replicas": desired}, time.monotonic() - age_s)


# ---- metrics from the context -------------------------------------------------------------
def test_sample_uses_ongoing_requests_as_load_and_target_ongoing_as_target_utilisation():
    s = sample_from_context(context(ongoing=6.0, running=3, queued=1.0), 0.7)
    # each replica holds 2 / 0.7 requests at 100%: 6 / (3 * 2 / 0.7) = 0.7
    assert s["utilisation"] == pytest.approx(0.7)
    assert s == {**s, "t": 1000.0, "request_rate": 6.0, "replicas": 3,
                 "ongoing_requests": 6.0, "queue_length": 1.0}


def test_sample_prefers_custom_metrics_from_record_autoscaling_stats():
    custom = {"request_rate": {"r1": 12.0, "r2": 8.0}, "p95_latency_ms": {"r1": 90.0, "r2": 250.0},
              "error_rate": {"r1": 0.0, "r2": 0.1}, "utilisation": {"r1": 0.4, "r2": 0.6}}
    # 2 ongoing on 2 replicas derive 2 / (2 * 2 / 0.7) = 0.35, below the busy fraction: the
    # reported (mean) busy fraction is the utilisation
    s = sample_from_context(context(ongoing=2.0, custom=custom), 0.7)
    assert s["request_rate"] == 20.0  # summed over replicas
    assert s["p95_latency_ms"] == 250.0  # the worst replica
    assert s["error_rate"] == pytest.approx(0.05) and s["utilisation"] == pytest.approx(0.5)


def test_a_saturated_busy_fraction_does_not_hide_a_queue():
    # one replica, busy all the time (busy fraction 1.0), 5 requests at it and 55 more queued
    # at the handle: the queue, not the capped busy fraction, says how far short it is
    custom = {"utilisation": {"r1": 1.0}, "request_rate": {"r1": 10.0}}
    ctx = context(ongoing=60.0, running=1, target=1, queued=55.0, custom=custom)
    s = sample_from_context(ctx, 0.7)
    assert s["utilisation"] == pytest.approx(60.0 / (2.0 / 0.7))  # 21, not 1.0
    assert s["queue_length"] == 55.0 and s["ongoing_requests"] == 60.0

    decide = ScalingOptimizer(ScalingConfig(min_instances=1, max_instances=40)).step
    d = decide(Sample(**s))
    # the ratio rule sizes from the ongoing requests, as Serve's rule does on the same
    # context (60 / target_ongoing_requests 2 = 30), not 1 -> ceil(1 / 0.7) = 2
    serve_desired, _ = replica_queue_length_autoscaling_policy(ctx)
    assert d.reactive_need == math.ceil(serve_desired) == 30
    assert d.action == "scale_up" and d.desired_replicas == 30
    assert set(d.triggers) >= {"utilisation", "queue_length"}

    # what a busy fraction alone would have given: growth capped at x1/0.7 per cooldown
    alone = ScalingOptimizer(ScalingConfig(min_instances=1, max_instances=40)).step(
        Sample(**{**s, "utilisation": 1.0}))
    assert alone.desired_replicas == 2


@pytest.mark.parametrize("ongoing, busy, expected", [
    (0.0, 0.9, 0.9),  # nothing ongoing right now: the busy fraction of the window counts
    (2.0, 0.9, 0.9),  # derived 0.35 < busy
    (8.0, 0.9, 8.0 / (2 * 2.0 / 0.7)),  # derived 1.4 > busy (requests waiting)
])
def test_sample_utilisation_is_the_larger_of_busy_fraction_and_ongoing(ongoing, busy, expected):
    custom = {"utilisation": {"r1": busy, "r2": busy}}
    s = sample_from_context(context(ongoing=ongoing, custom=custom), 0.7)
    assert s["utilisation"] == pytest.approx(expected)


def test_sample_with_no_running_replicas_is_still_valid():
    s = sample_from_context(context(ongoing=1.0, running=0, target=0), 0.7)
    assert s["replicas"] == 0 and s["utilisation"] == pytest.approx(0.35)


# ---- choosing between forecast and reactive --------------------------------------------------
@pytest.mark.parametrize("ans, age, expected", [
    (None, None, (1.5, "reactive:no_answer")),
    ({"desired_replicas": 4}, 0.3, (4, "forecast")),
    ({"desired_replicas": 4}, 5.1, (1.5, "reactive:stale")),
])
def test_choose(ans, age, expected):
    assert choose(1.5, ans, age, stale_after_s=5.0) == expected


def test_fresh_answer_is_returned():
    policy = offline_policy()
    answer(policy, 4, age_s=0.1)
    desired, state = policy(context(ongoing=0.0))
    assert desired == 4 and state == {"echo_ray_source": "forecast"}


@pytest.mark.parametrize("age_s", [None, 10.0])
def test_missing_or_stale_answer_falls_back_to_serves_reactive_rule(age_s):
    policy = offline_policy(stale_after_s=2.0)
    if age_s is not None:
        answer(policy, 5, age_s=age_s)
    ctx = context(ongoing=9.0, running=2)
    expected, _ = replica_queue_length_autoscaling_policy(ctx)
    desired, state = policy(ctx)
    assert desired == expected == pytest.approx(4.5)  # 2 * 9 / (2 * 2)
    assert state["echo_ray_source"].startswith("reactive")


def test_policy_pushes_the_sample_and_config_for_the_thread():
    policy = offline_policy(replica_capacity_rps=10.0)
    policy(context(ongoing=4.0))
    sample, config = policy.link.outbox[KEY]
    assert sample["ongoing_requests"] == 4.0
    # bounds follow the deployment's autoscaling config; policy kwargs are kept; Serve gates;
    # a quiet spell's peak is remembered for Serve's downscale delay (600 s: Serve's default)
    assert config == {"min_instances": 1, "max_instances": 5, "replica_capacity_rps": 10.0,
                      "serve_gated": True, "scale_down_window_s": 600.0}
    assert ScalingConfig.from_dict(config).max_instances == 5
    policy = offline_policy(scale_down_window_s=10.0)
    policy(context(ongoing=4.0))
    assert policy.link.outbox[KEY][1]["scale_down_window_s"] == 10.0  # given: kept


def test_policy_never_raises():
    policy = offline_policy()

    def broken():
        raise RuntimeError("metrics store unavailable")

    ctx = context()
    ctx._total_num_requests_value = broken  # the controller passes such lazy callables
    desired, state = policy(ctx)
    assert desired == ctx.target_num_replicas  # even the reactive rule failed: hold
    assert state["echo_ray_source"].startswith("reactive")


def test_bad_kwargs_raise_value_error_naming_them():
    with pytest.raises(ValueError, match="unknown keys \\['name'\\]"):
        ForecastPolicy(name="ForecastPolicy")
    with pytest.raises(ValueError, match="stale_after_s"):
        ForecastPolicy(stale_after_s=0)
    with pytest.raises(ValueError, match="scale_up_threshold"):
        ForecastPolicy(scale_up_threshold=2.0)
    with pytest.raises(ValueError, match="max_replicas"):
        forecast_autoscaling_config(max_replicas=0)


def test_autoscaling_config_round_trips_through_serve():
    config = forecast_autoscaling_config({"replica_capacity_rps": 10.0}, max_replicas=3,
                                         upscale_delay_s=1.0)
    parsed = AutoscalingConfig(**config)
    assert parsed.policy.policy_function == POLICY_PATH
    assert parsed.policy.policy_kwargs == {"replica_capacity_rps": 10.0}
    # what the controller does: deserialize and instantiate the class with the kwargs
    instance = parsed.policy.get_policy()(**parsed.policy.policy_kwargs)
    assert isinstance(instance, parsed.policy.get_policy())
