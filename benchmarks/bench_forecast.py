"""Our online forecasters vs naive and statsmodels on a real request trace, same protocol for all.

    python benchmarks/bench_forecast.py --json benchmarks/out/forecast.json
    python benchmarks/bench_forecast.py --trace counts.txt --period 1440 --test-days 7

Default trace: NASA Kennedy Space Center HTTP requests per minute, Jul-Aug 1995
(`$ECHO_RAY_TRACES/nasa_http_1995_per_minute.csv`).

Protocol, identical for every model:
- Split: the last `--test-days` days (7 x 1440 = 10,080 minutes) are the test set; everything
  before is training (it includes the 1-3 Aug outage of zeros).
- Fit on training only, minimising one-step-ahead squared error: ours by grid search over the
  model's own online code, statsmodels by its own optimiser (heuristic initial states).
- Test: online with frozen parameters. For each test minute t we score the 1-step forecast made
  at t-1 and the 5-step forecast made at t-5, each from a model that has seen exactly the data up
  to its origin. Ours: `update(y)` once per minute. statsmodels: the fitted parameters and
  initial states are re-run over the whole series with `optimized=False` (statsmodels' own
  filter, no refit); the level/trend/season states at each origin give the h-step forecast,
  checked against statsmodels' `forecast(h)` of a model filtered up to that origin.
- Intervals: 80% intervals from each model's own recent h-step residuals; coverage_80 is the
  ensemble's, `coverage_80_by_model` has every model's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from echo_ray.autoscaling import (
    Ensemble,
    Holt,
    HoltWinters,
    LinearTrend,
    MovingAverage,
    Naive,
    SimpleExponentialSmoothing,
)
from echo_ray.autoscaling.fitting import grid_search
from echo_ray.autoscaling.metrics import coverage, mae, smape
from echo_ray.autoscaling.trace import NASA_TRACE, load_request_trace, traces_dir

HORIZONS = (1, 5)
INTERVAL_WINDOW = 500  # residuals behind each interval
ENSEMBLE_POWER = 2.0  # weights ~ 1 / MSE^2 (chosen on the week before the test week)


def _steps(lo, hi, step):
    return [round(float(v), 3) for v in np.arange(lo, hi + step / 2, step)]


def grids(period: int) -> dict:
    return {
        "moving_average": (MovingAverage, {"window": [2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 60]}),
        "linear": (LinearTrend, {"window": [10, 15, 20, 30, 45, 60, 90, 120, 180, 240]}),
        "ses": (SimpleExponentialSmoothing, {"alpha": _steps(0.02, 0.98, 0.02)}),
        "holt": (Holt, {"alpha": _steps(0.05, 0.5, 0.05), "beta": [0.0, 0.001, 0.01, 0.05],
                        "phi": [0.8, 0.9, 0.95, 0.98, 1.0]}),
        "holt_winters": (lambda **p: HoltWinters(period=period, **p),
                         {"alpha": [0.05, 0.1, 0.15, 0.2, 0.25, 0.3], "beta": [0.0, 0.01],
                          "gamma": [0.01, 0.02, 0.05, 0.1, 0.2], "phi": [0.8, 0.9, 0.98]}),
    }


def fit_ours(train: np.ndarray, period: int) -> dict:
    fitted = {"naive": {}}
    for name, (factory, grid) in grids(period).items():
        t = time.perf_counter()
        best, table = grid_search(factory, grid, train, skip=period)
        fitted[name] = best
        print(f"  fit {name:15s} {best}  ({len(table)} candidates, "
              f"{time.perf_counter() - t:.1f}s)", flush=True)
    return fitted


def build_ours(fitted: dict, period: int) -> list:
    kw = {"max_horizon": max(HORIZONS), "interval_window": INTERVAL_WINDOW}
    return [Naive(**kw), MovingAverage(**fitted["moving_average"], **kw),
            LinearTrend(**fitted["linear"], **kw),
            SimpleExponentialSmoothing(**fitted["ses"], **kw), Holt(**fitted["holt"], **kw),
            HoltWinters(period=period, **fitted["holt_winters"], **kw)]


def run_ours(y: np.ndarray, start: int, fitted: dict, period: int) -> tuple[dict, dict]:
    """Online pass over the whole series; record forecasts whose target is in the test set."""
    singles = build_ours(fitted, period)
    ens = Ensemble(build_ours(fitted, period), power=ENSEMBLE_POWER,
                   max_horizon=max(HORIZONS), interval_window=INTERVAL_WINDOW)
    models = [*singles, ens]
    T = len(y) - start
    out = {m.name: {h: np.zeros((3, T)) for h in HORIZONS} for m in models}
    spent = dict.fromkeys(out, 0.0)
    first_origin = start - max(HORIZONS)
    for i, v in enumerate(y.tolist()):
        for m in models:
            t = time.perf_counter()
            m.update(v)
            spent[m.name] += time.perf_counter() - t
        if i < first_origin:
            continue
        for h in HORIZONS:
            target = i + h - start
            if 0 <= target < T:
                for m in models:
                    f = m.forecast(h)
                    out[m.name][h][:, target] = (f.point, f.lower, f.upper)
    us = {name: 1e6 * s / len(y) for name, s in spent.items()}
    return out, us


def run_statsmodels(y: np.ndarray, start: int, period: int) -> tuple[dict, dict, dict]:
    from statsmodels.tsa.holtwinters import ExponentialSmoothing, SimpleExpSmoothing

    train = y[:start]
    hw_kw = {"trend": "add", "damped_trend": True, "seasonal": "add",
             "seasonal_periods": period}
    info, checks, preds = {}, {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning chatter; results are checked below
        t = time.perf_counter()
        ses = SimpleExpSmoothing(train, initialization_method="heuristic").fit()
        p = ses.params
        info["statsmodels_ses"] = {"alpha": float(p["smoothing_level"]),
                                   "fit_s": time.perf_counter() - t}
        print(f"  fit statsmodels_ses {info['statsmodels_ses']}", flush=True)

        def ses_fixed(data):
            return SimpleExpSmoothing(data, initialization_method="known",
                                      initial_level=p["initial_level"]).fit(
                smoothing_level=p["smoothing_level"], optimized=False)

        t = time.perf_counter()
        level = ses_fixed(y).level
        info["statsmodels_ses"]["filter_us_per_obs"] = 1e6 * (time.perf_counter() - t) / len(y)
        preds["statsmodels_ses"] = {h: level[start - h: len(y) - h] for h in HORIZONS}

        t = time.perf_counter()
        hw = ExponentialSmoothing(train, initialization_method="heuristic", **hw_kw).fit()
        q = hw.params
        info["statsmodels_holt_winters"] = {
            "alpha": float(q["smoothing_level"]), "beta": float(q["smoothing_trend"]),
            "gamma": float(q["smoothing_seasonal"]), "phi": float(q["damping_trend"]),
            "fit_s": time.perf_counter() - t}
        print(f"  fit statsmodels_holt_winters {info['statsmodels_holt_winters']}", flush=True)

        def hw_fixed(data):
            return ExponentialSmoothing(
                data, initialization_method="known", initial_level=q["initial_level"],
                initial_trend=q["initial_trend"], initial_seasonal=q["initial_seasons"],
                **hw_kw).fit(smoothing_level=q["smoothing_level"],
                             smoothing_trend=q["smoothing_trend"],
                             smoothing_seasonal=q["smoothing_seasonal"],
                             damping_trend=q["damping_trend"], optimized=False)

        t = time.perf_counter()
        full = hw_fixed(y)
        info["statsmodels_holt_winters"]["filter_us_per_obs"] = (
            1e6 * (time.perf_counter() - t) / len(y))
        phi = float(q["damping_trend"])
        season = np.concatenate([np.asarray(q["initial_seasons"]), full.season])

        def hw_forecast(origins, h):  # state at origin -> forecast of origin + h (h <= period)
            damp = sum(phi ** i for i in range(1, h + 1))
            return full.level[origins] + damp * full.trend[origins] + season[origins + h]

        preds["statsmodels_holt_winters"] = {
            h: hw_forecast(np.arange(start - h, len(y) - h), h) for h in HORIZONS}
        # The filtered states must reproduce statsmodels' own forecasts and its training fit.
        checks["hw_train_states_match_fit"] = bool(np.allclose(full.level[:start], hw.level))
        for origin in (start + min(100, (len(y) - start) // 2), len(y) - 1 - max(HORIZONS)):
            own = hw_fixed(y[: origin + 1]).forecast(max(HORIZONS))
            ours = [hw_forecast(np.array([origin]), h)[0] for h in range(1, max(HORIZONS) + 1)]
            checks[f"hw_forecast_matches_at_{origin}"] = bool(np.allclose(own, ours))
            own_ses = ses_fixed(y[: origin + 1]).forecast(max(HORIZONS))
            checks[f"ses_forecast_matches_at_{origin}"] = bool(
                np.allclose(own_ses, level[origin]))
    return preds, info, checks


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trace", type=Path, default=None,
                    help="minute,requests CSV or one count per line (default: NASA 1995)")
    ap.add_argument("--json", type=Path, default=None, help="write results here")
    ap.add_argument("--period", type=int, default=1440, help="season length in samples")
    ap.add_argument("--test-days", type=float, default=7.0,
                    help="test span, in days of 1440 samples")
    args = ap.parse_args(argv)

    path = args.trace or traces_dir() / NASA_TRACE
    if not path.is_file():
        sys.exit(f"trace {path} not found: set ECHO_RAY_TRACES to the shared traces folder "
                 f"or pass --trace PATH")
    y = load_request_trace(path)
    test = int(round(args.test_days * 1440))
    start = len(y) - test
    if test < 1 or start < 3 * args.period:
        sys.exit(f"trace has {len(y)} samples: need test ({test}) + 3 seasons "
                 f"(3 x {args.period}) of training")
    print(f"trace {path}: {len(y)} samples; train {start}, test {test} (last "
          f"{args.test_days:g} days); season {args.period}", flush=True)

    t0 = time.perf_counter()
    fitted = fit_ours(y[:start], args.period)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours, us = run_ours(y, start, fitted, args.period)
    run_s = time.perf_counter() - t0
    print(f"  online pass over {len(y)} samples: {run_s:.1f}s", flush=True)
    sm_preds, sm_info, checks = run_statsmodels(y, start, args.period)
    if not all(checks.values()):
        print(f"WARNING: statsmodels state reconstruction checks failed: {checks}")

    actual = y[start:]
    names = [*ours, *sm_preds]
    point = {n: {h: ours[n][h][0] if n in ours else sm_preds[n][h] for h in HORIZONS}
             for n in names}
    result = {
        "smape": {str(h): {n: smape(actual, point[n][h]) for n in names} for h in HORIZONS},
        "mae": {str(h): {n: mae(actual, point[n][h]) for n in names} for h in HORIZONS},
        "coverage_80": {str(h): coverage(actual, ours["ensemble"][h][1], ours["ensemble"][h][2])
                        for h in HORIZONS},
        "coverage_80_by_model": {
            str(h): {n: coverage(actual, ours[n][h][1], ours[n][h][2]) for n in ours}
            for h in HORIZONS},
    }
    targets = {}
    for h in map(str, HORIZONS):
        singles = {n: v for n, v in result["smape"][h].items() if n != "ensemble"}
        best = min(singles, key=singles.get)
        targets[h] = {"best_single": best, "best_single_smape": singles[best],
                      "ensemble_smape": result["smape"][h]["ensemble"],
                      "ratio_ensemble_over_best": result["smape"][h]["ensemble"] / singles[best],
                      "ensemble_le_best_single": result["smape"][h]["ensemble"] <= singles[best],
                      "coverage_in_0.75_0.85": 0.75 <= result["coverage_80"][h] <= 0.85}
    result.update({
        "targets": targets,
        "params": {"ours": fitted, "statsmodels": sm_info, "ensemble_power": ENSEMBLE_POWER,
                   "interval_window": INTERVAL_WINDOW},
        "timing": {"our_fit_s": fit_s, "our_online_pass_s": run_s,
                   "our_update_us": us},
        "checks": checks,
        "trace": {"path": str(path), "samples": len(y), "train": start, "test": test,
                  "period": args.period},
    })

    print(f"\n{'model':26s}" + "".join(f"  sMAPE h={h:<3d} MAE h={h:<3d}" for h in HORIZONS)
          + "  cov80 h=1  cov80 h=5")
    for n in names:
        row = "".join(f"  {result['smape'][str(h)][n]:9.2f}% {result['mae'][str(h)][n]:8.2f}"
                      for h in HORIZONS)
        cov = "".join(f"  {result['coverage_80_by_model'][str(h)][n]:9.3f}" if n in ours
                      else f"  {'-':>9s}" for h in HORIZONS)
        print(f"{n:26s}{row}{cov}")
    for h, t in targets.items():
        print(f"h={h}: ensemble/best single ({t['best_single']}) sMAPE ratio "
              f"{t['ratio_ensemble_over_best']:.4f} -> "
              f"{'MET' if t['ensemble_le_best_single'] else 'MISSED'}; coverage_80 "
              f"{result['coverage_80'][h]:.3f} -> "
              f"{'MET' if t['coverage_in_0.75_0.85'] else 'MISSED'}")
    ens_us, sm_us = us["ensemble"], sm_info["statsmodels_holt_winters"]["filter_us_per_obs"]
    print(f"update cost: our ensemble (6 members + intervals) {ens_us:.1f} us/obs, our holt_winters "
          f"{us['holt_winters']:.1f} us/obs; statsmodels HW fixed-parameter filter "
          f"{sm_us:.1f} us/obs (batch; it has no incremental update)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
