"""The five validation scenarios, run through the simulator and the real ScalingOptimizer.

Each scenario is a workload plus a starting point; every number in the report is computed
from the simulated run (nothing is typed in):

1. normal operations - steady load: is the allocation held near the target utilisation?
2. high load - a step up: when does it scale, from what to what, on which measured triggers?
3. predictive scaling - a ramp: is capacity added by the forecast before the reactive
   triggers, and how often do the forecast intervals cover what happened? (vs Ray's default)
4. low load - a step down: how far does it scale down, and does it oscillate?
5. cost optimisation - a real trace: cost against static peak provisioning, and the
   optimizer's decisions ranked by their estimated return on investment.

Replicas are single-server FIFO with exponential service (default 50 ms, i.e. 20 req/s at
100% busy); the SLO is p95 <= 400 ms; "ours" is OursPolicy (ForecastPolicy's path).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .arrivals import RateTrace
from .config import SimConfig
from .engine import run_events
from .fluid import run_fluid
from .plots import plot_compare, plot_run
from .policies import OursPolicy, StaticPolicy, ray_default
from .results import SimResult
from .runner import plan
from .service import ServiceModel


@dataclass
class Outcome:
    key: str
    title: str
    question: str
    setup: dict
    numbers: dict  # label -> computed value
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    results: list[SimResult] = field(default_factory=list)


def _ours(min_r: int, max_r: int, initial: int, cfg: SimConfig, serve_fields=None,
          **options) -> OursPolicy:
    return OursPolicy(min_r, max_r, scaling={"target_latency_ms": cfg.slo_ms,
                                             "lead_time_s": cfg.startup_s},
                      serve_fields={"initial_replicas": initial, **(serve_fields or {})},
                      keep_records=True, **options)


def _utilisation(result: SimResult, start_s: float = 0.0, end_s: float = math.inf) -> float:
    tl = result.timeline
    sel = (tl["t"] >= start_s) & (tl["t"] < end_s)
    cap = (tl["running"][sel] * tl["dt"][sel]).sum()
    return float((tl["busy_servers"][sel] * tl["dt"][sel]).sum() / cap) if cap else math.nan


def _window_stats(result: SimResult, start_s: float, end_s: float) -> dict:
    m = result.minutes
    t = m["minute"] * 60.0
    sel = (t >= start_s) & (t < end_s)
    return {"slo_violation_minutes": int(m["slo_violation"][sel].sum()),
            "worst_minute_p95_ms": float(m["p95_ms"][sel].max())}


def _records(policy: OursPolicy) -> pd.DataFrame:
    return pd.DataFrame(policy.records)


def _first(df: pd.DataFrame, mask) -> pd.Series | None:
    rows = df[mask]
    return None if rows.empty else rows.iloc[0]


def normal_operations(cfg: SimConfig, factor: float = 1.0) -> Outcome:
    per_replica = cfg.replica_rate * 0.7  # req/s one replica serves at the target utilisation
    rate, n0 = 5 * per_replica, 5
    duration = 1200 * factor
    policy = _ours(1, 20, n0, cfg)
    r = run_events(RateTrace.constant(rate, duration), policy, cfg)
    tl = r.timeline
    settled = tl["t"] >= min(120.0, duration / 4)
    numbers = {
        "offered load (req/s)": rate,
        "target utilisation": policy.scaling.target_utilisation,
        "measured utilisation (busy fraction)": _utilisation(r),
        "replicas: initial / min / max while settled": f"{n0} / {int(tl['running'][settled].min())}"
                                                      f" / {int(tl['running'][settled].max())}",
        "scaling events": r.summary["scaling_events"],
        "p95 latency (ms)": r.summary["p95_ms"],
        "SLO-violation minutes": r.summary["slo_violation_minutes"],
    }
    return Outcome("normal", "1. Normal operations",
                   "Steady load for 5 replicas at the target utilisation: is the allocation held?",
                   {"load": f"{rate:.0f} req/s constant", "duration_s": duration,
                    "start": f"{n0} replicas", "bounds": "1-20"}, numbers, results=[r])


def high_load(cfg: SimConfig, factor: float = 1.0) -> Outcome:
    per_replica = cfg.replica_rate * 0.7
    lo, hi, n0 = 5 * per_replica, 10 * per_replica, 5
    step_at, after = 300 * factor, 600 * factor
    policy = _ours(1, 20, n0, cfg)
    r = run_events(RateTrace.steps([lo, hi], [step_at, after]), policy, cfg)
    rec = _records(policy)
    ev = r.events
    serve_up = _first(ev, (ev["t"] >= step_at) & (ev["to"] > ev["from"]))  # Serve's target
    up = None if serve_up is None else _first(rec, rec["t"] >= serve_up["t"])
    tl = r.timeline
    covered = tl[(tl["t"] >= step_at) & (tl["running"] * cfg.replica_rate * 0.7 >= hi)]
    numbers = {
        "load step (req/s)": f"{lo:.0f} -> {hi:.0f} at t={step_at:.0f} s",
        "replicas before the step": int(tl["running"][tl["t"] < step_at].iloc[-1]),
        "replicas at the end": int(tl["running"].iloc[-1]),
        "max replicas": int(tl["running"].max()),
        "first scale-up after the step (s)":
            None if serve_up is None else float(serve_up["t"] - step_at),
        "first scale-up": None if serve_up is None else
        f"{int(serve_up['from'])} -> {int(serve_up['to'])} on {up['triggers'] or 'no trigger'}",
        "measured at that decision": None if up is None else
        f"utilisation {up['utilisation']:.2f}, p95 {up['p95_latency_ms']:.0f} ms, "
        f"rate {up['request_rate']:.1f} req/s, queue {up['queue_length']:.1f}",
        "time until serving capacity covers the load at target utilisation (s)":
            None if covered.empty else float(covered["t"].iloc[0] + covered["dt"].iloc[0]
                                              - step_at),
        **{f"after the step: {k}": v for k, v in _window_stats(r, step_at, math.inf).items()},
        "p95 latency over the run (ms)": r.summary["p95_ms"],
    }
    ups = rec[rec["desired"] > rec["previous_target"]][
        ["t", "previous_target", "desired", "triggers", "utilisation", "p95_latency_ms",
         "queue_length", "blocked_by"]]
    return Outcome("high_load", "2. High load",
                   "Load doubles: how fast and how far does it scale up, on which triggers?",
                   {"load": f"{lo:.0f} then {hi:.0f} req/s", "start": f"{n0} replicas",
                    "bounds": "1-20"}, numbers, [("scale-up decisions", ups)], results=[r])


def predictive(cfg: SimConfig, factor: float = 1.0) -> Outcome:
    per_replica = cfg.replica_rate * 0.7
    lo, hi = 4 * per_replica, 12 * per_replica
    flat, ramp, hold = 300 * factor, 600 * factor, 300 * factor
    trace = RateTrace.ramp(lo, hi, ramp, hold_before_s=flat, hold_after_s=hold)
    n0 = 4
    policy = _ours(1, 30, n0, cfg)
    ours = run_events(trace, policy, cfg)
    ray = run_events(trace, ray_default(1, 30, initial_replicas=n0), cfg)
    rec = _records(policy)
    ahead = rec[(rec["t"] >= flat) & (rec["desired"] > rec["previous_target"])
                & rec["predictive_need"].notna()
                & (rec["predictive_need"].fillna(0) > rec["reactive_need"])]
    reactive_up = _first(rec, (rec["t"] >= flat) & (rec["desired"] > rec["previous_target"])
                         & (rec["reactive_need"] > rec["previous_target"]))
    first_ahead = None if ahead.empty else ahead.iloc[0]
    coverage, n_cov = forecast_coverage(rec)
    numbers = {
        "ramp (req/s)": f"{lo:.0f} -> {hi:.0f} over {ramp:.0f} s from t={flat:.0f} s",
        "scale-ups where the forecast asked for more than the reactive rule":
            int(len(ahead)),
        "first forecast-led scale-up after ramp start (s)":
            None if first_ahead is None else float(first_ahead["t"] - flat),
        "first scale-up the reactive rule alone wanted, after ramp start (s)":
            None if reactive_up is None else float(reactive_up["t"] - flat),
        "forecast interval coverage (measured)": coverage,
        "forecasts scored": n_cov,
        "nominal coverage": float(rec["forecast_coverage"].dropna().iloc[0])
        if rec["forecast_coverage"].notna().any() else None,
        "ours: SLO-violation minutes": ours.summary["slo_violation_minutes"],
        "ray_default: SLO-violation minutes": ray.summary["slo_violation_minutes"],
        "ours: replica-seconds": ours.summary["replica_seconds"],
        "ray_default: replica-seconds": ray.summary["replica_seconds"],
        "ours: p95 (ms)": ours.summary["p95_ms"],
        "ray_default: p95 (ms)": ray.summary["p95_ms"],
    }
    table = ahead[["t", "previous_target", "desired", "reactive_need", "predictive_need",
                   "request_rate", "forecast_point", "forecast_upper"]].head(10)
    return Outcome("predictive", "3. Predictive scaling",
                   "A steady ramp: does the forecast add capacity before the reactive rule, "
                   "and are its intervals honest?",
                   {"load": f"ramp {lo:.0f} -> {hi:.0f} req/s", "start": f"{n0} replicas",
                    "bounds": "1-30", "lead time": f"{cfg.startup_s:g} s (= replica start-up)"},
                   numbers, [("forecast-led scale-ups (first 10)", table)], results=[ours, ray])


def forecast_coverage(rec: pd.DataFrame) -> tuple[float | None, int]:
    """Share of forecasts whose interval held the request rate observed h steps later."""
    has = rec["forecast_lower"].notna()
    if not has.any():
        return None, 0
    t = rec["t"].to_numpy()
    rate = rec["request_rate"].to_numpy()
    hits = total = 0
    for _, row in rec[has].iterrows():
        target_t = row["t"] + row["horizon_steps"] - 1  # forecast_step_s = 1 s
        j = np.searchsorted(t, target_t)
        if j >= len(t) or abs(t[j] - target_t) > 1.0:
            continue
        total += 1
        hits += row["forecast_lower"] <= rate[j] <= row["forecast_upper"]
    return (hits / total if total else None), total


def low_load(cfg: SimConfig, factor: float = 1.0) -> Outcome:
    per_replica = cfg.replica_rate * 0.7
    hi, lo, n0 = 10 * per_replica, 3.5 * per_replica, 10
    drop_at, after = 300 * factor, 900 * factor
    # Serve's downscale delay (300 s) shrinks with the scenario, so a short run still sees it
    policy = _ours(1, 20, n0, cfg, serve_fields={"downscale_delay_s": 300.0 * factor})
    r = run_events(RateTrace.steps([hi, lo], [drop_at, after]), policy, cfg)
    ev = r.events
    changes = ev[ev["t"] >= drop_at]
    deltas = np.sign((changes["to"] - changes["from"]).to_numpy())
    reversals = int((deltas[1:] != deltas[:-1]).sum()) if deltas.size > 1 else 0
    first_down = _first(changes, changes["to"] < changes["from"])
    tl = r.timeline
    numbers = {
        "load step (req/s)": f"{hi:.0f} -> {lo:.0f} at t={drop_at:.0f} s",
        "replicas before the drop": int(tl["running"][tl["t"] < drop_at].iloc[-1]),
        "replicas at the end": int(tl["running"].iloc[-1]),
        "first scale-down after the drop (s)":
            None if first_down is None else float(first_down["t"] - drop_at),
        "target changes after the drop": int(len(changes)),
        "direction reversals (oscillation)": reversals,
        "utilisation at the end (last 2 min)": _utilisation(r, tl["t"].iloc[-1] - 120),
        **{f"after the drop: {k}": v for k, v in _window_stats(r, drop_at, math.inf).items()},
    }
    return Outcome("low_load", "4. Low load",
                   "Load falls to a third: how far does it scale down, without oscillating?",
                   {"load": f"{hi:.0f} then {lo:.0f} req/s", "start": f"{n0} replicas",
                    "bounds": "1-20"}, numbers, [("scaling events", changes)], results=[r])


def cost_optimisation(cfg: SimConfig, trace: RateTrace, peak_replicas: int = 10,
                      poll_interval_s: float = 5.0) -> Outcome:
    p = plan(trace, cfg.replace(keep_requests=False), peak_replicas)
    policy = OursPolicy(p.min_replicas, p.max_replicas, scaling=p.ours_scaling(),
                        keep_records=True, poll_interval_s=poll_interval_s)
    ours = run_fluid(p.workload, policy, p.config)
    static = run_fluid(p.workload, StaticPolicy(p.peak_replicas, name="static_peak"), p.config)
    ray = run_fluid(p.workload, ray_default(p.min_replicas, p.max_replicas), p.config)
    rec = _records(policy)
    priced = rec[(rec["action"] != "hold") & rec["roi"].notna()].copy()
    ranked = priced.sort_values("roi", ascending=False)[
        ["t", "previous_target", "desired", "action", "roi", "verdict", "net", "cost",
         "benefit", "triggers"]]
    verdicts = priced["verdict"].value_counts().to_dict()
    saving = 1.0 - ours.summary["cost"] / static.summary["cost"]
    numbers = {
        "trace": f"{trace.name}, {trace.duration_s / 3600:.1f} h, scaled x{p.scale:.2f} "
                 f"(peak needs {p.peak_replicas} replicas)",
        "ours: cost": ours.summary["cost"],
        "static_peak: cost": static.summary["cost"],
        "ray_default: cost": ray.summary["cost"],
        "ours: saving vs static peak": saving,
        "ours: SLO-violation minutes": ours.summary["slo_violation_minutes"],
        "static_peak: SLO-violation minutes": static.summary["slo_violation_minutes"],
        "ray_default: SLO-violation minutes": ray.summary["slo_violation_minutes"],
        "ours: efficiency (served / capacity)": ours.summary["efficiency"],
        "static_peak: efficiency": static.summary["efficiency"],
        "priced target changes": int(len(priced)),
        "verdicts": ", ".join(f"{k}: {v}" for k, v in sorted(verdicts.items())) or "none",
        "price per replica-hour": cfg.price_per_replica_hour,
    }
    tables = [("target changes ranked by ROI (top 5)", ranked.head(5)),
              ("... and the 5 lowest", ranked.tail(5).iloc[::-1])]
    return Outcome("cost", "5. Cost optimisation",
                   "A real trace: what does ours cost against static peak provisioning, and "
                   "which decisions paid off?",
                   {"mode": "fluid (time-stepped)", "optimizer polled every":
                    f"{poll_interval_s:g} s", "bounds": f"{p.min_replicas}-{p.max_replicas}"},
                   numbers, tables, results=[ours, ray, static])


def default_cost_trace() -> RateTrace:
    """Six hours of the NASA trace's first day (06:00-12:00: the morning ramp to midday)."""
    return RateTrace.load("nasa").window(6 * 3600, 6 * 3600)


def build_outcomes(cfg: SimConfig, trace: RateTrace | None = None,
                   factor: float = 1.0) -> list[Outcome]:
    """Run the five scenarios (`factor` stretches or shrinks the synthetic ones)."""
    if not factor > 0:
        raise ValueError(f"factor must be > 0, got {factor!r}")
    return [normal_operations(cfg, factor), high_load(cfg, factor), predictive(cfg, factor),
            low_load(cfg, factor),
            cost_optimisation(cfg, trace if trace is not None else default_cost_trace())]


def run_scenarios(out_dir: str | Path, trace: RateTrace | None = None,
                  service: ServiceModel | None = None, factor: float = 1.0, seed: int = 0,
                  startup_s: float = 30.0) -> Path:
    """Run all five scenarios, write `report.md` and its plots into `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = SimConfig(service=service or ServiceModel.exponential(0.05), seed=seed,
                    startup_s=startup_s, keep_requests=False)
    outcomes = build_outcomes(cfg, trace, factor)
    return write_outcomes(outcomes, out, cfg)


def write_outcomes(outcomes: list[Outcome], out: Path, cfg: SimConfig) -> Path:
    """Plots and `report.md` for computed outcomes."""
    out.mkdir(parents=True, exist_ok=True)
    for o in outcomes:
        if len(o.results) == 1:
            o.plots.append(plot_run(o.results[0], out / f"scenario_{o.key}.png",
                                    title=o.title))
        else:
            o.plots.append(plot_compare(o.results, out / f"scenario_{o.key}.png", title=o.title))
    return write_report(outcomes, out / "report.md", cfg)


def _fmt(value, missing: str = "n/a (did not happen)") -> str:
    if value is None:
        return missing
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{int(value):,}"
    if isinstance(value, float | np.floating):
        v = float(value)
        if math.isnan(v):
            return missing
        if not math.isfinite(v):
            return str(v)
        if abs(v) >= 100:
            return f"{v:,.0f}"
        return f"{v:.3g}"
    return str(value)


def _markdown_table(df: pd.DataFrame, max_rows: int = 12) -> str:
    if df.empty:
        return "_(none)_\n"
    df = df.head(max_rows)
    lines = ["| " + " | ".join(str(c) for c in df.columns) + " |",
             "|" + "---|" * len(df.columns)]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(_fmt(v, "-") if not isinstance(v, str) else (v or "-")
                                       for v in row.to_list()) + " |")
    return "\n".join(lines) + "\n"


def write_report(outcomes: list[Outcome], path: Path, cfg: SimConfig) -> Path:
    lines = ["# Capacity-planning scenarios", "",
             "Generated by `echo-ray scenarios`. Every number below is computed from the "
             "simulated runs; the scaling decisions come from the real `ScalingOptimizer` "
             "(ForecastPolicy's path) and Ray Serve's own policy code.", "",
             f"Replica model: {cfg.service.describe()}, {cfg.concurrency} at a time, "
             f"max_ongoing_requests {cfg.max_ongoing_requests}, router {cfg.routing}, "
             f"start-up {cfg.startup_s:g} s, SLO p95 <= {cfg.slo_ms:g} ms, seed {cfg.seed}.",
             ""]
    for o in outcomes:
        lines += [f"## {o.title}", "", o.question, "",
                  "Setup: " + "; ".join(f"{k}: {_fmt(v)}" for k, v in o.setup.items()), "",
                  "| measure | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in o.numbers.items()]
        lines.append("")
        for title, df in o.tables:
            lines += [f"**{title}**", "", _markdown_table(df)]
        for plot in o.plots:
            lines += [f"![{o.title}]({plot.name})", ""]
    path.write_text("\n".join(lines))
    return path
