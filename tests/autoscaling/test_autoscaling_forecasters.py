"""Forecasters on synthetic series with known answers, measured interval coverage, ensemble weights."""

from __future__ import annotations

import math

import numpy as np
import pytest

from echo_ray.autoscaling import (
    Ensemble,
    Forecast,
    Holt,
    HoltWinters,
    LinearTrend,
    MovingAverage,
    Naive,
    SimpleExponentialSmoothing,
    default_ensemble,
)
from echo_ray.autoscaling.forecast import empirical_quantiles


def feed(model, values):
    for v in values:
        model.update(float(v))
    return model


# ---- known answers ---------------------------------------------------------------------------
def test_linear_trend_extrapolates_a_line_exactly():
    line = 3.0 + 2.0 * np.arange(40)
    m = feed(LinearTrend(window=10, max_horizon=5), line)
    for h in range(1, 6):
        assert m.point(h) == pytest.approx(line[-1] + 2.0 * h, abs=1e-9)


def test_linear_trend_warm_up_uses_the_points_it_has():
    m = feed(LinearTrend(window=10, max_horizon=3), [1.0, 3.0, 5.0])
    assert m.point(1) == pytest.approx(7.0)
    assert feed(LinearTrend(window=10), [4.0]).point(2) == pytest.approx(4.0)


def test_holt_converges_to_a_line_and_damping_flattens_it():
    line = 5.0 + 0.5 * np.arange(300)
    undamped = feed(Holt(alpha=0.5, beta=0.3, phi=1.0, max_horizon=10), line)
    assert undamped.point(10) == pytest.approx(line[-1] + 5.0, abs=1e-6)
    damped = feed(Holt(alpha=0.5, beta=0.3, phi=0.8, max_horizon=10), line)
    steps = np.diff([damped.point(h) for h in range(1, 11)])
    assert steps == pytest.approx(steps[0] * 0.8 ** np.arange(9))  # trend shrinks by phi a step


def test_holt_winters_learns_a_seasonal_pattern_with_trend():
    period = 12
    t = np.arange(40 * period)
    y = 10.0 + 5.0 * np.sin(2 * np.pi * t / period) + 0.1 * t
    m = HoltWinters(period=period, alpha=0.3, beta=0.1, gamma=0.3, phi=1.0, max_horizon=period)
    feed(m, y)
    assert m.seasonal_ready
    future = np.arange(len(t), len(t) + period)
    truth = 10.0 + 5.0 * np.sin(2 * np.pi * future / period) + 0.1 * future
    got = np.array([m.point(h) for h in range(1, period + 1)])
    assert np.max(np.abs(got - truth)) < 0.05


def test_holt_winters_before_one_season_behaves_like_holt():
    hw = feed(HoltWinters(period=24, alpha=0.3, beta=0.1, gamma=0.2, phi=0.9), range(10))
    holt = feed(Holt(alpha=0.3, beta=0.1, phi=0.9), range(10))
    assert not hw.seasonal_ready
    assert hw.point(3) == pytest.approx(holt.point(3))


def test_step_change_hand_computed():
    step = [10.0] * 50 + [20.0] * 3
    assert feed(Naive(), step).point(1) == 20.0
    # mean of the last five: 10, 10, 20, 20, 20
    assert feed(MovingAverage(window=5), step).point(1) == pytest.approx(16.0)
    # SES closes half the gap per step: 20 - 10 * 0.5^3
    assert feed(SimpleExponentialSmoothing(alpha=0.5), step).point(1) == pytest.approx(18.75)


def test_moving_average_sum_does_not_drift():
    rng = np.random.default_rng(3)
    values = rng.uniform(0, 1e6, 5003)
    m = feed(MovingAverage(window=7), values)
    assert m.point(1) == pytest.approx(values[-7:].mean(), rel=1e-12)


# ---- residual bookkeeping and intervals -------------------------------------------------------
def test_residuals_are_the_errors_of_forecasts_made_h_steps_ago():
    m = feed(Naive(max_horizon=3, min_residuals=1, adapt_rate=0.0), [1.0, 2.0, 4.0, 7.0, 11.0])
    assert sorted(m.residuals(1)) == [1.0, 2.0, 3.0, 4.0]
    assert sorted(m.residuals(2)) == [3.0, 5.0, 7.0]  # 4-1, 7-2, 11-4
    assert sorted(m.residuals(3)) == [6.0, 9.0]  # 7-1, 11-2
    f = m.forecast(2)
    assert isinstance(f, Forecast) and f.point == 11.0 and f.n_residuals == 3
    assert f.lower == pytest.approx(11.0 + np.quantile([3, 5, 7], 0.1))  # uncalibrated levels
    assert f.upper == pytest.approx(11.0 + np.quantile([3, 5, 7], 0.9))


def test_residual_ring_keeps_only_the_window():
    m = feed(Naive(max_horizon=2, interval_window=4), [0, 1, 3, 6, 10, 15, 21])
    assert sorted(m.residuals(1)) == [3.0, 4.0, 5.0, 6.0]
    assert m.n_residuals(1) == 4


@pytest.mark.parametrize("n", [1, 2, 3, 10, 11, 500])
def test_empirical_quantiles_match_numpy(n):
    rng = np.random.default_rng(n)
    for values in (rng.normal(size=n), np.round(rng.normal(size=n))):
        assert empirical_quantiles(values, (0.1, 0.5, 0.9)) == pytest.approx(
            np.quantile(values, (0.1, 0.5, 0.9)))


def test_uncalibrated_forecast_is_flagged():
    m = feed(SimpleExponentialSmoothing(min_residuals=10), [1.0, 2.0, 3.0])
    f = m.forecast(1)
    assert not f.calibrated and f.lower == f.upper == f.point


def _coverage(model, y, horizons, start):
    hits = {h: [] for h in horizons}
    pending = {}
    for i, v in enumerate(y):
        for h in horizons:
            f = pending.pop((i, h), None)
            if f is not None and i >= start:
                hits[h].append(f.lower <= v <= f.upper)
        model.update(float(v))
        for h in horizons:
            pending[(i + h, h)] = model.forecast(h)
    return {h: float(np.mean(hits[h])) for h in horizons}


@pytest.mark.parametrize("make", [
    lambda: SimpleExponentialSmoothing(alpha=0.05, max_horizon=5, interval_window=500),
    lambda: default_ensemble(max_horizon=5, interval_window=500),
], ids=["ses", "ensemble"])
def test_intervals_cover_about_80_percent_on_a_stationary_noisy_series(make):
    y = 50.0 + np.random.default_rng(0).normal(0.0, 5.0, 4000)
    cov = _coverage(make(), y, horizons=(1, 5), start=800)
    for h, c in cov.items():
        assert 0.76 <= c <= 0.84, (h, c)


# ---- ensemble ---------------------------------------------------------------------------------
def test_ensemble_weights_move_toward_the_accurate_model():
    kw = {"max_horizon": 3, "error_halflife": 20}
    ens = Ensemble([LinearTrend(window=5, **kw), MovingAverage(window=50, **kw), Naive(**kw)],
                   halflives=(20,), **kw)
    rng = np.random.default_rng(1)
    ens.update(0.0)
    assert ens.weights(1) == pytest.approx({"linear": 1 / 3, "moving_average": 1 / 3,
                                            "naive": 1 / 3})
    trend = 0.5 * np.arange(1, 300) + rng.normal(0, 0.05, 299)  # smooth ramp: the line wins
    feed(ens, trend)
    w = ens.weights(1)
    assert w["linear"] > 0.9
    # flat and noisy: the long average wins, the line and naive chase noise
    feed(ens, trend[-1] + rng.normal(0, 5.0, 400))
    w = ens.weights(3)
    assert w["moving_average"] > 0.6 and w["moving_average"] > max(w["linear"], w["naive"])


def test_ensemble_point_is_the_weighted_mean_of_member_points():
    ens = default_ensemble(max_horizon=4)
    feed(ens, 20 + 3 * np.sin(np.arange(200) / 5.0))
    for h in (1, 4):
        w = ens.weights(h)
        expected = sum(w[m.name] * m.point(h) for m in ens.members)
        assert ens.point(h) == pytest.approx(expected)
        assert math.isclose(sum(w.values()), 1.0)


def test_ensemble_gives_a_perfect_member_all_the_weight():
    kw = {"max_horizon": 2}
    ens = Ensemble([LinearTrend(window=4, **kw), SimpleExponentialSmoothing(alpha=0.2, **kw)],
                   **kw)
    feed(ens, 2.0 * np.arange(600))
    assert ens.weights(1)["linear"] > 0.9999
    assert ens.point(1) == pytest.approx(1200.0)


# ---- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["3", float("nan"), float("inf"), None, True])
def test_update_rejects_non_finite_or_non_numeric(bad):
    with pytest.raises(ValueError, match="y must be"):
        Naive().update(bad)


def test_forecast_argument_checks():
    m = Naive(max_horizon=3)
    with pytest.raises(ValueError, match="update"):
        m.forecast(1)
    m.update(1.0)
    with pytest.raises(ValueError, match="h must be"):
        m.forecast(4)
    with pytest.raises(ValueError, match="h must be"):
        m.forecast(0)


@pytest.mark.parametrize("make, name", [
    (lambda: SimpleExponentialSmoothing(alpha=0.0), "alpha"),
    (lambda: Holt(phi=1.5), "phi"),
    (lambda: HoltWinters(period=1), "period"),
    (lambda: MovingAverage(window=0), "window"),
    (lambda: LinearTrend(window=1), "window"),
    (lambda: Naive(coverage=1.0), "coverage"),
    (lambda: Naive(max_horizon=0), "max_horizon"),
    (lambda: Ensemble([]), "members"),
    (lambda: Ensemble([Naive(), Naive()]), "distinct"),
    (lambda: Ensemble([Naive(max_horizon=2)], max_horizon=5), "max_horizon"),
])
def test_constructors_reject_bad_parameters(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_ensemble_rejects_members_that_already_saw_data():
    used = feed(Naive(), [1.0])
    with pytest.raises(ValueError, match="fresh"):
        Ensemble([used])
