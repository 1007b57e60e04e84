"""The forecast benchmark end to end on a small trace: protocol, JSON schema, statsmodels checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.support.benchmarks import load_benchmark

MODELS = {"naive", "seasonal_naive", "moving_average", "linear", "ses", "holt", "holt_winters",
          "ensemble",
          "statsmodels_ses", "statsmodels_holt_winters"}


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_forecast")


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
    res = json.loads(out.read_text())["trace"]
    for metric in ("smape", "mae", "mase"):
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


def test_bench_forecast_without_a_season_uses_damped_holt_on_both_sides(bench, tmp_path):
    counts = np.random.default_rng(6).poisson(np.linspace(10, 60, 900))  # a ramp, no season
    trace = tmp_path / "ramp.txt"
    trace.write_text("\n".join(map(str, counts)) + "\n")
    out = tmp_path / "forecast.json"
    assert bench.main(["--trace", str(trace), "--test-days", str(300 / 1440),
                       "--json", str(out)]) == 0
    res = json.loads(out.read_text())["trace"]
    assert res["trace"]["period"] is None  # detected: none
    assert {"statsmodels_holt", "holt"} <= set(res["mae"]["1"])
    assert not {"holt_winters", "seasonal_naive"} & set(res["mae"]["1"])
    assert set(res["targets"]) == {"1", "5"} and "met" in res


def test_bench_forecast_rejects_a_bad_period(bench, tmp_path):
    with pytest.raises(SystemExit, match="period"):
        bench.main(["--period", "1"])


def test_bench_forecast_fails_clearly_without_the_trace(bench, tmp_path):
    with pytest.raises(SystemExit, match="not found"):
        bench.main(["--trace", str(tmp_path / "nope.csv")])
