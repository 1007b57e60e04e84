"""The live-versus-simulated comparison's pure parts (echo_ray/sim/validate.py), no Ray."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from echo_ray.sim import RateTrace, ServiceModel, SimConfig
from echo_ray.sim import validate as va


def test_busiest_segments_do_not_overlap_and_come_busiest_first():
    rates = np.ones(60)
    rates[40:50] = 10.0  # busiest
    rates[5:15] = 5.0  # second
    trace = RateTrace(rates, 60.0, "t")
    starts = va.busiest_segments(trace, 2, 10)
    assert starts == [40 * 60.0, 5 * 60.0]
    assert va.busiest_segments(RateTrace(np.ones(3), 60.0, "s"), 2, 10) == [0.0]


def test_startup_samples_time_each_added_replica():
    tl = pd.DataFrame({"t": [0, 1, 2, 3, 4, 5, 6],
                       "running": [1, 1, 1, 2, 3, 3, 3],
                       "provisioned": [1, 3, 3, 3, 3, 3, 3]})
    assert va.startup_samples(tl) == [2.0, 3.0]
    # a rise cut short by a scale-down before the replica ran is skipped
    cut = pd.DataFrame({"t": [0, 1, 2, 3], "running": [1, 1, 1, 1],
                        "provisioned": [1, 2, 1, 1]})
    assert va.startup_samples(cut) == []


def test_agreement_counts_minutes_within_one_replica_and_violations():
    live = pd.DataFrame({"mean_provisioned": [1.0, 2.0, 5.0, 8.0],
                         "slo_violation": [True, True, False, False]})
    sim = pd.DataFrame({"mean_provisioned": [1.0, 3.0, 2.0, 8.0],
                        "slo_violation": [True, False, False, False]})
    a = va.agreement(live, sim)
    assert a["minutes"] == 4 and a["replicas_within_1"] == 0.75
    assert a["replica_minutes_off"] == [2]
    assert (a["violation_minutes_live"], a["violation_minutes_sim"],
            a["violation_minutes_both"]) == (2, 1, 1)
    assert a["violations_within_20pct"]  # one minute apart always passes
    assert not va.violations_agree(10, 7) and va.violations_agree(10, 8)
    pooled = va.pooled([a, {**a, "replicas_within_1": 1.0}])
    assert pooled["minutes"] == 8 and pooled["replicas_within_1"] == pytest.approx(0.875)
    assert not pooled["replicas_ok"]
    assert "ray_default" in va.table({"ray_default": pooled})


def test_specs_build_the_same_policy_live_and_simulated():
    tuned, ours, default = (va.default_specs()[1], va.default_specs()[2],
                            va.default_specs()[0])
    assert default.autoscaling_config(1, 8) == {"min_replicas": 1, "max_replicas": 8}
    cfg = tuned.autoscaling_config(1, 8)
    assert cfg["target_ongoing_requests"] == 1.0 and cfg["upscale_delay_s"] == 0.0
    sim = tuned.sim_policy(1, 8)
    assert sim.name == "ray_tuned" and sim.config.upscale_delay_s == 0.0
    assert sim.config.max_replicas == 8
    live_ours = ours.autoscaling_config(1, 8)
    assert live_ours["policy"]["policy_function"].endswith("ForecastPolicy")
    assert ours.sim_policy(1, 8).poll_interval_s == va.OURS_POLL_S
    with pytest.raises(ValueError):
        va.PolicySpec("x", kind="nope")


def test_metrics_timers_align_with_a_live_router():
    p = va.default_specs()[0].sim_policy(1, 4)
    p.metrics.align(-3.0)  # router started 3 s before the run: records at 3, 9..., pushes 7, 17
    assert p.metrics._next_record == pytest.approx(3.0)
    assert p.metrics._next_push == pytest.approx(7.0)


def test_minute_table_cuts_a_simulation_into_trace_minutes():
    trace = RateTrace.steps([5.0], [40.0], bin_seconds=10.0)
    cfg = va.segment_config(SimConfig(service=ServiceModel.exponential(0.05), seed=1), 2.0)
    assert cfg.tick_s == va.SERVE_CONTROL_LOOP_S and cfg.startup_s == 2.0
    r = va.simulate_segment(trace, va.default_specs()[0], cfg, 1, 4, router_start_s=-1.0)
    m = va.minute_table(r, 10.0, 400.0, cfg.replica_rate, n_minutes=4)  # drain excluded
    assert len(m) == 4 and int(m["arrivals"].sum()) == r.summary["arrivals"]
    assert (m["mean_provisioned"] == 1.0).all()  # 5 req/s at 50 ms: no reason to scale
