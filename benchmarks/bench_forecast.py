"""Our online forecasters vs naive and statsmodels, same protocol for all, on real and synthetic traces.

    python benchmarks/bench_forecast.py --json benchmarks/out/forecast.json   # NASA + suite
    python benchmarks/bench_forecast.py --suite            # the synthetic families only
    python benchmarks/bench_forecast.py --trace counts.csv --test-days 0.25 [--period 60]

Default trace: NASA Kennedy Space Center HTTP requests per minute, Jul-Aug 1995
(`data/traces/nasa_http_1995_per_minute.csv`). The suite: one seeded trace of each family in
`echo_ray.autoscaling.synthetic` (daily+weekly, timer bursts, bursty with zero runs, level
shifts and outages, trend ramps), each with the test span its generator suggests.

Protocol, identical for every model and trace:
- Split: the last `--test-days` days (1440 samples a day) are the test set; the `--train-days`
  before them are training (everything older is dropped, which keeps statsmodels' fits cheap).
- Season: `--period`, default detected on the training part only (autocorrelation at the hourly,
  daily and weekly lags after detrending; none when no lag is significant).
- Fit on training only, minimising one-step-ahead squared error: SES, damped Holt and
  Holt-Winters by L-BFGS-B from the best points of a coarse grid (`fitting.fit_smoothing`;
  Holt-Winters from the heuristic initial state of the training data, like statsmodels'),
  moving-average and linear-trend windows by grid; statsmodels by its own optimiser (heuristic
  initial states). statsmodels' seasonal model uses the same detected period (damped Holt when
  there is none).
- Test: online with frozen parameters. Each test minute is scored against the 1-step forecast
  made one minute earlier and the 5-step forecast made five minutes earlier, from a model that
  has seen exactly the data up to its origin. statsmodels' fitted parameters and initial states
  are re-run over the whole series with `optimized=False` (its own filter, no refit) and its
  h-step forecasts built from its states at each origin (checked against its own `forecast`).
- Scores: MAE and MASE (MAE over the in-sample MAE of seasonal naive at the detected period,
  naive when none) are primary; sMAPE beside (it scores a small forecast for a zero minute as
  200%). Interval: the ensemble's 80% interval from its own recent h-step errors, with the
  quantile levels calibrated online; coverage is measured on the test span.
- Targets: ensemble MAE <= 1.02 x the best single model's (ours and statsmodels') at h=1 and
  h=5, and ensemble 80% coverage in [0.75, 0.85], on every trace.
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
    SeasonalNaive,
    SimpleExponentialSmoothing,
)
from echo_ray.autoscaling.fitting import fit_smoothing, grid_search
from echo_ray.autoscaling.metrics import coverage, mae, mase, smape
from echo_ray.autoscaling.season import detect_period, season_scores
from echo_ray.autoscaling.synthetic import FAMILIES, generate
from echo_ray.autoscaling.trace import NASA_TRACE, load_request_trace, traces_dir

HORIZONS = (1, 5)
H = max(HORIZONS)
INTERVAL_WINDOW = 500  # residuals behind each interval
MAE_RATIO_TARGET = 1.02
COVERAGE_TARGET = (0.75, 0.85)
WINDOW_FIT_SPAN = 7 * 1440  # moving-average / linear windows are chosen on the last week
GRIDS = {"moving_average": (MovingAverage, {"window": [2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 60]}),
         "linear": (LinearTrend, {"window": [10, 15, 20, 30, 45, 60, 90, 120, 180, 240]})}


def fit_ours(train: np.ndarray, period: int | None, log) -> tuple[dict, dict, tuple | None]:
    fitted, cost, initial = {}, {}, None
    for name, (factory, grid) in GRIDS.items():
        t = time.perf_counter()
        best, table = grid_search(factory, grid, train[-WINDOW_FIT_SPAN:])
        fitted[name], cost[name] = best, time.perf_counter() - t
        log(f"  fit {name:15s} {best}  ({len(table)} candidates, {cost[name]:.1f}s)")
    kinds = ["ses", "holt"] + (["holt_winters"] if period else [])
    for kind in kinds:
        t = time.perf_counter()
        # Holt-Winters starts from the heuristic initial state of the training data, as
        # statsmodels' does (not from an online warm-up): both are batch fits here.
        fit = fit_smoothing(kind, train, period=period, known_start=True)
        fitted[kind], cost[kind] = fit.params, time.perf_counter() - t
        if fit.initial_state is not None:
            initial = fit.initial_state
        log(f"  fit {kind:15s} {fit.params}  ({fit.evaluations} evaluations, {cost[kind]:.1f}s)")
    return fitted, cost, initial


def build_ours(fitted: dict, period: int | None, initial: tuple | None) -> list:
    # Members' own intervals are not used inside the ensemble: they skip calibration.
    kw = {"max_horizon": H, "interval_window": INTERVAL_WINDOW, "adapt_rate": 0.0}
    models = [Naive(**kw)]
    if period and period >= H:
        models.append(SeasonalNaive(period=period, **kw))
    models += [MovingAverage(**fitted["moving_average"], **kw),
               LinearTrend(**fitted["linear"], **kw),
               SimpleExponentialSmoothing(**fitted["ses"], **kw), Holt(**fitted["holt"], **kw)]
    if period:
        models.append(HoltWinters(**fitted["holt_winters"], **kw,
                                  initial_state=initial))
    return models


def run_ours(y: np.ndarray, start: int, fitted: dict, period: int | None,
             initial: tuple | None) -> tuple[dict, dict]:
    """Online pass over the whole series; record forecasts whose target is in the test set.

    The single models are the ensemble's members (each fed every observation once, so their
    forecasts are the same as standalone ones); the interval is the ensemble's."""
    ens = Ensemble(build_ours(fitted, period, initial), max_horizon=H,
                   interval_window=INTERVAL_WINDOW)
    T = len(y) - start
    points = {m.name: {h: np.zeros(T) for h in HORIZONS} for m in ens.members}
    interval = {h: np.zeros((3, T)) for h in HORIZONS}
    spent = 0.0
    first_origin = start - H
    for i, v in enumerate(y.tolist()):
        t = time.perf_counter()
        ens.update(v)
        spent += time.perf_counter() - t
        if i < first_origin:
            continue
        for h in HORIZONS:
            target = i + h - start
            if 0 <= target < T:
                for m in ens.members:
                    points[m.name][h][target] = m.point(h)
                f = ens.forecast(h)
                interval[h][:, target] = (f.point, f.lower, f.upper)
    points["ensemble"] = {h: interval[h][0] for h in HORIZONS}
    return points, {"interval": interval, "ensemble_update_us": 1e6 * spent / len(y),
                    "choice": {str(h): ens.choice(h) for h in HORIZONS}}


def run_statsmodels(y: np.ndarray, start: int, period: int | None,
                    log) -> tuple[dict, dict, dict]:
    from statsmodels.tsa.holtwinters import ExponentialSmoothing, SimpleExpSmoothing

    train = y[:start]
    seasonal = {"seasonal": "add", "seasonal_periods": period} if period else {}
    hw_kw = {"trend": "add", "damped_trend": True, **seasonal}
    hw_name = "statsmodels_holt_winters" if period else "statsmodels_holt"
    info, checks, preds = {}, {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning chatter; results are checked below
        t = time.perf_counter()
        ses = SimpleExpSmoothing(train, initialization_method="heuristic").fit()
        p = ses.params
        info["statsmodels_ses"] = {"alpha": float(p["smoothing_level"]),
                                   "fit_s": time.perf_counter() - t}
        log(f"  fit statsmodels_ses {info['statsmodels_ses']}")

        def ses_fixed(data):
            return SimpleExpSmoothing(data, initialization_method="known",
                                      initial_level=p["initial_level"]).fit(
                smoothing_level=p["smoothing_level"], optimized=False)

        level = ses_fixed(y).level
        preds["statsmodels_ses"] = {h: level[start - h: len(y) - h] for h in HORIZONS}

        t = time.perf_counter()
        hw = ExponentialSmoothing(train, initialization_method="heuristic", **hw_kw).fit()
        q = hw.params
        info[hw_name] = {
            "alpha": float(q["smoothing_level"]), "beta": float(q["smoothing_trend"]),
            "phi": float(q["damping_trend"]), "fit_s": time.perf_counter() - t}
        if period:
            info[hw_name].update(period=period, gamma=float(q["smoothing_seasonal"]))
        log(f"  fit {hw_name} {info[hw_name]}")

        def hw_fixed(data):
            known = {"initial_level": q["initial_level"], "initial_trend": q["initial_trend"]}
            fixed = {"smoothing_level": q["smoothing_level"],
                     "smoothing_trend": q["smoothing_trend"],
                     "damping_trend": q["damping_trend"]}
            if period:
                known["initial_seasonal"] = q["initial_seasons"]
                fixed["smoothing_seasonal"] = q["smoothing_seasonal"]
            return ExponentialSmoothing(data, initialization_method="known", **known,
                                        **hw_kw).fit(optimized=False, **fixed)

        t = time.perf_counter()
        full = hw_fixed(y)
        info[hw_name]["filter_us_per_obs"] = 1e6 * (time.perf_counter() - t) / len(y)
        phi = float(q["damping_trend"])
        season = (np.concatenate([np.asarray(q["initial_seasons"]), full.season]) if period
                  else None)

        def hw_forecast(origins, h):  # state at origin -> forecast of origin + h (h <= period)
            damp = sum(phi ** i for i in range(1, h + 1))
            out = full.level[origins] + damp * full.trend[origins]
            return out + season[origins + h] if period else out

        preds[hw_name] = {h: hw_forecast(np.arange(start - h, len(y) - h), h) for h in HORIZONS}
        # The filtered states must reproduce statsmodels' own forecasts and its training fit.
        checks["hw_train_states_match_fit"] = bool(np.allclose(full.level[:start], hw.level))
        for origin in (start + min(100, (len(y) - start) // 2), len(y) - 1 - H):
            own = hw_fixed(y[: origin + 1]).forecast(H)
            ours = [hw_forecast(np.array([origin]), h)[0] for h in range(1, H + 1)]
            checks[f"hw_forecast_matches_at_{origin}"] = bool(np.allclose(own, ours))
            own_ses = ses_fixed(y[: origin + 1]).forecast(H)
            checks[f"ses_forecast_matches_at_{origin}"] = bool(
                np.allclose(own_ses, level[origin]))
    return preds, info, checks


def _mase(actual, predicted, train, period) -> float | None:
    try:
        return mase(actual, predicted, train, period)
    except ValueError:  # constant training data at the seasonal lag: no scale
        return None


def evaluate(y: np.ndarray, test: int, period, label: str, quiet: bool = False) -> dict:
    """Fit, run and score every model on `y` with the last `test` samples as the test set.
    `period`: an int, None for no season, or "auto" to detect it on the training part."""
    log = (lambda s: None) if quiet else (lambda s: print(s, flush=True))
    start = len(y) - test
    train = y[:start]
    scores = season_scores(train)
    if period == "auto":
        period = detect_period(train)
    log(f"{label}: {len(y)} samples; train {start}, test {test}; season "
        f"{period or 'none'} (seasonal acf {', '.join(f'{m}: {r:.3f}' for m, r in scores.items())})")
    t0 = time.perf_counter()
    fitted, fit_cost, initial = fit_ours(train, period, log)
    t1 = time.perf_counter()
    ours, extra = run_ours(y, start, fitted, period, initial)
    run_s = time.perf_counter() - t1
    log(f"  online pass over {len(y)} samples: {run_s:.1f}s")
    sm_preds, sm_info, checks = run_statsmodels(y, start, period, log)
    if not all(checks.values()):
        print(f"WARNING: statsmodels state reconstruction checks failed: {checks}")

    actual = y[start:]
    names = [*ours, *sm_preds]
    point = {n: ours[n] if n in ours else sm_preds[n] for n in names}
    scale_period = period if period and period < start else None
    res = {"mae": {}, "mase": {}, "smape": {}, "coverage_80": {}}
    for h in HORIZONS:
        k = str(h)
        res["mae"][k] = {n: mae(actual, point[n][h]) for n in names}
        res["mase"][k] = {n: _mase(actual, point[n][h], train, scale_period) for n in names}
        res["smape"][k] = {n: smape(actual, point[n][h]) for n in names}
        band = extra["interval"][h]
        res["coverage_80"][k] = coverage(actual, band[1], band[2])
    targets = {}
    for h in map(str, HORIZONS):
        singles = {n: v for n, v in res["mae"][h].items() if n != "ensemble"}
        best = min(singles, key=singles.get)
        ratio = res["mae"][h]["ensemble"] / singles[best] if singles[best] > 0 else 1.0
        cov = res["coverage_80"][h]
        targets[h] = {"best_single": best, "best_single_mae": singles[best],
                      "ensemble_mae": res["mae"][h]["ensemble"], "ratio": ratio,
                      "mae_met": ratio <= MAE_RATIO_TARGET, "coverage": cov,
                      "coverage_met": COVERAGE_TARGET[0] <= cov <= COVERAGE_TARGET[1]}
    res.update({
        "targets": targets,
        "met": all(t["mae_met"] and t["coverage_met"] for t in targets.values()),
        "params": {"ours": fitted, "statsmodels": sm_info, "interval_window": INTERVAL_WINDOW},
        "timing": {"our_fit_s": t1 - t0, "our_fit_s_by_model": fit_cost,
                   "our_online_pass_s": run_s,
                   "ensemble_update_us": extra["ensemble_update_us"]},
        "ensemble_choice_at_end": extra["choice"],
        "checks": checks,
        "trace": {"label": label, "samples": len(y), "train": start, "test": test,
                  "period": period, "seasonal_acf": {str(m): r for m, r in scores.items()},
                  "scale_period": scale_period},
    })
    return res


def print_table(res: dict) -> None:
    cols = "".join(f"  MAE h={h}  MASE h={h} sMAPE h={h}" for h in HORIZONS)
    print(f"\n{'model':26s}{cols}")
    for n in res["mae"]["1"]:
        row = "".join(f"  {res['mae'][str(h)][n]:8.3f} {_num(res['mase'][str(h)][n])}"
                      f" {res['smape'][str(h)][n]:9.2f}%" for h in HORIZONS)
        print(f"{n:26s}{row}")
    for h, t in res["targets"].items():
        print(f"h={h}: ensemble MAE / best single ({t['best_single']}) {t['ratio']:.4f} "
              f"(target <= {MAE_RATIO_TARGET}) -> {'met' if t['mae_met'] else 'NOT MET'}; "
              f"coverage_80 {t['coverage']:.3f} (target {COVERAGE_TARGET[0]}-"
              f"{COVERAGE_TARGET[1]}) -> {'met' if t['coverage_met'] else 'NOT MET'}")
    print(f"ensemble update: {res['timing']['ensemble_update_us']:.1f} us/obs (all members, "
          f"selection, calibrated interval); following at the end: "
          f"{res['ensemble_choice_at_end']}")


def _num(v) -> str:
    return f"{'-':>8s}" if v is None else f"{v:8.3f}"


def run_suite(seed: int, quiet: bool) -> dict:
    out = {}
    for family in FAMILIES:
        tr = generate(family, seed=seed)
        t = time.perf_counter()
        res = evaluate(tr.counts, tr.test, "auto", f"suite {family} (seed {seed})", quiet=quiet)
        res["trace"].update(family=family, seed=seed, generated_period=tr.period,
                            seconds=time.perf_counter() - t)
        out[family] = res
        if not quiet:
            print_table(res)
            print()
    return out


def print_suite(suite: dict) -> None:
    print(f"\n{'family':16s} {'period gen/det':>15s}  {'h':>2s}  {'best single':26s} "
          f"{'its MAE':>9s} {'ens MAE':>9s} {'ratio':>7s}  {'cov80':>6s}  target")
    for family, res in suite.items():
        tr = res["trace"]
        per = f"{tr['generated_period'] or '-'}/{tr['period'] or '-'}"
        for h, t in res["targets"].items():
            met = "met" if t["mae_met"] and t["coverage_met"] else "NOT MET"
            print(f"{family:16s} {per:>15s}  {h:>2s}  {t['best_single']:26s} "
                  f"{t['best_single_mae']:9.3f} {t['ensemble_mae']:9.3f} {t['ratio']:7.4f}  "
                  f"{t['coverage']:6.3f}  {met}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trace", type=Path, default=None,
                    help="minute,requests CSV or one count per line (default: NASA 1995)")
    ap.add_argument("--suite", action="store_true",
                    help="run the synthetic families (alone, or after --trace)")
    ap.add_argument("--json", type=Path, default=None, help="write results here")
    ap.add_argument("--period", default="auto",
                    help="season length in samples, 'none', or 'auto' (detect; default)")
    ap.add_argument("--test-days", type=float, default=7.0,
                    help="test span, in days of 1440 samples")
    ap.add_argument("--train-days", type=float, default=14.0,
                    help="training span before the test span, in days (at most)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the synthetic suite")
    args = ap.parse_args(argv)
    if args.period in ("auto", "none"):
        period = args.period if args.period == "auto" else None
    else:
        try:
            period = int(args.period)
        except ValueError:
            sys.exit(f"--period must be an integer >= 2, 'auto' or 'none', got {args.period!r}")
        if period < 2:
            sys.exit(f"--period must be an integer >= 2, 'auto' or 'none', got {args.period!r}")

    result, ok = {}, True
    run_trace = args.trace is not None or not args.suite
    if run_trace:
        path = args.trace or traces_dir() / NASA_TRACE
        if not path.is_file():
            sys.exit(f"trace {path} not found: pass --trace PATH")
        y = load_request_trace(path)
        test = int(round(args.test_days * 1440))
        train = min(len(y) - test, int(round(args.train_days * 1440)))
        need = 3 * period if isinstance(period, int) else 3 * H
        if test < 1 or train < max(need, 2 * H):
            sys.exit(f"trace has {len(y)} samples: need test ({test}) + at least "
                     f"{max(need, 2 * H)} samples of training")
        res = evaluate(y[len(y) - test - train:], test, period, f"trace {path}")
        res["trace"]["path"] = str(path)
        print_table(res)
        result["trace"] = res
        ok &= res["met"]
    if args.suite or args.trace is None:
        print("\nsynthetic suite (echo_ray.autoscaling.synthetic, seed "
              f"{args.seed}): every family, season detected, same protocol", flush=True)
        suite = run_suite(args.seed, quiet=False)
        print_suite(suite)
        result["suite"] = suite
        ok &= all(r["met"] for r in suite.values())
    print(f"\nall targets: {'met' if ok else 'NOT MET'}")
    result["all_targets_met"] = ok
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=float))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
