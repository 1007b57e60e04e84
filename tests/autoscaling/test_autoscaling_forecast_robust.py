"""Forecasting that holds on workloads it was not tuned on: continuous fits (checked against
statsmodels), season detection on every synthetic family, the selecting ensemble, metrics with
zero minutes, and online-calibrated interval coverage. All seeded and pure (no Ray)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from echo_ray.autoscaling import (
    Ensemble,
    Holt,
    HoltWinters,
    LinearTrend,
    MovingAverage,
    Naive,
    SeasonalNaive,
    SimpleExponentialSmoothing,
)
from echo_ray.autoscaling.fitting import (
    fit_smoothing,
    heuristic_initial_state,
    holt_sse,
    holt_winters_sse,
    one_step_sse,
    ses_sse,
)
from echo_ray.autoscaling.metrics import mae, mase, smape
from echo_ray.autoscaling.season import candidate_periods, detect_period, seasonal_acf
from echo_ray.autoscaling.synthetic import FAMILIES, generate


def feed(model, values):
    for v in values:
        model.update(float(v))
    return model


def seasonal_series(n=1200, period=24, seed=0):
    t = np.arange(n)
    rate = 30 + 12 * np.sin(2 * np.pi * t / period) + 0.004 * t
    return np.random.default_rng(seed).poisson(rate).astype(float)


# ---- fitting -------------------------------------------------------------------------------------
@pytest.mark.parametrize("cycles", [1, 3])
def test_kernels_give_the_models_own_one_step_error(cycles):
    y = seasonal_series(600)
    data = y.tolist()
    assert ses_sse(data, 3, 0.3) == pytest.approx(
        one_step_sse(SimpleExponentialSmoothing(alpha=0.3), y, 3), rel=1e-12)
    assert holt_sse(data, 3, 0.3, 0.1, 0.9) == pytest.approx(
        one_step_sse(Holt(alpha=0.3, beta=0.1, phi=0.9), y, 3), rel=1e-12)
    hw = HoltWinters(period=24, alpha=0.2, beta=0.05, gamma=0.3, phi=0.95, init_cycles=cycles)
    assert holt_winters_sse(data, 24, 24, 0.2, 0.05, 0.3, 0.95, cycles) == pytest.approx(
        one_step_sse(hw, y, 24), rel=1e-12)


def test_fits_match_statsmodels_on_a_known_series():
    from statsmodels.tsa.holtwinters import ExponentialSmoothing, SimpleExpSmoothing

    y = seasonal_series()
    data = y.tolist()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sm_ses = SimpleExpSmoothing(y, initialization_method="heuristic").fit().params
        sm_hw = ExponentialSmoothing(y, trend="add", damped_trend=True, seasonal="add",
                                     seasonal_periods=24,
                                     initialization_method="heuristic").fit().params
    ses = fit_smoothing("ses", y)
    assert ses.params["alpha"] == pytest.approx(sm_ses["smoothing_level"], abs=0.02)
    hw = fit_smoothing("holt_winters", y, period=24)
    p = hw.params
    # Our optimum of our criterion is at least as good as statsmodels' parameters on it ...
    theirs = holt_winters_sse(data, 3 * 24, 24, sm_hw["smoothing_level"],
                              sm_hw["smoothing_trend"], sm_hw["smoothing_seasonal"],
                              sm_hw["damping_trend"])
    assert hw.sse <= theirs * 1.001
    # ... and lands near them: a slow level, a seasonal gamma of the same size.
    assert p["alpha"] < 0.1 and sm_hw["smoothing_level"] < 0.1
    assert abs(p["gamma"] - sm_hw["smoothing_seasonal"]) < 0.1
    assert p["beta"] <= p["alpha"] and p["gamma"] <= 1 - p["alpha"]
    assert 0.8 <= p["phi"] <= 0.995


@pytest.mark.parametrize("period", [24, 25])  # even and odd: statsmodels centres them apart
def test_known_start_is_statsmodels_heuristic_and_the_fit_reaches_its_optimum(period):
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    y = seasonal_series(period=period, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sm = ExponentialSmoothing(y, trend="add", damped_trend=True, seasonal="add",
                                  seasonal_periods=period,
                                  initialization_method="heuristic").fit()
    q = sm.params
    level, trend, season = heuristic_initial_state(y, period)
    assert level == pytest.approx(q["initial_level"])
    assert trend == pytest.approx(q["initial_trend"], abs=1e-9)
    assert season == pytest.approx(list(q["initial_seasons"]))
    # same equations: statsmodels' own parameters give statsmodels' own SSE in our kernel
    start = (level, trend, season)
    theirs = holt_winters_sse(y.tolist(), -1, period, q["smoothing_level"],
                              q["smoothing_trend"], q["smoothing_seasonal"],
                              q["damping_trend"], initial_state=start)
    assert theirs == pytest.approx(sm.sse, rel=1e-9)
    fit = fit_smoothing("holt_winters", y, period=period, known_start=True)
    assert fit.sse <= sm.sse * 1.001
    model = HoltWinters(**fit.params, initial_state=fit.initial_state)
    assert one_step_sse(model, y, -1) == pytest.approx(fit.sse, rel=1e-6)


def test_fit_beats_the_old_grid_corner_on_a_random_walk_and_on_noise():
    rng = np.random.default_rng(7)
    walk = np.cumsum(rng.normal(0, 1, 3000))
    assert fit_smoothing("ses", walk).params["alpha"] > 0.9
    noise = 100 + rng.normal(0, 1, 3000)
    assert fit_smoothing("ses", noise).params["alpha"] < 0.05
    holt = fit_smoothing("holt", walk)
    assert holt.sse <= one_step_sse(Holt(alpha=0.3, beta=0.05, phi=0.9), walk)


def test_fit_rejects_bad_input():
    with pytest.raises(ValueError, match="kind"):
        fit_smoothing("arima", [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="longer than skip"):
        fit_smoothing("holt_winters", np.ones(100), period=48)
    with pytest.raises(ValueError, match="finite"):
        fit_smoothing("ses", [1.0, np.nan, 2.0])


# ---- season detection and the synthetic families --------------------------------------------------
def test_candidate_periods_follow_the_data_step():
    assert candidate_periods(60) == [60, 1440, 10080]
    assert candidate_periods(1) == [3600, 86400, 604800]
    assert candidate_periods(3600) == [24, 168]


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("seed", [1, 2])
def test_detected_period_is_the_generated_one(family, seed):
    tr = generate(family, seed=seed)
    assert detect_period(tr.counts[:-tr.test]) == tr.period


def test_no_season_in_white_noise_and_a_clear_one_in_a_pure_cycle():
    rng = np.random.default_rng(0)
    assert detect_period(rng.poisson(20, 5 * 1440).astype(float)) is None
    cycle = np.tile(rng.uniform(0, 50, 60), 50)
    assert seasonal_acf(cycle, 60) > 0.95  # (n - m) / n of a perfect cycle
    assert detect_period(cycle) == 60


def test_family_properties():
    bursts = generate("timer_bursts", seed=3)
    minute = np.arange(bursts.counts.size) % 60
    by_minute = np.array([bursts.counts[minute == m].mean() for m in range(60)])
    assert set(np.argsort(by_minute)[-5:]) == set(bursts.info["burst_minutes"])

    zeros = generate("bursty_zeros", seed=3)
    off = zeros.info["off_fraction"]
    assert abs(off - zeros.info["expected_off_fraction"]) < 0.05
    assert (zeros.counts == 0).mean() >= off  # off minutes are zero; a few on ones too
    runs = np.diff(np.flatnonzero(np.diff(np.r_[0, zeros.counts == 0, 0])))[::2]
    assert runs.mean() > 3  # zeros come in runs, not scattered

    shifts = generate("shifts_outages", seed=3)
    assert (shifts.counts[shifts.rate == 0] == 0).all()
    assert 0.005 < shifts.info["outage_fraction"] < 0.1 and shifts.info["shift_starts"]

    ramps = generate("trend_ramps", seed=3)
    knots = np.array(ramps.info["knots"])
    inside = knots[knots < ramps.rate.size]
    assert ramps.rate[inside] == pytest.approx(np.array(ramps.info["knot_rates"])[:inside.size])

    weekly = generate("daily_weekly", seed=3)
    daily_means = weekly.rate.reshape(-1, 1440).mean(axis=1)
    assert daily_means[5] < 0.7 * daily_means[2]  # the weekend dip


def test_generator_is_seeded_and_checks_its_input():
    a, b = generate("bursty_zeros", seed=4, days=1), generate("bursty_zeros", seed=4, days=1)
    assert np.array_equal(a.counts, b.counts)
    assert not np.array_equal(a.counts, generate("bursty_zeros", seed=5, days=1).counts)
    with pytest.raises(ValueError, match="family"):
        generate("nope")
    with pytest.raises(ValueError, match="seed"):
        generate("trend_ramps", seed=-1)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("days", [2 / 24, 1.0])
def test_every_family_generates_a_day_or_less(family, days):
    tr = generate(family, seed=0, days=days)  # shifts_outages used to fail at <= 1 day
    assert tr.counts.size == round(days * 1440) and tr.counts.sum() > 0
    if family == "shifts_outages":
        assert tr.info["outage_fraction"] > 0  # its outage, in the second half


# ---- models and the ensemble ------------------------------------------------------------------------
def test_seasonal_naive_repeats_the_last_season():
    m = feed(SeasonalNaive(period=4, max_horizon=4), [1, 2, 3, 4, 5, 6])
    assert [m.point(h) for h in range(1, 5)] == [3.0, 4.0, 5.0, 6.0]
    assert feed(SeasonalNaive(period=4, max_horizon=2), [7, 8]).point(2) == 8.0  # warming up
    with pytest.raises(ValueError, match="max_horizon"):
        SeasonalNaive(period=3, max_horizon=5)


def _members(period):
    kw = {"max_horizon": 5, "adapt_rate": 0.0}
    out = [Naive(**kw), MovingAverage(window=10, **kw), LinearTrend(window=30, **kw),
           SimpleExponentialSmoothing(alpha=0.2, **kw),
           Holt(alpha=0.2, beta=0.02, phi=0.95, **kw)]
    if period:
        out += [SeasonalNaive(period=period, **kw),
                HoltWinters(period=period, alpha=0.1, beta=0.0, gamma=0.1, phi=0.9, **kw)]
    return out


def _scores(y, start, ens, horizons=(1, 5)):
    """MAE of the ensemble and of each member, and the ensemble's 80% coverage, over y[start:]
    (members are fed by the ensemble, so their forecasts are those of standalone models)."""
    T = y.size - start
    pts = {n: {h: np.zeros(T) for h in horizons}
           for n in [m.name for m in ens.members] + ["ensemble"]}
    hits = {h: np.zeros(T, dtype=bool) for h in horizons}
    for i, v in enumerate(y.tolist()):
        ens.update(v)
        for h in horizons:
            k = i + h - start
            if 0 <= k < T:
                for m in ens.members:
                    pts[m.name][h][k] = m.point(h)
                f = ens.forecast(h)
                pts["ensemble"][h][k] = f.point
                hits[h][k] = f.lower <= y[start + k] <= f.upper
    actual = y[start:]
    return ({n: {h: mae(actual, p[h]) for h in horizons} for n, p in pts.items()},
            {h: float(c.mean()) for h, c in hits.items()})


@pytest.mark.parametrize("family", FAMILIES)
def test_ensemble_is_not_worse_than_its_best_member_on_every_family(family):
    tr = generate(family, seed=11, days=3)
    y = tr.counts
    ens = Ensemble(_members(tr.period and min(tr.period, 60)), max_horizon=5)  # 3 days: hourly
    err, cov = _scores(y, y.size // 2, ens)
    for h in (1, 5):
        best = min(v[h] for n, v in err.items() if n != "ensemble")
        assert err["ensemble"][h] <= 1.02 * best, (family, h, err)
        assert 0.75 <= cov[h] <= 0.85, (family, h, cov)


def test_ensemble_chooses_the_decay_and_follows_the_better_expert():
    rng = np.random.default_rng(2)
    kw = {"max_horizon": 2}
    ens = Ensemble([Naive(**kw), MovingAverage(window=30, **kw)], halflives=(10, 1000), **kw)
    feed(ens, 50 + rng.normal(0, 5, 3000))  # stationary noise: the average wins
    assert ens.choice(1) == "moving_average" or ens.choice(1) == "combination"
    assert ens.weights(1)["moving_average"] > 0.5
    feed(ens, np.cumsum(rng.normal(0, 5, 3000)) + 50)  # a random walk: naive wins
    assert ens.weights(1)["naive"] > 0.5
    with pytest.raises(ValueError, match="halflives"):
        Ensemble([Naive()], halflives=())
    with pytest.raises(ValueError, match="margin"):
        Ensemble([Naive()], margin=1.0)


# ---- metrics with zeros ----------------------------------------------------------------------------
def test_mase_and_mae_are_not_distorted_by_zero_minutes():
    actual = [0.0, 0.0, 10.0, 0.0]
    near = [1.0, 1.0, 10.0, 1.0]  # off by one on each zero minute
    assert mae(actual, near) == pytest.approx(0.75)
    assert smape(actual, near) == pytest.approx(150.0)  # each 1-vs-0 term scores 200%
    insample = [0.0, 4.0, 0.0, 4.0, 0.0]  # naive MAE 4, seasonal naive (period 2) MAE 0
    assert mase(actual, near, insample) == pytest.approx(0.75 / 4.0)
    with pytest.raises(ValueError, match="constant"):
        mase(actual, near, insample, period=2)
    with pytest.raises(ValueError, match="longer"):
        mase(actual, near, [1.0], period=1)


# ---- calibrated intervals --------------------------------------------------------------------------
def test_calibration_holds_coverage_where_a_fixed_quantile_drifts():
    # Poisson counts whose noise grows and shrinks with the level, with runs of zero minutes:
    # the recent-error quantile alone lags every change; the calibrated level compensates.
    rng = np.random.default_rng(9)
    level = np.repeat(rng.choice([2.0, 40.0, 300.0], size=30), 120)
    y = rng.poisson(level).astype(float)
    y[rng.random(y.size) < 0.15] = 0.0
    ens = Ensemble([SimpleExponentialSmoothing(alpha=0.5, max_horizon=5, adapt_rate=0.0)])
    coverage = _scores(y, 600, ens)[1]
    for h in (1, 5):
        assert 0.77 <= coverage[h] <= 0.83, coverage


def test_calibration_off_gives_the_plain_empirical_interval():
    m = feed(Naive(max_horizon=1, min_residuals=1, adapt_rate=0.0), [0, 1, 3, 6, 10])
    f = m.forecast(1)
    assert (f.lower, f.upper) == pytest.approx((10 + np.quantile([1, 2, 3, 4], 0.1),
                                                10 + np.quantile([1, 2, 3, 4], 0.9)))
    with pytest.raises(ValueError, match="adapt_rate"):
        Naive(adapt_rate=2.0)


# ---- periodic refit ----------------------------------------------------------------------------------
def test_periodic_refit_moves_parameters_toward_the_data_and_keeps_state():
    rng = np.random.default_rng(5)
    walk = 100 + np.cumsum(rng.normal(0, 3, 1200))  # a random walk wants alpha near 1
    kw = {"max_horizon": 3, "adapt_rate": 0.0}
    ses = SimpleExponentialSmoothing(alpha=0.05, **kw)
    ens = Ensemble([Naive(**kw), ses], refit_every=100, fit_window=400, max_horizon=3)
    feed(ens, walk[:399])
    assert ens.last_refit is None and ses.alpha == 0.05  # no refit before a full window
    feed(ens, walk[399:])
    assert ens.last_refit["member"] == "ses" and ens.last_refit["evaluations"] <= 45
    assert ses.alpha > 0.8
    assert ses.point(1) == pytest.approx(ses._level)  # state carried on, not reset


def test_refit_skips_holt_winters_when_the_window_is_shorter_than_its_warm_up():
    kw = {"max_horizon": 2}
    hw = HoltWinters(period=100, **kw)
    ens = Ensemble([hw, Holt(**kw)], refit_every=10, fit_window=300, **kw)
    assert [m.name for m in ens._fittable] == ["holt"]
    with pytest.raises(ValueError, match="refit_every"):
        Ensemble([Naive()], refit_every=0)


def test_a_member_is_not_judged_by_errors_made_before_it_warmed_up():
    # A short trace with strong minute-of-hour bursts: Holt-Winters is plain Holt (and far off)
    # for its first 3 hours; those errors must not keep the ensemble off it afterwards.
    tr = generate("timer_bursts", seed=3, days=0.75)
    kw = {"max_horizon": 5, "adapt_rate": 0.0}
    hw = HoltWinters(period=60, alpha=0.01, beta=0.0, gamma=0.1, phi=0.99, **kw)
    ens = Ensemble([SimpleExponentialSmoothing(alpha=0.01, **kw), hw], max_horizon=5)
    assert not hw.warmed_up
    feed(ens, tr.counts[:400])
    assert hw.warmed_up and ens.choice(1) == "holt_winters"
    assert ens.weights(1)["holt_winters"] == 1.0
