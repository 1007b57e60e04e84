"""bench_load's pure parts: the model calibrated from a step's answers, sim_vs_live's rows,
the plan. No cluster: the steps are made up here, as bench_load records them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.support.benchmarks import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_load")


def step(bench, users: int, seed: int = 0) -> dict:
    """A step of `users` as run_steps records it: hits take ~8 ms, misses 20-40 ms."""
    rng = np.random.default_rng(seed)
    names = list(bench.MIX)
    p = np.asarray(list(bench.MIX.values()), float)
    samples = []
    for name in rng.choice(names, 400, p=p / p.sum()):
        cached = name not in ("memory_store", "membrane_evolution") and rng.random() < 0.5
        samples.append((str(name), bool(cached),
                        float(rng.uniform(6, 10) if cached else rng.uniform(20, 40))))
    hits = {n: [sum(1 for m, c, _ in samples if m == n and c),
                sum(1 for m, _, _ in samples if m == n)] for n in names}
    return {"users": users, "_samples": samples, "hits_by_type": hits,
            "replicas": {"CognitiveWorker": {"min": 1, "mean": 1.0, "max": 1}},
            "all": {"p50_ms": 20.0, "p95_ms": 38.0}, "rps": users / 1.03}


def test_calibration_from_a_step_splits_hits_and_misses(bench):
    row = step(bench, 5)
    doc = bench.calibration_from_step(row)
    assert doc["cache_hit"]["n"] == sum(1 for _, c, _ in row["_samples"] if c)
    assert set(doc["types"]) == set(bench.KIND_OF.values())
    assert all(20 <= x <= 40 for v in doc["types"].values() for x in v["latency_ms"])


def test_a_type_missing_from_the_step_takes_the_sequential_times(bench):
    row = step(bench, 5)
    row["_samples"] = [s for s in row["_samples"] if s[0] != "membrane_evolution"]
    seq = {"types": {"membrane_evolution": {"latency_ms": [11.0, 12.0]}}}
    doc = bench.calibration_from_step(row, seq)
    assert doc["types"]["membrane_evolution"]["latency_ms"] == [11.0, 12.0]


def test_sim_vs_live_rows_have_the_issue_keys(bench):
    rows = [step(bench, u, seed=u) for u in (2, 4, 8)]
    out, model = bench.sim_vs_live(bench.calibration_from_step(rows[0]), rows, 1.0, 0,
                                   duration_s=120)
    assert [r["users"] for r in out] == [2, 4, 8]
    for r in out:
        assert {"users", "live_p95_ms", "sim_p95_ms", "live_rps", "sim_rps"} <= set(r)
        # closed loop at ~1 s per request per user: the throughput is the users
        assert r["sim_rps"] == pytest.approx(r["users"], rel=0.1)
        assert r["rps_within_20pct"]
    assert set(model.hit_share) <= set(bench.MIX)
    json.dumps(out)


def test_plan_sizes_for_the_users(bench):
    row = step(bench, 5)
    _, model = bench.sim_vs_live(bench.calibration_from_step(row), [row], 1.0, 0,
                                 duration_s=60)
    plan = bench.plan_for(model, [200], seed=0)
    assert plan[0]["users"] == 200 and plan[0]["feasible"]
    assert plan[0]["p95_ms"] <= bench.P95_TARGET_MS


def test_the_plan_uses_the_calibration_closer_to_live(bench):
    rows = [{"live_p95_ms": 50.0, "sim_p95_ms": 55.0, "sim_sequential_p95_ms": 25.0},
            {"live_p95_ms": 45.0, "sim_p95_ms": 60.0, "sim_sequential_p95_ms": 24.0}]
    assert bench.plan_calibration(rows) == "first step"
    rows = [{"live_p95_ms": 30.0, "sim_p95_ms": 90.0, "sim_sequential_p95_ms": 28.0}]
    assert bench.plan_calibration(rows) == "sequential"
    # without echo-ray calibrate's column (or any row) the first step's is all there is
    assert bench.plan_calibration([{"live_p95_ms": 30.0, "sim_p95_ms": 90.0}]) == "first step"
    assert bench.plan_calibration([]) == "first step"
