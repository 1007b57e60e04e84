"""bench_autoscaling on the synthetic families, pure simulation on a tiny setting: a family goes
through the trace loader, and the families mode writes the issue's keys per family."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from echo_ray.autoscaling.synthetic import generate
from echo_ray.sim import frontier as fr
from tests.support.benchmarks import load_benchmark


@pytest.fixture(scope="module")
def bench():
    module = load_benchmark("bench_autoscaling")
    # the sweep's process pool sends its worker function by module name
    sys.modules[module.__name__] = module
    yield module
    del sys.modules[module.__name__]


def test_a_family_loads_like_a_trace_file(bench):
    trace = bench.load_trace("family:timer_bursts", 60.0, 3, 0.0, 0.1)
    counts = generate("timer_bursts", 3, 0.1).counts
    assert trace.name == "timer_bursts" and trace.bin_seconds == 60.0
    np.testing.assert_array_equal(trace.rates, counts / 60.0)  # per-minute counts -> req/s
    later = bench.load_trace("family:timer_bursts", 60.0, 3, 0.05, 0.05)  # a window, same seed
    np.testing.assert_array_equal(later.rates, trace.rates[72:144])
    with pytest.raises(SystemExit, match="family must be one of"):
        bench.load_trace("family:nope", 60.0, 0, 0.0, 0.1)


def test_families_mode_writes_the_keys_per_family(bench, tmp_path, monkeypatch):
    # two configs (Serve's defaults, which the sweep reports, and t=1) keep it to seconds
    grid = fr.sweep_configs(targets=(1, 2), upscale_delays=(30,), downscale_delays=(600,))
    monkeypatch.setattr(bench.fr, "sweep_configs", lambda: grid)
    out = tmp_path / "families.json"
    families = ["timer_bursts"]
    assert bench.main(["--families-only", "--families", *families, "--family-days", "0.09",
                       "--sweep-workers", "1", "--out-dir", str(tmp_path),
                       "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert set(doc["best_baseline"]) == set(doc["vs_best_baseline"]) == set(families)
    assert set(doc["scaling_events"]) == set(families)
    for f in families:
        best = doc["best_baseline"][f]
        assert set(best) == {"config", "slo_violation_minutes", "replica_seconds"}
        assert best["config"]["target_ongoing_requests"] in (1.0, 2.0)
        assert best["replica_seconds"] > 0
        assert set(doc["vs_best_baseline"][f]) == {"slo_ratio", "cost_ratio", "met"}
        assert set(doc["scaling_events"][f]) == {"ours", "ours_reactive", "best_baseline"}
        sweep = doc["families"]["sweeps"][f]
        assert sweep["trace"] == f and len(sweep["points"]) == 4  # 2 configs + ours + reactive
        assert (tmp_path / f"frontier_{f}.png").is_file()
    assert doc["families"]["seed"] == 0 and doc["families"]["days"] == 0.09
