"""ScalingOptimizer: triggers, cooldowns on the sample clock, bounds, predictive sizing, records."""

from __future__ import annotations

import json

import pytest

from echo_ray.autoscaling import (
    Forecast,
    Sample,
    ScalingConfig,
    ScalingOptimizer,
    SimpleExponentialSmoothing,
)

BASE = {"t": 0.0, "request_rate": 1.0, "utilisation": 0.5, "replicas": 10}


def sample(**kw) -> Sample:
    return Sample(**{**BASE, **kw})


def optimizer(**cfg) -> ScalingOptimizer:
    """Capacity configured high so the predictive need (tiny rate) never interferes."""
    settings = {"min_instances": 1, "max_instances": 100, "replica_capacity_rps": 1000.0,
                **cfg}
    return ScalingOptimizer(ScalingConfig(**settings))


# ---- scale-up triggers ------------------------------------------------------------------------
@pytest.mark.parametrize("kw, trigger, desired", [
    ({"utilisation": 0.9}, "utilisation", 13),  # ceil(10 * 0.9 / 0.7)
    ({"p95_latency_ms": 450.0}, "p95_latency", 11),  # at least one more
    ({"error_rate": 0.06}, "error_rate", 11),
    # a queue is drained within backlog_drain_s (60 s) flat out: (1 + 630000 / 60) / 1000
    ({"queue_length": 630_000.0}, "queue_length", 11),
])
def test_each_trigger_scales_up(kw, trigger, desired):
    d = optimizer().step(sample(**kw))
    assert d.action == "scale_up" and d.triggers == (trigger,)
    assert d.desired_replicas == desired and d.reactive_need == desired


def test_thresholds_are_strict_and_quiet_normal_load_holds():
    d = optimizer().step(sample(utilisation=0.8, p95_latency_ms=400.0, error_rate=0.05,
                                queue_length=50.0))
    assert d.action == "hold" and d.triggers == () and d.blocked_by is None


def test_multiple_triggers_are_all_recorded():
    d = optimizer().step(sample(utilisation=0.95, p95_latency_ms=900.0, queue_length=80.0,
                                request_rate=9500.0))
    assert set(d.triggers) == {"utilisation", "p95_latency", "queue_length"}
    assert d.desired_replicas == 14  # ceil(9500 / (1000 * 0.7)); the queue drains in 0.1 s


# ---- cooldowns on the samples' clock ------------------------------------------------------
def test_scale_up_cooldown_runs_on_the_sample_clock():
    opt = optimizer(scale_up_cooldown_s=30.0)
    t0 = 1.0e9  # far from the wall clock; the whole test takes milliseconds
    assert opt.step(sample(t=t0, utilisation=0.9)).action == "scale_up"
    d = opt.step(sample(t=t0 + 29.0, utilisation=0.9, replicas=13))
    assert d.action == "hold" and d.blocked_by == "scale_up_cooldown"
    assert d.triggers == ("utilisation",)
    d = opt.step(sample(t=t0 + 30.0, utilisation=0.9, replicas=13))
    assert d.action == "scale_up" and d.desired_replicas == 17  # ceil(13 * 0.9 / 0.7)


def test_scale_down_needs_a_sustained_quiet_spell():
    opt = optimizer(scale_down_window_s=60.0, scale_down_cooldown_s=0.0)
    quiet = {"utilisation": 0.1, "p95_latency_ms": 50.0}
    for t in range(0, 60, 10):
        d = opt.step(sample(t=float(t), **quiet))
        assert d.action == "hold", t
    d = opt.step(sample(t=60.0, **quiet))
    assert d.action == "scale_down" and d.desired_replicas == 2  # ceil(10 * 0.1 / 0.7)
    assert "sustained_low_load" in d.triggers


@pytest.mark.parametrize("breaker", [
    {"utilisation": 0.55},  # inside the band (above SCALE_DOWN_THRESHOLD)
    {"p95_latency_ms": 250.0},  # not well inside the 400 ms target (limit 200 ms)
    {"error_rate": 0.02},  # not well inside the 5% limit (limit 1%)
])
def test_one_busy_sample_restarts_the_quiet_spell(breaker):
    opt = optimizer(scale_down_window_s=60.0, scale_down_cooldown_s=0.0)
    quiet = {"utilisation": 0.1, "p95_latency_ms": 50.0}
    for t in range(0, 50, 10):
        opt.step(sample(t=float(t), **quiet))
    opt.step(sample(t=50.0, **{**quiet, **breaker}))
    for t in range(60, 110, 10):
        assert opt.step(sample(t=float(t), **quiet)).action == "hold", t
    assert opt.quiet_for() == 40.0
    assert opt.step(sample(t=120.0, **quiet)).action == "scale_down"


def test_scale_down_cooldown_counts_from_the_last_change():
    opt = optimizer(scale_down_window_s=0.0, scale_down_cooldown_s=120.0)
    assert opt.step(sample(t=0.0, utilisation=0.9)).action == "scale_up"
    quiet = {"utilisation": 0.1, "replicas": 13}
    d = opt.step(sample(t=100.0, **quiet))
    assert d.action == "hold" and d.blocked_by == "scale_down_cooldown"
    assert d.desired_replicas == 13
    d = opt.step(sample(t=120.0, **quiet))
    assert d.action == "scale_down" and d.desired_replicas == 2
    d = opt.step(sample(t=130.0, utilisation=0.1, replicas=2))
    assert d.blocked_by == "scale_down_cooldown"  # 2 -> 1 waits for the cooldown again
    assert d.desired_replicas == 2 and d.previous_target == 2


# ---- bounds ---------------------------------------------------------------------------------------
def test_max_instances_caps_the_target():
    opt = optimizer(max_instances=12, scale_up_cooldown_s=0.0)
    d = opt.step(sample(t=0.0, utilisation=0.99))
    assert d.desired_replicas == 12 and d.reactive_need == 15
    d = opt.step(sample(t=1.0, utilisation=0.99, replicas=12))
    assert d.action == "hold" and d.blocked_by == "max_instances"


def test_min_instances_floor_applies_even_when_idle():
    opt = optimizer(min_instances=3, scale_down_window_s=0.0, scale_down_cooldown_s=0.0)
    d = opt.step(sample(utilisation=0.0, p95_latency_ms=0.0))
    assert d.action == "scale_down" and d.desired_replicas == 3


def test_running_counts_outside_the_bounds_are_corrected():
    d = optimizer(min_instances=2, max_instances=8).step(sample(replicas=0, utilisation=0.0))
    assert d.action == "scale_up" and d.desired_replicas == 2 and "min_instances" in d.triggers
    d = optimizer(min_instances=2, max_instances=8).step(sample(replicas=20))
    assert d.action == "scale_down" and d.desired_replicas == 8 and "max_instances" in d.triggers


def test_a_bounds_correction_starts_no_cooldown():
    # a deployment registering shows 0 running replicas: the target goes to min_instances at
    # once, and load that arrives seconds later is answered without waiting a cooldown
    opt = optimizer(min_instances=1, max_instances=8, scale_up_cooldown_s=30.0)
    d = opt.step(sample(t=0.0, replicas=0, utilisation=0.0))
    assert d.action == "scale_up" and d.desired_replicas == 1 and d.triggers == ("min_instances",)
    d = opt.step(sample(t=5.0, replicas=1, utilisation=3.0, request_rate=3000.0))
    assert d.action == "scale_up" and d.blocked_by is None
    assert d.desired_replicas == 5  # ceil(3000 / (1000 * 0.7))
    # that one was asked for by the metrics: the cooldown runs from it
    d = opt.step(sample(t=20.0, replicas=5, utilisation=0.95))
    assert d.action == "hold" and d.blocked_by == "scale_up_cooldown"


def test_a_correction_that_load_takes_further_starts_the_cooldown():
    opt = optimizer(min_instances=2, max_instances=8, scale_up_cooldown_s=30.0)
    d = opt.step(sample(t=0.0, replicas=1, utilisation=2.0, request_rate=2000.0))  # below
    # min and overloaded
    assert d.desired_replicas == 3 and "min_instances" in d.triggers  # ceil(2000 / 700)
    d = opt.step(sample(t=10.0, replicas=3, utilisation=0.95))
    assert d.blocked_by == "scale_up_cooldown"


# ---- the target is held ---------------------------------------------------------------------
def test_target_is_held_while_new_replicas_start():
    """During the cooldown the samples still show the old count: the target must not drop."""
    opt = optimizer(scale_up_cooldown_s=30.0)
    assert opt.step(sample(t=0.0, utilisation=0.9)).desired_replicas == 13
    for t in (1.0, 10.0, 20.0):  # replicas still starting: 10 running, still busy
        d = opt.step(sample(t=t, utilisation=0.9))
        assert d.desired_replicas == 13 and d.action == "hold" and d.previous_target == 13
        assert d.current_replicas == 10
    d = opt.step(sample(t=25.0, utilisation=0.6, replicas=13))
    assert d.desired_replicas == 13 and d.action == "hold" and d.blocked_by is None


def test_asking_again_without_a_new_sample_repeats_the_decision():
    opt = optimizer()
    first = opt.step(sample(utilisation=0.9))
    assert opt.recommend() is first and opt.recommend() is first
    assert len(opt.decisions) == 1


# ---- predictive need ----------------------------------------------------------------------------
def _steady(opt, rate, replicas, utilisation, n=40):
    d = None
    for t in range(n):
        d = opt.step(Sample(t=float(t), request_rate=rate + (t % 3 - 1) * 0.01 * rate,
                            utilisation=utilisation, replicas=replicas))
    return d


def test_predictive_target_scales_with_the_current_size():
    """Upstream's bug: the predictive target ignored the scale and always said 1-3 replicas."""
    cfg = ScalingConfig(max_instances=1000, scale_down_window_s=1e9)
    small = _steady(ScalingOptimizer(cfg), rate=100.0, replicas=10, utilisation=0.5)
    large = _steady(ScalingOptimizer(cfg), rate=400.0, replicas=40, utilisation=0.5)
    # measured capacity: 100 / (10 * 0.5) = 20 rps per replica, the same at both sizes
    assert small.capacity_source == "measured" and small.capacity_rps == pytest.approx(20.0)
    assert large.capacity_rps == pytest.approx(20.0)
    # need ~ upper / (20 * 0.7): ~101 rps -> 8 replicas, ~404 rps -> 29 replicas
    assert 8 <= small.predictive_need <= 9
    assert 29 <= large.predictive_need <= 31
    assert large.predictive_need / small.predictive_need == pytest.approx(4.0, rel=0.15)
    # and the reactive need scales with the current size as well
    assert optimizer().step(sample(replicas=40, utilisation=0.9)).desired_replicas == 52


def test_forecast_scales_up_before_the_load_arrives():
    """A ramp that will exceed capacity within the lead time triggers only on the forecast."""
    opt = ScalingOptimizer(ScalingConfig(replica_capacity_rps=10.0, lead_time_s=10.0,
                                         max_instances=50, scale_down_window_s=1e9))
    decisions = []
    for t in range(80):
        rate = 30.0 + 0.5 * t  # 30 -> 69.5 rps; 10 replicas of 10 rps stay below 80% busy
        decisions.append(opt.step(Sample(t=float(t), request_rate=rate,
                                         utilisation=rate / 100.0, replicas=10)))
    ups = [d for d in decisions if d.action == "scale_up"]
    assert ups, "the ramp should have been forecast"
    first = ups[0]
    assert first.triggers == ("forecast",) and first.sample.utilisation < 0.8
    assert first.horizon_steps == 11  # 10 s lead at 1 s steps, from the last complete step
    assert first.forecast.upper > 70.0  # beyond 10 replicas x 10 rps x 0.7
    assert first.predictive_need == first.desired_replicas > 10


def test_forecast_override_drives_the_target_both_ways():
    opt = ScalingOptimizer(ScalingConfig(replica_capacity_rps=10.0, max_instances=30,
                                         scale_down_window_s=10.0, scale_down_cooldown_s=0.0))
    opt.set_forecast_override(Forecast(point=180.0, lower=170.0, upper=200.0, horizon=1,
                                       coverage=0.8, n_residuals=0, calibrated=True))
    d = opt.step(Sample(t=0.0, request_rate=20.0, utilisation=0.5, replicas=4))
    assert d.action == "scale_up" and d.desired_replicas == 29  # ceil(200 / 7)
    assert d.forecast_source == "override" and d.triggers == ("forecast",)
    opt.set_forecast_override(Forecast(point=10.0, lower=8.0, upper=12.0, horizon=1,
                                       coverage=0.8, n_residuals=0, calibrated=True))
    for t in (1.0, 5.0):
        assert opt.step(Sample(t=t, request_rate=10.0, utilisation=0.05,
                               replicas=29)).action == "hold"
    d = opt.step(Sample(t=11.0, request_rate=10.0, utilisation=0.05, replicas=29))
    assert d.action == "scale_down" and d.desired_replicas == 3  # max(ceil(29*.05/.7), 2)


def test_no_predictive_need_until_the_forecaster_is_calibrated():
    opt = ScalingOptimizer(ScalingConfig(replica_capacity_rps=10.0, lead_time_s=0.0),
                           forecaster=SimpleExponentialSmoothing(min_residuals=5))
    for t in range(6):  # 6 samples -> 5 complete steps -> 4 one-step errors
        d = opt.step(Sample(t=float(t), request_rate=50.0, utilisation=0.5, replicas=10))
        assert d.predictive_need is None and d.forecast_source == "none"
    d = opt.step(Sample(t=6.0, request_rate=50.0, utilisation=0.5, replicas=10))
    assert d.horizon_steps == 1 and d.forecast.calibrated
    assert d.predictive_need == 8  # ceil(50 / (10 * 0.7))


def test_forecaster_steps_are_fixed_on_the_sample_clock():
    """Many samples per step are averaged; steps without samples are interpolated."""
    fc = SimpleExponentialSmoothing(alpha=1.0, max_horizon=2)  # point = last value fed
    opt = ScalingOptimizer(ScalingConfig(forecast_step_s=1.0), forecaster=fc)
    for i in range(10):  # ten samples at 10 Hz within step 0
        opt.observe(sample(t=0.1 * i, request_rate=float(i + 1)))
    assert fc.n_observations == 0
    opt.observe(sample(t=1.05, request_rate=100.0))  # completes step 0: mean 5.5
    assert fc.n_observations == 1 and fc.point(1) == pytest.approx(5.5)
    opt.observe(sample(t=4.2, request_rate=20.0))  # step 1 done (100); steps 2, 3 missing
    assert fc.n_observations == 4
    assert sorted(fc.residuals(1)) == pytest.approx(sorted([94.5, -26.6666667, -26.6666667]))
    assert fc.point(1) == pytest.approx(100.0 + (20.0 - 100.0) * 2 / 3)


def test_zeros_before_the_first_traffic_do_not_reach_the_forecaster():
    """A new deployment reports 0 req/s before its metrics fill; learning from that would
    score the first real steps as huge errors and over-provision through a wide interval."""
    fc = SimpleExponentialSmoothing(alpha=1.0, max_horizon=2)
    opt = ScalingOptimizer(ScalingConfig(forecast_step_s=1.0), forecaster=fc)
    for t in range(5):
        opt.observe(sample(t=float(t), request_rate=0.0))
    assert fc.n_observations == 0
    for t in range(5, 9):
        opt.observe(sample(t=float(t), request_rate=70.0))
    assert fc.n_observations == 3 and list(fc.residuals(1)) == [0.0, 0.0]
    opt.observe(sample(t=9.0, request_rate=0.0))  # after traffic, a zero is real demand
    opt.observe(sample(t=10.0, request_rate=0.0))
    assert fc.n_observations == 5 and fc.point(1) == 0.0


# ---- the record ---------------------------------------------------------------------------
def test_decision_records_inputs_forecast_trigger_cost_and_roi():
    opt = ScalingOptimizer(ScalingConfig(replica_capacity_rps=10.0, max_instances=40))
    for t in range(30):
        d = opt.step(Sample(t=float(t), request_rate=95.0 + (t % 2), utilisation=0.95,
                            replicas=10, p95_latency_ms=900.0, ongoing_requests=40.0))
        if d.action == "scale_up":
            break
    rec = json.loads(json.dumps(d.to_dict()))  # plain JSON all the way down
    assert rec["sample"]["p95_latency_ms"] == 900.0 and rec["sample"]["replicas"] == 10
    assert set(rec["triggers"]) >= {"utilisation", "p95_latency"}
    assert rec["forecast"] is None or rec["forecast"]["lower"] <= rec["forecast"]["upper"]
    cost = rec["cost"]
    assert cost["current_replicas"] == 10 and cost["desired_replicas"] == rec["desired_replicas"]
    # 10 replicas x 10 rps at ~95 rps break the 400 ms p95; the new size does not
    assert cost["p_violation_current"] == 1.0 and cost["p_violation_desired"] == 0.0
    extra = rec["desired_replicas"] - 10
    assert cost["cost"] == pytest.approx(extra * 300 / 3600 * 0.096)
    assert rec["roi"] == cost["roi"] > 0 and rec["verdict"] == "recommended"
    assert opt.history()[-1] == d.to_dict() and len(opt.decisions) >= 1


def test_history_is_bounded():
    opt = ScalingOptimizer(ScalingConfig(replica_capacity_rps=10.0), history=5)
    for t in range(12):
        opt.step(sample(t=float(t)))
    assert len(opt.decisions) == 5 and opt.decisions[0].t == 7.0


# ---- config and input checks ------------------------------------------------------------------
def test_config_from_the_settings_reads_the_documented_names():
    from echo_ray.settings import Settings

    env = {"SCALE_UP_THRESHOLD": "0.85", "SCALE_DOWN_THRESHOLD": "0.2", "MIN_INSTANCES": "2",
           "MAX_INSTANCES": "7", "TARGET_LATENCY_MS": "250", "SCALE_UP_COOLDOWN_S": "15",
           "REPLICA_CAPACITY_RPS": "", "UNRELATED": "x"}
    cfg = Settings.from_env(env).scaling.config()
    assert (cfg.scale_up_threshold, cfg.scale_down_threshold) == (0.85, 0.2)
    assert (cfg.min_instances, cfg.max_instances) == (2, 7)
    assert cfg.target_latency_ms == 250.0 and cfg.scale_up_cooldown_s == 15.0
    assert cfg.replica_capacity_rps is None and cfg.target_utilisation == 0.7
    agents = Settings.from_env({"MAX_INSTANCES": "4"}).scaling.config(resource_type="agent")
    assert agents.max_instances == 4 and agents.resource_type == "agent"
    assert ScalingConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize("call, name", [
    (lambda: ScalingConfig(min_instances=5, max_instances=3), "max_instances"),
    (lambda: ScalingConfig(scale_up_threshold=1.5), "scale_up_threshold"),
    (lambda: ScalingConfig(target_utilisation=0.9), "target_utilisation"),
    (lambda: ScalingConfig(scale_up_cooldown_s=-1.0), "scale_up_cooldown_s"),
    (lambda: ScalingConfig(forecast_interval_window=1), "forecast_interval_window"),
    (lambda: ScalingConfig.from_dict({"max_replicas": 3}), "unknown"),
    (lambda: Sample(t=0.0, request_rate=-1.0, utilisation=0.5, replicas=1), "request_rate"),
    (lambda: Sample(t=0.0, request_rate=1.0, utilisation=0.5, replicas=1.5), "replicas"),
    (lambda: Sample(t=0.0, request_rate=1.0, utilisation=0.5, replicas=1, error_rate=2.0),
     "error_rate"),
    (lambda: ScalingOptimizer().recommend(), "observe"),
    (lambda: ScalingOptimizer(config={"min_instances": 1}), "config"),
])
def test_bad_input_raises_value_error(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_the_interval_window_reaches_the_default_forecaster():
    assert ScalingOptimizer(ScalingConfig(forecast_interval_window=40)).forecaster \
        .interval_window == 40
    assert ScalingOptimizer().forecaster.interval_window == 500


def test_samples_must_not_go_back_in_time():
    opt = optimizer()
    opt.observe(sample(t=10.0))
    with pytest.raises(ValueError, match="backwards"):
        opt.observe(sample(t=9.0))


def test_idle_samples_do_not_record_zero_capacity():
    """A busy-looking sample with no arrivals must not make the measured capacity 0
    (which used to crash the pricing with "mu must be > 0")."""
    opt = ScalingOptimizer(ScalingConfig(min_instances=1, max_instances=4, lead_time_s=15))
    for i in range(120):
        decision = opt.step(Sample(t=0.5 * i, request_rate=0.0, utilisation=0.5, replicas=1,
                                   ongoing_requests=1.0, p95_latency_ms=50.0))
    assert opt.capacity() == (None, "unknown")
    assert decision.desired_replicas >= 1


def test_overloaded_samples_do_not_feed_the_measured_capacity():
    """Above 1 the utilisation counts queued work: rate / utilisation would shrink the
    capacity with the backlog and blow the predictive need up."""
    opt = ScalingOptimizer(ScalingConfig(min_instances=1, max_instances=50))
    opt.observe(sample(t=0.0, request_rate=14.0, utilisation=0.7, replicas=1))
    opt.observe(sample(t=1.0, request_rate=30.0, utilisation=25.0, replicas=1,
                       queue_length=400.0))
    assert opt.capacity() == (pytest.approx(20.0), "measured")


def test_a_backlog_while_replicas_start_is_sized_from_the_arrival_rate():
    """The high-load case: 6 running, overloaded; the need is the arrival rate's (10), not the
    backlog's; the queue the 6 build until the others arrive must not push the target up
    when 10 serve the arrival rate; more rate does."""
    opt = ScalingOptimizer(ScalingConfig(min_instances=1, max_instances=50,
                                         replica_capacity_rps=20.0, scale_up_cooldown_s=0.0))
    d = opt.step(sample(t=0.0, request_rate=140.0, utilisation=1.6, replicas=6,
                        queue_length=400.0))
    assert d.desired_replicas == 10  # ceil(140 / (20 * 0.7)), not ceil(6 * 1.6 / 0.7) = 14
    d = opt.step(sample(t=1.0, request_rate=140.0, utilisation=20.0, replicas=6,
                        queue_length=400.0, p95_latency_ms=5000.0))
    assert d.desired_replicas == 10  # the backlog drains in 60 s with (140 + 400/60) / 20 = 8
    big = ScalingOptimizer(ScalingConfig(min_instances=1, max_instances=50,
                                         replica_capacity_rps=20.0))
    d = big.step(sample(t=0.0, request_rate=140.0, utilisation=20.0, replicas=10,
                        queue_length=4000.0, p95_latency_ms=5000.0))
    assert d.desired_replicas == 11  # a big backlog: ceil((140 + 4000 / 60) / 20)
    d = opt.step(sample(t=2.0, request_rate=250.0, utilisation=20.0, replicas=6,
                        queue_length=400.0, p95_latency_ms=5000.0))  # a steady queue
    assert d.desired_replicas == 18  # ceil(250 / 14)


# ---- one gate --------------------------------------------------------------------------------
def test_serve_gated_has_no_cooldowns_and_measures_from_serves_target():
    """Serve applies its delays: the optimizer's cooldowns and quiet window must not stack."""
    opt = optimizer(serve_gated=True, scale_up_cooldown_s=30.0, scale_down_window_s=60.0,
                    scale_down_cooldown_s=120.0)
    assert opt.step(sample(t=0.0, utilisation=0.9, target_replicas=10)).desired_replicas == 13
    d = opt.step(sample(t=1.0, utilisation=0.9, replicas=13, target_replicas=13))
    assert d.action == "scale_up" and d.blocked_by is None and d.desired_replicas == 17
    # one quiet sample is enough to answer lower: Serve's downscale_delay_s does the waiting
    d = opt.step(sample(t=2.0, utilisation=0.1, replicas=17, target_replicas=17))
    assert d.action == "scale_down" and d.desired_replicas == 3  # ceil(17 * 0.1 / 0.7)
    # Serve has not applied it: its target is still 17, and a busy sample holds that
    d = opt.step(sample(t=3.0, utilisation=0.6, replicas=17, target_replicas=17))
    assert d.action == "hold" and d.desired_replicas == 17


@pytest.mark.parametrize("util, down", [(0.45, True), (0.55, False), (0.75, False)])
def test_hysteresis_band_scale_down_at_any_utilisation_below_it(util, down):
    """The band is [scale_down_threshold 0.5, scale_up_threshold 0.8]: below it the target
    shrinks to run at the target utilisation (inside the band), in it the target holds."""
    opt = optimizer(scale_down_window_s=0.0, scale_down_cooldown_s=0.0)
    d = opt.step(sample(utilisation=util, replicas=20, p95_latency_ms=50.0))
    assert (d.action == "scale_down") is down
    if down:  # ceil(20 * 0.45 / 0.7) = 13: 0.45 * 20 / 13 = 0.69, inside the band
        assert d.desired_replicas == 13


def test_a_dip_is_sized_by_the_quiet_spells_peak():
    opt = optimizer(scale_down_window_s=30.0, scale_down_cooldown_s=0.0)
    for t, util in ((0.0, 0.45), (10.0, 0.05), (20.0, 0.05)):
        opt.step(sample(t=t, utilisation=util, replicas=20, p95_latency_ms=50.0))
    d = opt.step(sample(t=30.0, utilisation=0.05, replicas=20, p95_latency_ms=50.0))
    assert d.action == "scale_down" and d.desired_replicas == 13  # from 0.45, not 0.05


def test_pure_decision_functions():
    from echo_ray.autoscaling.optimizer import gate, predictive_need, rate_need

    cfg = ScalingConfig(max_instances=20)
    assert rate_need(140.0, 0.0, 20.0, cfg) == 10
    assert rate_need(140.0, 6000.0, 20.0, cfg) == 12  # (140 + 100) / 20
    assert predictive_need(None, 20.0, cfg) is None
    f = Forecast(point=100.0, lower=90.0, upper=140.0, horizon=1, coverage=0.8,
                 n_residuals=10, calibrated=True)
    assert predictive_need(f, 20.0, cfg) == 10 and predictive_need(f, None, cfg) is None
    assert gate(10, 30, cfg, 0.0, False, None, None) == (20, None, ())  # capped at the max
    assert gate(20, 30, cfg, 0.0, False, None, None) == (20, "max_instances", ())
    assert gate(10, 5, cfg, 0.0, False, None, None) == (10, None, ())  # not quiet: hold
    assert gate(10, 5, cfg, 0.0, True, None, None) == (5, None, ("sustained_low_load",))
    assert gate(10, 12, cfg, 10.0, False, 0.0, None)[1] == "scale_up_cooldown"


# ---- ROI decides ---------------------------------------------------------------------------------
@pytest.mark.parametrize("violation_price, vetoed", [(10.0, False), (0.1, True)])
def test_a_forecast_change_worth_less_than_it_costs_is_vetoed_and_recorded(violation_price,
                                                                           vetoed):
    """4 -> 29 replicas for a forecast of 180 req/s avoids 300 s of violation (worth
    300 / 3600 x the price) for 25 x 300 replica-seconds (0.2 at 0.096 an hour)."""
    opt = ScalingOptimizer(ScalingConfig(replica_capacity_rps=10.0, max_instances=30,
                                         violation_cost_per_hour=violation_price,
                                         roi_veto=True))
    opt.set_forecast_override(Forecast(point=180.0, lower=170.0, upper=200.0, horizon=1,
                                       coverage=0.8, n_residuals=0, calibrated=True))
    d = opt.step(Sample(t=0.0, request_rate=20.0, utilisation=0.5, replicas=4))
    assert d.cost.replica_seconds == 25 * 300.0
    if vetoed:
        assert d.action == "hold" and d.desired_replicas == 4 and d.blocked_by == "roi_veto"
        assert d.cost.net < 0 and opt.history()[-1]["blocked_by"] == "roi_veto"
    else:
        assert d.action == "scale_up" and d.desired_replicas == 29 and d.cost.net > 0


def test_measured_triggers_are_never_vetoed():
    opt = ScalingOptimizer(ScalingConfig(replica_capacity_rps=1000.0, max_instances=100,
                                         violation_cost_per_hour=0.0, roi_veto=True))
    d = opt.step(sample(utilisation=0.9))
    assert d.action == "scale_up" and d.blocked_by is None
    off = ScalingOptimizer(ScalingConfig(replica_capacity_rps=10.0, max_instances=30,
                                         violation_cost_per_hour=0.1))
    off.set_forecast_override(Forecast(point=180.0, lower=170.0, upper=200.0, horizon=1,
                                       coverage=0.8, n_residuals=0, calibrated=True))
    assert off.step(Sample(t=0.0, request_rate=20.0, utilisation=0.5,
                           replicas=4)).desired_replicas == 29  # veto off (the default)


# ---- a real stop of the load scales down (issue 14's shrink) ----------------------------------
def _after_the_load_stops(p95_under_load_ms: float) -> tuple[int, list]:
    """Serve-gated optimizer and Serve's own delay rule, on the samples Serve's controller hands
    ForecastPolicy after 12 clients on 3 replicas stop (the multi-node autoscaler test's
    step): `total_num_requests` is a mean over `look_back_period_s` (30 s), so the
    utilisation falls linearly from 1.4 to 0 over 30 s; each replica's p95 is over a 10 s
    window, then averaged over the look-back too. Returns Serve's final target and its
    changes."""
    from ray.serve.autoscaling_policy import _apply_delay_logic
    from ray.serve.config import AutoscalingConfig

    cfg = ScalingConfig(min_instances=1, max_instances=3, serve_gated=True, lead_time_s=5.0,
                        scale_down_window_s=10.0, target_latency_ms=400.0)
    serve = AutoscalingConfig(min_replicas=1, max_replicas=3, target_ongoing_requests=2,
                              upscale_delay_s=2, downscale_delay_s=10)
    opt, state, target, changes = ScalingOptimizer(cfg), {}, 3, []
    for k in range(240):  # two minutes of load, a sample every 0.5 s
        opt.step(Sample(t=1000.0 + k / 2, request_rate=30.0, utilisation=1.4, replicas=3,
                        ongoing_requests=12.0, p95_latency_ms=p95_under_load_ms,
                        target_replicas=3))
    look_back, stop = 30.0, 1120.0
    for k in range(800):  # then 400 s without a request
        t = stop + k / 2
        a = t - stop
        busy = max(0.0, 1.0 - a / look_back)
        p95 = 1.0 if a < 10.0 else max(0.0, (look_back + 10.0 - a) / look_back)
        rate = max(0.0, min(1.0, (look_back + 10.0 - a) / (look_back + 10.0)))
        d = opt.step(Sample(t=t, request_rate=30.0 * rate, utilisation=1.4 * 3 / target * busy,
                            replicas=target, ongoing_requests=12.0 * busy,
                            p95_latency_ms=p95_under_load_ms * p95, target_replicas=target))
        new, state = _apply_delay_logic(d.desired_replicas, target, serve, state, _now=t)
        if new != target:
            changes.append((round(a, 1), target, new))
            target = new
    return target, changes


@pytest.mark.parametrize("p95_under_load_ms", [150.0, 250.0, 300.0, 1500.0])
def test_a_real_stop_of_the_load_scales_down_to_the_minimum(p95_under_load_ms):
    """Before the fix, the quiet spell's peak utilisation (its first quiet sample, just under
    the band at 3 replicas) was kept for as long as the spell lasted: with a p95 that fell
    below the quiet threshold before the utilisation did, the target stayed at 3 (or 2)
    forever. The peak is now a load over the last scale_down_window_s."""
    final, changes = _after_the_load_stops(p95_under_load_ms)
    assert final == 1, changes
    assert changes[-1][0] <= 60.0, changes  # within the look-back, the window and the delay


def test_the_quiet_spells_peak_is_a_load_forgotten_after_the_window():
    opt = optimizer(scale_down_window_s=10.0, scale_down_cooldown_s=0.0)
    quiet = {"p95_latency_ms": 50.0}
    opt.step(sample(t=0.0, utilisation=0.45, replicas=20, **quiet))  # load 9 replicas at 100%
    assert opt.quiet_peak_load() == pytest.approx(9.0)
    d = opt.step(sample(t=10.0, utilisation=0.05, replicas=20, **quiet))
    assert d.desired_replicas == 13  # ceil(9 / 0.7): the peak is still in the window
    opt.step(sample(t=15.0, utilisation=0.1, replicas=13, **quiet))  # load 1.3
    d = opt.step(sample(t=20.5, utilisation=0.1, replicas=13, **quiet))
    assert opt.quiet_peak_load() == pytest.approx(1.3)  # 9 left the window
    assert d.desired_replicas == 2  # ceil(1.3 / 0.7)
