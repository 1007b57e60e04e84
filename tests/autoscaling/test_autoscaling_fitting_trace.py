"""Accuracy measures, grid-search fitting and trace loading."""

from __future__ import annotations

import numpy as np
import pytest

from echo_ray.autoscaling import SimpleExponentialSmoothing
from echo_ray.autoscaling.fitting import grid_search, one_step_sse
from echo_ray.autoscaling.metrics import coverage, mae, smape
from echo_ray.autoscaling.trace import NASA_TRACE, load_request_trace


def test_smape_mae_coverage_hand_computed():
    # terms: 2*5/25 = 0.4, 2*5/15 = 2/3, 0/0 -> 0
    assert smape([10, 10, 0], [15, 5, 0]) == pytest.approx(100 * (0.4 + 2 / 3 + 0) / 3)
    assert mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0)
    assert coverage([1, 5, 9], [0, 6, 8], [2, 7, 9]) == pytest.approx(2 / 3)


def test_metrics_reject_mismatched_input():
    with pytest.raises(ValueError, match="equal-length"):
        smape([1, 2], [1])
    with pytest.raises(ValueError, match="finite"):
        mae([1, np.nan], [1, 2])


def test_one_step_sse_hand_computed():
    # SES alpha=0.5 on 0, 2, 2: forecasts 0 then 1 -> errors 2 and 1
    assert one_step_sse(SimpleExponentialSmoothing(alpha=0.5), [0.0, 2.0, 2.0]) == 5.0
    assert one_step_sse(SimpleExponentialSmoothing(alpha=0.5), [0.0, 2.0, 2.0], skip=1) == 1.0


def test_grid_search_prefers_fast_smoothing_on_a_random_walk_and_slow_on_noise():
    rng = np.random.default_rng(7)
    grid = {"alpha": [0.05, 0.3, 0.95]}
    walk = np.cumsum(rng.normal(0, 1, 3000))
    best, table = grid_search(SimpleExponentialSmoothing, grid, walk)
    assert best == {"alpha": 0.95} and len(table) == 3
    noise = 100 + rng.normal(0, 1, 3000)
    assert grid_search(SimpleExponentialSmoothing, grid, noise)[0] == {"alpha": 0.05}


def test_load_trace_csv_and_plain(tmp_path):
    csv_path = tmp_path / "t.csv"
    csv_path.write_text("minute,requests\n0,5\n1,7\n2,0\n")
    assert load_request_trace(csv_path).tolist() == [5.0, 7.0, 0.0]
    plain = tmp_path / "t.txt"
    plain.write_text("3\n4\n\n5\n")
    assert load_request_trace(plain).tolist() == [3.0, 4.0, 5.0]


@pytest.mark.parametrize("text, match", [
    ("minute,count\n0,1\n", "requests"),
    ("1\nx\n", "number"),
    ("1\n-2\n", "non-negative"),
    ("", "non-empty"),
])
def test_load_trace_rejects_bad_files(tmp_path, text, match):
    p = tmp_path / "bad.txt"
    p.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_request_trace(p)
    with pytest.raises(ValueError, match="existing"):
        load_request_trace(tmp_path / "missing.csv")


def test_nasa_trace_loads(traces_dir):
    y = load_request_trace(traces_dir / NASA_TRACE)
    assert y.size == 84332 and y.max() == 409.0  # as the traces README says
    assert 40.0 < y.mean() < 42.0
