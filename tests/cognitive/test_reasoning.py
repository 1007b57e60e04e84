"""Sequence continuation: Mackey-Glass accuracy, honest uncertainty, determinism, errors."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from echo_ray.cognitive import LocalEngines, process
from echo_ray.cognitive.models import MAX_HORIZON, MAX_SERIES, MIN_SERIES
from echo_ray.dtesn.datasets import mackey_glass, scale_to_unit


@pytest.fixture(scope="module")
def mg():
    return scale_to_unit(mackey_glass(3200))


def test_mackey_glass_one_step_nrmse_below_one_percent(engines, mg):
    res = process("reasoning", {"series": mg[:3000].tolist(), "horizon": 1}, {}, engines)
    assert not res.changed
    r = res.result
    print(f"Mackey-Glass 1-step NRMSE: train {r['train_nrmse']:.2e}, "
          f"validation {r['validation_nrmse']:.2e}")
    assert r["validation_nrmse"] < 0.01 and r["train_nrmse"] < 0.01
    assert abs(r["predictions"][0] - mg[3000]) < 0.01


def test_multi_step_forecast_tracks_the_series_within_its_uncertainty(engines, mg):
    H = 50
    r = process("reasoning", {"series": mg[:3000].tolist(), "horizon": H}, {}, engines).result
    pred, sigma, truth = np.array(r["predictions"]), np.array(r["uncertainty"]), mg[3000:3000 + H]
    assert len(pred) == len(sigma) == H == r["horizon"]
    err = np.abs(pred - truth)
    print(f"50-step forecast: max error {err.max():.3g}, sigma_1 {sigma[0]:.2e} "
          f"sigma_50 {sigma[-1]:.2e}; {r['uncertainty_method']}")
    assert np.sqrt(np.mean(err ** 2)) / np.std(truth) < 0.05
    assert np.all(np.diff(sigma) >= 0) and sigma[0] > 0
    assert np.mean(err <= 3 * sigma) >= 0.9  # the stated uncertainty covers the errors
    assert "held-out origins" in r["uncertainty_method"]


def test_predictions_are_in_the_series_units(engines):
    t = np.arange(200)
    series = 1000.0 + 50.0 * np.sin(2 * np.pi * t / 25)
    r = process("reasoning", {"series": series.tolist(), "horizon": 25}, {}, engines).result
    truth = 1000.0 + 50.0 * np.sin(2 * np.pi * np.arange(200, 225) / 25)
    assert np.max(np.abs(np.array(r["predictions"]) - truth)) < 5.0
    assert r["validation_nrmse"] < 0.05


def test_constant_series_continues_exactly(engines):
    r = process("reasoning", {"series": [3.5] * MIN_SERIES, "horizon": 4}, {}, engines).result
    assert r["predictions"] == [3.5] * 4 and r["uncertainty"] == [0.0] * 4


def test_series_spanning_more_than_a_float_is_rejected(engines):
    with pytest.raises(ValueError, match="series: values must span a finite range"):
        process("reasoning", {"series": [-1e308, 1e308] * 20}, {}, engines)


def test_deterministic(mg):
    payload = {"series": mg[:400].tolist(), "horizon": 20}
    a = process("reasoning", payload, {}, LocalEngines()).result
    b = process("reasoning", payload, {}, LocalEngines()).result
    assert a == b


def test_horizon_longer_than_the_held_out_part_extrapolates_sigma(engines, mg):
    r = process("reasoning", {"series": mg[:100].tolist(), "horizon": 60}, {}, engines).result
    sigma = np.array(r["uncertainty"])
    assert np.all(np.isfinite(sigma)) and np.all(np.diff(sigma) >= 0)
    assert "sqrt" in r["uncertainty_method"]
    assert np.all(np.isfinite(r["predictions"]))


@pytest.mark.parametrize("payload, message", [
    ({"series": [1.0] * (MIN_SERIES - 1)}, "at least"),
    ({"series": [1.0] * (MAX_SERIES + 1)}, "at most"),
    ({"series": [1.0] * 40 + [float("nan")]}, "finite number"),
    ({"series": [1.0] * 40 + [float("-inf")]}, "finite number"),
    ({"series": [1.0] * 40, "horizon": 0}, "greater than or equal to 1"),
    ({"series": [1.0] * 40, "horizon": MAX_HORIZON + 1}, "less than or equal"),
    ({"series": ["a"] * 40}, "valid number"),
    ({"series": [1.0] * 40, "validation_fraction": 0.9}, "less than or equal"),
    ({"horizon": 3}, "Field required"),
])
def test_bad_input(engines, payload, message):
    with pytest.raises(ValidationError, match=message):
        process("reasoning", payload, {}, engines)
