"""ScalingLoop's pure parts and the load signal it reads (no Ray)."""

from __future__ import annotations

import pytest

from echo_ray.autoscaling import ScalingConfig
from echo_ray.autoscaling.loop import ScalingLoop, bounded_size, config_for, membrane_config
from echo_ray.autoscaling.replica_load import ReplicaLoad
from echo_ray.settings import Settings


def test_the_applied_size_is_within_the_resource_and_at_least_one():
    assert bounded_size(6, 4) == 4 and bounded_size(0, 4) == 1 and bounded_size(9, None) == 9


def test_config_bounds_fit_the_resource():
    cfg = config_for(ScalingConfig(min_instances=2, max_instances=8), 4)
    assert (cfg["min_instances"], cfg["max_instances"]) == (2, 4)
    cfg = config_for(ScalingConfig(min_instances=2, max_instances=8), 1)
    assert (cfg["min_instances"], cfg["max_instances"]) == (1, 1)
    assert config_for(ScalingConfig(max_instances=8), None)["max_instances"] == 8


def test_membrane_policy_follows_the_scaling_settings():
    scaling = Settings.from_env({}, scaling={"scale_up_cooldown_s": 7.0,
                                             "replica_capacity_rps": 50.0}).scaling
    cfg = membrane_config(scaling, 4)
    assert cfg.resource_type == "dtesn_membrane" and cfg.scale_up_cooldown_s == 7.0
    assert (cfg.min_instances, cfg.max_instances) == (1, 4)
    assert cfg.replica_capacity_rps is None  # a membrane group's capacity is measured
    assert not cfg.serve_gated  # its own gate: the cooldowns apply


def test_membrane_interval_setting():
    assert Settings.from_env({}).scaling.membrane_interval_s == 5.0
    env = {"MEMBRANE_SCALING_INTERVAL_S": "0"}
    assert Settings.from_env(env).scaling.membrane_interval_s == 0.0
    with pytest.raises(ValueError):
        Settings.from_env({"MEMBRANE_SCALING_INTERVAL_S": "-1"})


def test_occupancy_is_the_time_mean_of_calls_in_flight():
    clock = [0.0]
    load = ReplicaLoad(clock=lambda: clock[0])
    first = load.track()
    first.__enter__()  # one call from t=0
    clock[0] = 2.0
    second = load.track()
    second.__enter__()  # a second from t=2
    clock[0] = 4.0
    assert load.in_flight == 2
    assert load.occupancy() == pytest.approx((1 * 2 + 2 * 2) / 4)  # 1.5
    second.__exit__(None, None, None)
    clock[0] = 6.0
    assert load.occupancy() == pytest.approx(1.0)  # since the last reading: one call, 2 s
    first.__exit__(None, None, None)
    clock[0] = 8.0
    assert load.occupancy() == 0.0 and load.in_flight == 0
    assert load.stats(now=8.0)["request_rate"] == pytest.approx(2 / 8)


def test_loop_refuses_what_it_cannot_drive():
    loop = ScalingLoop(1.0)
    with pytest.raises(ValueError, match="measure"):
        loop.add("x", object(), ScalingConfig())
    with pytest.raises(ValueError, match="interval_s"):
        ScalingLoop(0)


def test_forget_drops_what_was_measured_but_keeps_calls_in_flight():
    clock = [0.0]
    load = ReplicaLoad(clock=lambda: clock[0])
    with load.track():
        clock[0] = 3.0  # a 3 s warm-up call
    running = load.track()
    running.__enter__()
    load.forget()
    clock[0] = 5.0
    assert load.stats()["request_rate"] == 0.0  # the warm-up call is gone
    assert load.occupancy() == pytest.approx(1.0) and load.in_flight == 1  # only the running one
