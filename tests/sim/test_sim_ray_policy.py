"""Ray Serve's default policy in the simulator: Ray's own code on the simulated clock."""

from __future__ import annotations

import pytest

from echo_ray.sim import OursPolicy, RateTrace, ServiceModel, SimConfig, ray_default, run_events
from echo_ray.sim.policies import Observation, ServePolicy, ray_decide


def test_default_policy_scales_up_under_a_step_and_down_after_it():
    # 2 req/s per replica at 100% busy; 4 req/s needs ~3, 30 req/s needs ~20 replicas.
    trace = RateTrace.steps([4, 30, 4], [300, 600, 1200])
    cfg = SimConfig(service=ServiceModel.exponential(0.5), startup_s=10, seed=5)
    policy = ray_default(1, 30, initial_replicas=3)
    r = run_events(trace, policy, cfg)
    tl = r.timeline
    before = tl[tl["t"] < 300]["target"].max()
    during = tl[(tl["t"] >= 300) & (tl["t"] < 900)]["target"].max()
    end = tl["target"].iloc[-1]
    assert during > before + 5
    assert end < during
    ups = r.events[r.events["to"] > r.events["from"]]
    downs = r.events[r.events["to"] < r.events["from"]]
    # Ray's delays on the simulated clock: the first scale-up after the step waits
    # upscale_delay_s (30 s) of sustained demand; scale-down waits downscale_delay_s (600 s).
    first_up = ups[ups["t"] >= 300]["t"].min()
    assert 300 + 30 <= first_up <= 300 + 30 + 45
    first_down = downs[downs["t"] >= 900]["t"].min()
    last_up = ups[ups["t"] < first_down]["t"].max()
    assert first_down >= last_up + 600  # 600 s of wanting fewer since it last wanted more
    assert policy.describe()["upscale_delay_s"] == 30.0
    assert policy.describe()["downscale_delay_s"] == 600.0


def _obs(t, running, target, ongoing):
    return Observation(t=t, running=running, starting=0, target=target, ongoing=ongoing,
                       queued=0.0, window=lambda s: {})


def test_our_composition_equals_rays_wrapper_on_a_patched_clock(monkeypatch):
    """ray_decide(policy, ctx) == Ray's `_apply_autoscaling_config(policy)(ctx)` + bounds
    when the wall clock reads the simulated time."""
    import ray.serve.autoscaling_policy as rap
    from ray.serve.autoscaling_policy import (
        _apply_autoscaling_config,
        replica_queue_length_autoscaling_policy,
    )

    now = [0.0]
    monkeypatch.setattr(rap.time, "time", lambda: now[0])
    ours = ServePolicy({"min_replicas": 1, "max_replicas": 12, "upscale_delay_s": 3.0,
                        "downscale_delay_s": 7.0})
    rays = _apply_autoscaling_config(replica_queue_length_autoscaling_policy)
    state_a, state_b = {}, {}
    target_a = target_b = running = 2
    loads = [2, 9, 9, 9, 9, 30, 30, 1, 1, 1, 1, 1, 1, 1, 1, 1, 5, 5, 0, 0, 0, 0, 0, 0, 0, 0]
    for k, load in enumerate(loads):
        now[0] = float(k)
        ctx = ours.context(_obs(float(k), running, target_a, float(load)))
        ctx_a = type(ctx)(**{**_ctx_fields(ctx), "policy_state": dict(state_a),
                             "target_num_replicas": target_a})
        ctx_b = type(ctx)(**{**_ctx_fields(ctx), "policy_state": dict(state_b),
                             "target_num_replicas": target_b})
        a, state_a = ray_decide(replica_queue_length_autoscaling_policy, ctx_a)
        b, state_b = rays(ctx_b)
        b = max(1, min(12, b))
        assert a == b and state_a == state_b, (k, a, b, state_a, state_b)
        target_a = target_b = a
        running = a


def _ctx_fields(ctx) -> dict:
    return {"deployment_id": ctx.deployment_id, "deployment_name": ctx.deployment_name,
            "app_name": ctx.app_name, "current_num_replicas": ctx.current_num_replicas,
            "target_num_replicas": ctx.target_num_replicas,
            "running_replicas": ctx.running_replicas,
            "total_num_requests": ctx.total_num_requests,
            "total_queued_requests": ctx.total_queued_requests,
            "aggregated_metrics": ctx.aggregated_metrics, "raw_metrics": ctx.raw_metrics,
            "capacity_adjusted_min_replicas": ctx.capacity_adjusted_min_replicas,
            "capacity_adjusted_max_replicas": ctx.capacity_adjusted_max_replicas,
            "policy_state": ctx.policy_state, "last_scale_up_time": ctx.last_scale_up_time,
            "last_scale_down_time": ctx.last_scale_down_time, "current_time": ctx.current_time,
            "config": ctx.config}


def test_metrics_reach_the_controller_as_serve_aggregates_them():
    """Recorded every 6 s, pushed every 10 s, time-weighted mean over the look-back."""
    policy = ray_default(1, 10)
    ctxs = [policy.context(_obs(float(t), 1, 1, 4.0 if t <= 60 else 10.0)) for t in range(0, 121)]
    assert ctxs[5].total_num_requests == 0.0  # nothing pushed before the first push at 10 s
    assert ctxs[50].total_num_requests == pytest.approx(4.0)
    # the jump just after 60 s is recorded at 66 s, reaches the controller with the push at
    # 70 s, then averages in over the 30 s look-back
    assert ctxs[65].total_num_requests == pytest.approx(4.0)
    assert 4.0 < ctxs[75].total_num_requests < 10.0
    assert ctxs[120].total_num_requests == pytest.approx(10.0)


def test_unpriced_optimizer_makes_the_same_decisions():
    trace = RateTrace.steps([20, 90, 20], [200, 300, 300])
    cfg = SimConfig(service=ServiceModel.exponential(0.05), startup_s=10, seed=2)
    priced = OursPolicy(1, 20, keep_records=True)
    unpriced = OursPolicy(1, 20, keep_records=True, price_decisions=False)
    a, b = run_events(trace, priced, cfg), run_events(trace, unpriced, cfg)
    assert [r["desired"] for r in priced.records] == [r["desired"] for r in unpriced.records]
    assert a.events[["t", "from", "to"]].equals(b.events[["t", "from", "to"]])
    assert any(r["roi"] is not None for r in priced.records)
    assert all(r["roi"] is None for r in unpriced.records)
