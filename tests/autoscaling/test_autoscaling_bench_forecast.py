"""The forecast benchmark end to end on a small trace: protocol, JSON schema, statsmodels checks."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).parents[2] / "benchmarks" / "bench_forecast.py"
MODELS = {"naive", "moving_average", "linear", "ses", "holt", "holt_winters", "ensemble",
          "statsmodels_ses", "statsmodels_holt_winters"}


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_forecast", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_forecast_schema_on_a_small_seasonal_trace(bench, tmp_path):
    period = 48
    t = np.arange(12 * period)
    rate = 40 + 20 * np.sin(2 * np.pi * t / period)
    counts = np.random.default_rng(5).poisson(rate)  # seeded synthetic counts, one per line
    trace = tmp_path / "counts.txt"
    trace.write_text("\n".join(map(str, counts)) + "\n")
    out = tmp_path / "forecast.json"
    test_days = 2 * period / 1440
    assert bench.main(["--trace", str(trace), "--period", str(period),
                       "--test-days", str(test_days), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    for metric in ("smape", "mae"):
        assert set(res[metric]) == {"1", "5"}
        for h in ("1", "5"):
            assert set(res[metric][h]) == MODELS
            assert all(v >= 0 for v in res[metric][h].values())
    assert set(res["coverage_80"]) == {"1", "5"}
    assert all(0.0 <= v <= 1.0 for v in res["coverage_80"].values())
    assert all(res["checks"].values()), res["checks"]
    assert res["trace"]["test"] == 2 * period
    # a seasonal model must beat naive on a clean daily cycle
    assert res["smape"]["1"]["holt_winters"] < res["smape"]["1"]["naive"]


def test_bench_forecast_fails_clearly_without_the_trace(bench, tmp_path):
    with pytest.raises(SystemExit, match="not found"):
        bench.main(["--trace", str(tmp_path / "nope.csv")])
