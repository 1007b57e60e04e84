"""Event rows, the usage meter and the cost report on hand-computed cases (no Ray)."""

from __future__ import annotations

import pandas as pd
import pytest

from echo_ray.autoscaling import Sample, ScalingConfig, ScalingOptimizer
from echo_ray.autoscaling.actor import ScalingOptimizerState
from echo_ray.autoscaling.events import EVENT_COLUMNS, events_frame, export_frame, flatten_decision
from echo_ray.autoscaling.usage import UsageMeter, cost_frame


def test_meter_integrates_replica_hours_cost_and_efficiency():
    m = UsageMeter("pool", "agent", price_per_replica_hour=0.5)
    m.add(0.0, replicas=2, request_rate=10.0, utilisation=0.5, capacity_rps=10.0)
    m.add(3600.0, replicas=4, request_rate=30.0, utilisation=0.75, capacity_rps=10.0)
    m.add(5400.0, replicas=4, request_rate=0.0, utilisation=0.0, capacity_rps=10.0)
    r = m.report()
    # [0, 1h): 2 replicas; [1h, 1.5h): 4 replicas -> 2 + 2 replica-hours
    assert r["replica_hours"] == pytest.approx(4.0) and r["cost"] == pytest.approx(2.0)
    # served 10*3600 + 30*1800 = 90000 of a capacity 2*10*3600 + 4*10*1800 = 144000
    assert r["served_requests"] == pytest.approx(90_000.0)
    assert r["capacity_requests"] == pytest.approx(144_000.0)
    assert r["efficiency"] == pytest.approx(0.625) and r["efficiency_basis"] == "capacity"
    assert r["mean_utilisation"] == pytest.approx(0.625)  # the same, measured another way
    assert r["mean_replicas"] == pytest.approx(4.0 / 1.5)


def test_meter_without_capacity_uses_utilisation_and_caps_served_by_capacity():
    m = UsageMeter("x", "agent", 1.0)
    m.add(0.0, 1, 5.0, 0.4)
    m.add(10.0, 1, 5.0, 0.4)
    assert m.report()["efficiency"] == pytest.approx(0.4)
    assert m.report()["efficiency_basis"] == "utilisation"
    over = UsageMeter("y", "agent", 1.0)  # overloaded: served is capped by the capacity
    over.add(0.0, 1, 20.0, 1.0, error_rate=0.5, capacity_rps=4.0)
    over.add(10.0, 1, 20.0, 1.0)
    assert over.report()["efficiency"] == pytest.approx(1.0)
    assert over.report()["served_requests"] == pytest.approx(100.0)  # half of 200 failed
    with pytest.raises(ValueError, match="t must not go backwards"):
        over.add(5.0, 1, 1.0, 0.1)
    with pytest.raises(ValueError, match="replicas"):
        over.add(20.0, -1, 1.0, 0.1)


def test_cost_frame_total_row():
    a, b = UsageMeter("a", "agent", 1.0), UsageMeter("b", "dtesn_membrane", 2.0)
    for m, n in ((a, 1), (b, 3)):
        m.add(0.0, n, 1.0, 0.5, capacity_rps=2.0)
        m.add(3600.0, n, 1.0, 0.5, capacity_rps=2.0)
    frame = cost_frame([a.report(), b.report()])
    total = frame.iloc[-1]
    assert list(frame["resource"]) == ["a", "b", "TOTAL"]
    assert total["replica_hours"] == pytest.approx(4.0) and total["cost"] == pytest.approx(7.0)
    # served 3600 + 3600 of 7200 + 21600
    assert total["efficiency"] == pytest.approx(7200 / 28800)


def test_decision_rows_frame_and_csv(tmp_path):
    opt = ScalingOptimizer(ScalingConfig(min_instances=1, max_instances=5,
                                         replica_capacity_rps=10.0))
    d1 = opt.step(Sample(t=0.0, request_rate=5.0, utilisation=0.9, replicas=1)).to_dict()
    d2 = opt.step(Sample(t=1.0, request_rate=5.0, utilisation=0.5, replicas=2)).to_dict()
    rows = [flatten_decision("pool", d1, applied=2), flatten_decision("pool", d2)]
    assert rows[0]["action"] == "scale_up" and rows[0]["triggers"] == "utilisation"
    assert rows[0]["applied_replicas"] == 2 and rows[0]["request_rate"] == 5.0
    frame = events_frame(rows, changes_only=True)
    assert list(frame.columns) == list(EVENT_COLUMNS) and len(frame) == 1
    path = export_frame(events_frame(rows), tmp_path / "events.csv")
    back = pd.read_csv(path)
    assert len(back) == 2 and list(back["desired_replicas"]) == [2, 2]
    with pytest.raises(ValueError, match="must end in .csv or .parquet"):
        export_frame(frame, tmp_path / "events.xlsx")


def test_state_keeps_overrides_and_learned_state_across_config_changes():
    state = ScalingOptimizerState(export_metrics=False)
    state.set_forecast_override("r", 35.0)  # before the resource is seen
    cfg = {"min_instances": 1, "max_instances": 8, "replica_capacity_rps": 10.0}
    d = state.observe("r", {"t": 0.0, "request_rate": 1.0, "utilisation": 0.1, "replicas": 1},
                      cfg)
    assert d["forecast_source"] == "override" and d["desired_replicas"] == 5  # ceil(35 / 7)
    opt = state.optimizers["r"]
    state.observe("r", {"t": 1.0, "request_rate": 1.0, "utilisation": 0.1, "replicas": 5},
                  {**cfg, "max_instances": 4})
    assert state.optimizers["r"] is opt  # bounds changed: same optimizer, new config
    assert state.recommend("r")["desired_replicas"] == 4
    # a sample from a clock that stepped back is clamped, not refused
    back = state.observe("r", {"t": 0.5, "request_rate": 1.0, "utilisation": 0.1,
                               "replicas": 4})
    assert back["t"] == 1.0
    # events: the changes of target, and the change the new bound held back
    assert [(r["action"], r["blocked_by"]) for r in state.events("r")] == [
        ("scale_up", None), ("scale_down", None), ("hold", "max_instances")]
    assert len(state.events("r", changes_only=False)) == 3
    assert state.usage("r")[0]["replica_hours"] == pytest.approx(1.0 / 3600.0)  # 1 for 1 s


def test_replica_load_window_rate_p95_and_errors():
    from echo_ray.autoscaling.replica_load import ReplicaLoad

    clock = [0.0]
    load = ReplicaLoad(window_s=10.0, clock=lambda: clock[0])
    assert load.stats(now=0.0) == {"request_rate": 0.0, "p95_latency_ms": 0.0, "error_rate": 0.0}
    for i in range(100):  # 100 requests over 5 s, latencies 1..100 ms, every 10th fails
        load.record(float(i + 1), ok=i % 10 != 0, now=i * 0.05)
    s = load.stats(now=5.0)
    assert s["request_rate"] == pytest.approx(20.0)  # 100 requests / 5 s since start
    assert s["p95_latency_ms"] == pytest.approx(95.05) and s["error_rate"] == pytest.approx(0.1)
    assert load.stats(now=14.0)["request_rate"] == pytest.approx(20 / 10)  # last 20 remain
    clock[0] = 20.0
    with pytest.raises(RuntimeError), load.track():
        clock[0] = 20.5
        raise RuntimeError("boom")
    assert load.stats()["error_rate"] == 1.0 and load.stats()["p95_latency_ms"] == 500.0
