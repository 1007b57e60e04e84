"""Autoscaling policies on a real trace: ours vs Ray Serve's default vs static provisioning.

    python benchmarks/bench_autoscaling.py --json OUT [--trace PATH] [--days 7] [--skip-live]
    python benchmarks/bench_autoscaling.py --live-only --json OUT  # live vs simulated only
    python benchmarks/bench_autoscaling.py --families-only --json OUT  # item 4 on the families

1. policies: the NASA trace (or `--trace`: a `minute,requests` CSV or one count per line at
   `--bin-seconds`, or `family:NAME`, a synthetic family from `--seed`), `--days` days from `--start-day`, scaled so its peak needs
   `--peak-replicas` (40) replicas to keep p95 <= `--slo-ms` (400 ms); replicas start in
   `--startup-s` (30 s), serve one request at a time for an exponential `--service` time
   (50 ms), max_ongoing_requests 5 (Serve's default), power-of-two routing. Four policies on
   the same workload: ours (ForecastPolicy's path through the real ScalingOptimizer), Ray's
   default (`replica_queue_length_autoscaling_policy` with Ray 2.60's default
   AutoscalingConfig, only min/max set, both through Ray's own code on the simulated clock),
   static_peak and static_mean. Fluid (time-stepped) mode: a week is ~10^8 requests.
2. validation: the fluid mode against the exact event-driven mode, every policy, on
   `--validation-hours` of the same trace around its peak, scaled to a 10-replica peak
   (run while a forked child simulates ours' week, the slowest part).
3. sim_speed: 24 h of a closed population of 10,000 users with 5 s mean think time
   (~2,000 req/s) and up to 200 replicas, fluid mode, ours deciding every 1 s tick; plus
   the decision time per tick of ours with the optimizer's cost-benefit pricing (the
   production path) and of Ray's default.
4. tuned baselines: Ray's default policy swept over target_ongoing_requests x upscale_delay_s
   x downscale_delay_s (`echo_ray.sim.frontier`), plus ours and its reactive-only variant, on
   the first `--sweep-days` days of the same sized workload (fluid mode, `--sweep-workers`
   processes); the cost/SLO Pareto frontier, the best config (lowest priced total at the
   scaling settings' prices), ours against it with the targets, and the best config over
   the whole run as `ray_tuned` (in the policies, the plot and docs/capacity.png). Then the
   same on each synthetic family (`--families`, all five by default, `--family-days` each,
   sized the same way; `--families-only`: just them, `--skip-families`: not them), which no
   policy here was tuned on: their entries join the trace's in `best_baseline`,
   `vs_best_baseline` and `scaling_events` (per family: ours, ours_reactive, best_baseline),
   their sweeps are in `families`.
5. ROI veto: ours with the production path's pricing, with and without `roi_veto`, on the
   busiest `--veto-hours` of the same workload: what the veto saves (replica-hours) and
   costs (violation minutes), priced at the scaling settings' prices (`--veto-only`: just it).
6. live vs simulated (`echo_ray.sim.validate`): the `--live-segments` busiest
   `--live-minutes`-long segments, compressed `--live-speedup` times and scaled so their peak
   needs `--live-peak-replicas`, replayed open loop against a local Serve app
   (`echo_ray.sim.live.SimulatedWork`: replicas that sleep an exponential `--live-service-ms`
   per request, one at a time, so capacity grows with replicas on two cores) under
   ray_default (untouched), ray_tuned (the sweep's best config) and ours, from one replica;
   then the event simulator on the same input (arrivals, service, bounds, Serve config,
   Serve's 0.1 s control loop, the handle's metric timers and the start-up measured live);
   per trace minute, replicas within +-1 and SLO-violation minutes (`--live-slo-ms`) live
   vs simulated: the agreement table, `live_agreement` in the JSON. `--live-only`: just
   this; `--live-from DIR`: the simulator side on live runs saved in DIR.

Every run is seeded; ratios are ours / ray_default on the same workload.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from echo_ray.autoscaling.synthetic import FAMILIES
from echo_ray.ops.localcluster import free_port
from echo_ray.sim import (
    ClosedPopulation,
    OursPolicy,
    RateTrace,
    ServiceModel,
    SimConfig,
    plan,
    ray_default,
    run_fluid,
    simulate,
)
from echo_ray.sim import frontier as fr
from echo_ray.sim.arrivals import resolve_trace_path
from echo_ray.sim.plots import plot_compare, plot_frontier
from echo_ray.sim.results import SimResult
from echo_ray.sim.runner import POLICIES, Plan, make_policy, rate_limit

FAMILY = "family:"  # --trace family:NAME, a family of echo_ray.autoscaling.synthetic
HEADLINE = ("slo_violation_minutes", "replica_seconds", "dropped", "p99_ms")
DETAIL = HEADLINE + ("p95_ms", "p50_ms", "cost", "efficiency", "mean_replicas", "max_replicas",
                     "scaling_events", "decision_ms", "arrivals", "wall_s")


def _pick(summary: dict, keys=DETAIL) -> dict:
    out = {}
    for k in keys:
        v = summary.get(k)
        if isinstance(v, float | np.floating):
            v = float(v)
            v = None if math.isnan(v) else (round(v, 4) if math.isfinite(v) else str(v))
        out[k] = v
    return out


def _ratio(a, b):
    return None if a is None or b in (None, 0) else round(a / b, 4)


def load_trace(spec: str, bin_seconds: float, seed: int, start_day: float,
               days: float) -> RateTrace:
    """`days` days from `start_day` of a trace file, "nasa" or "family:NAME" (a synthetic
    family generated from `seed`, per minute), unscaled: `plan` sizes every one the same way."""
    try:
        if spec.startswith(FAMILY):
            trace = RateTrace.synthetic(spec[len(FAMILY):], seed, start_day + days)
        else:
            trace = RateTrace.load(resolve_trace_path(spec), bin_seconds)
    except ValueError as exc:
        sys.exit(f"bench_autoscaling: {exc}")
    start = start_day * 86400.0
    if start >= trace.duration_s:
        sys.exit(f"bench_autoscaling: --start-day {start_day} is past the trace's end")
    return trace.window(start, days * 86400.0)


def sim_config(args, **changes) -> SimConfig:
    return SimConfig(service=ServiceModel.parse(args.service), slo_ms=args.slo_ms,
                     startup_s=args.startup_s, max_ongoing_requests=args.max_ongoing,
                     routing=args.routing, seed=args.seed, tick_s=args.tick_s,
                     keep_requests=False).replace(**changes)


# ------------------------------------------------------------------------------ policies
def _run_to_files(p, name: str, out_dir: Path) -> None:
    """Child process: simulate one policy, leave its minutes (CSV) and summary (JSON)."""
    r = simulate(p, name, "fluid")
    r.minutes.to_csv(out_dir / f"autoscaling_{name}_minutes.csv", index=False)
    (out_dir / f"autoscaling_{name}_summary.json").write_text(json.dumps(
        {"summary": r.summary, "policy": r.setup["policy"]}, default=str))


def _read_files(name: str, out_dir: Path) -> SimResult:
    doc = json.loads((out_dir / f"autoscaling_{name}_summary.json").read_text())
    minutes = pd.read_csv(out_dir / f"autoscaling_{name}_minutes.csv")
    return SimResult(name, "fluid", doc["summary"], minutes, pd.DataFrame(), pd.DataFrame(),
                     setup={"policy": doc["policy"]})


def _policy_line(r: SimResult) -> str:
    s = r.summary
    return (f"   {r.policy:<12} SLO-violation min {s['slo_violation_minutes']:>6}  replica-s "
            f"{s['replica_seconds']:>12,.0f}  dropped {s['dropped']:>10,.0f}  p99 "
            f"{s['p99_ms']:>9,.0f} ms  ({s['wall_s']:.0f} s)")


def bench_policies(args, trace: RateTrace, out_dir: Path, while_waiting=None):
    """The four policies; ours (the slow one) in a forked child while the parent runs the
    others and then `while_waiting()` (the validation), so two cores are both used."""
    cfg = sim_config(args)
    p = plan(trace, cfg, args.peak_replicas, ours_options={"price_decisions": False})
    print(f"\n== policies: {trace.name}, {trace.duration_s / 86400:.1f} days x{p.scale:.1f} "
          f"(peak {p.workload.peak_rate:.0f} req/s needs {p.peak_replicas} replicas, mean "
          f"{p.workload.mean_rate:.0f} req/s needs {p.mean_replicas}); bounds "
          f"{p.min_replicas}-{p.max_replicas}; {cfg.service.describe()}; fluid mode ==")
    child = mp.get_context("fork").Process(target=_run_to_files, args=(p, "ours", out_dir))
    child.start()
    by_name = {}
    for name in POLICIES[1:]:
        by_name[name] = r = simulate(p, name, "fluid")
        r.minutes.to_csv(out_dir / f"autoscaling_{name}_minutes.csv", index=False)
        print(_policy_line(r))
    extra = while_waiting() if while_waiting else None
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"simulating ours failed (exit code {child.exitcode})")
    by_name["ours"] = _read_files("ours", out_dir)
    print(_policy_line(by_name["ours"]))
    results = [by_name[n] for n in POLICIES]
    out = {r.policy: _pick(r.summary) for r in results}
    out["_plan"] = p
    setup = {**p.describe(), "service": cfg.service.describe(), "slo_ms": cfg.slo_ms,
             "startup_s": cfg.startup_s, "max_ongoing_requests": cfg.max_ongoing_requests,
             "routing": cfg.routing, "tick_s": cfg.tick_s, "seed": cfg.seed,
             "timeout_s": cfg.timeout_s, "mode": "fluid",
             "policies": {r.policy: r.setup["policy"] for r in results}}
    return out, setup, results, extra


def bench_validation(args, trace: RateTrace) -> dict:
    """Fluid vs event on a smaller case: `--validation-hours` around the peak, 10-replica peak."""
    hours = args.validation_hours
    peak_t = float(np.argmax(trace.rates)) * trace.bin_seconds
    start = max(0.0, min(peak_t - hours * 1800.0, trace.duration_s - hours * 3600.0))
    window = trace.window(start, hours * 3600.0)
    p = plan(window, sim_config(args), 10, ours_options={"price_decisions": False})
    print(f"\n== validation: fluid vs event, {hours:g} h from t={start / 3600:.1f} h, peak "
          f"needs 10 replicas ({window.expected_requests() * p.scale:,.0f} requests) ==")
    out = {"window_start_s": start, "hours": hours, "scale": p.scale}
    for name in POLICIES:
        ev, fl = simulate(p, name, "event"), simulate(p, name, "fluid")
        row = {}
        for key in ("p95_ms", "replica_seconds", "slo_violation_minutes", "p99_ms"):
            e, f = ev.summary[key], fl.summary[key]
            row[key] = {"event": round(float(e), 3), "fluid": round(float(f), 3),
                        "rel_diff": None if not e else round((f - e) / e, 4)}
        row["event_wall_s"] = round(ev.summary["wall_s"], 2)
        row["fluid_wall_s"] = round(fl.summary["wall_s"], 2)
        out[name] = row
        print(f"   {name:<12} p95 event {row['p95_ms']['event']:>9,.1f} fluid "
              f"{row['p95_ms']['fluid']:>9,.1f} ({row['p95_ms']['rel_diff']:+.1%})   replica-s "
              f"event {row['replica_seconds']['event']:>9,.0f} fluid "
              f"{row['replica_seconds']['fluid']:>9,.0f} "
              f"({row['replica_seconds']['rel_diff']:+.1%})")
    return out


def bench_sim_speed(args) -> dict:
    users, hours = args.users, args.speed_hours
    cfg = sim_config(args)
    pop = ClosedPopulation(users, args.think_s, hours * 3600.0)
    bounds = (1, args.speed_max_replicas)
    scaling = {"target_latency_ms": cfg.slo_ms, "lead_time_s": cfg.startup_s}
    print(f"\n== sim_speed: {hours:g} h, {users:,} users, {args.think_s:g} s think time, up to "
          f"{bounds[1]} replicas, fluid mode ==")
    ours = OursPolicy(*bounds, scaling=scaling, price_decisions=False)
    r = run_fluid(pop, ours, cfg)
    served_rps = r.summary["served"] / r.summary["duration_s"]
    out = {"wall_s": round(r.summary["wall_s"], 2), "decision_ms": round(ours.decision_ms, 4),
           "optimizer_ms": round(ours.optimizer_ms, 4), "ticks": ours.decisions,
           "simulated_hours": hours, "users": users, "think_s": args.think_s,
           "served_rps": round(served_rps, 1), "max_replicas": r.summary["max_replicas"],
           "p95_ms": round(r.summary["p95_ms"], 1),
           "note": "ours without the cost-benefit pricing (same targets); priced below"}
    print(f"   simulated {hours:g} h in {r.summary['wall_s']:.1f} s wall (target <= 60 s); "
          f"{served_rps:,.0f} req/s served, max {r.summary['max_replicas']} replicas; ours "
          f"decide() {ours.decision_ms:.3f} ms/tick (optimizer step {ours.optimizer_ms:.3f} ms)")
    # The production path prices every decision (cost-benefit with Erlang C): time it on the
    # first `--priced-minutes` of the same workload, and Ray's default on the same.
    short = ClosedPopulation(users, args.think_s, args.priced_minutes * 60.0)
    priced = OursPolicy(*bounds, scaling=scaling, price_decisions=True)
    run_fluid(short, priced, cfg)
    ray = ray_default(*bounds)
    run_fluid(short, ray, cfg)
    out.update(decision_ms_priced=round(priced.decision_ms, 4),
               optimizer_ms_priced=round(priced.optimizer_ms, 4),
               decision_ms_ray_default=round(ray.decision_ms, 4),
               priced_ticks=priced.decisions)
    print(f"   with pricing (production path): {priced.decision_ms:.3f} ms/tick (optimizer "
          f"{priced.optimizer_ms:.3f} ms) over {priced.decisions} ticks; ray_default "
          f"{ray.decision_ms:.3f} ms/tick (target <= 1 ms)")
    return out


# ------------------------------------------------------------------------- tuned baselines
_SWEEP_PLAN: Plan | None = None  # set before the worker processes fork


def _sweep_one(job: tuple[str, dict | None]) -> dict:
    """Worker: one policy (a name, or Ray's default with `config`) on the sweep plan."""
    name, config = job
    p = _SWEEP_PLAN
    policy = name if config is None else ray_default(p.min_replicas, p.max_replicas, **config)
    s = simulate(p, policy, "fluid").summary
    return {"name": name, "config": config, "replica_seconds": float(s["replica_seconds"]),
            "slo_violation_minutes": int(s["slo_violation_minutes"]),
            "scaling_events": int(s["scaling_events"]), "wall_s": round(s["wall_s"], 1)}


def _point(row: dict) -> fr.Point:
    return fr.Point(row["name"], row["replica_seconds"] / 3600.0, row["slo_violation_minutes"],
                    row["config"], row["scaling_events"])


def bench_sweep(args, p: Plan, out_dir: Path, days: float | None = None) -> dict:
    """Sweep Ray's default policy on the first `days` (`--sweep-days`) of the sized workload."""
    global _SWEEP_PLAN
    from echo_ray.settings import get_settings

    scaling = get_settings().scaling
    prices = (scaling.price_per_replica_hour, scaling.violation_cost_per_hour / 60.0)
    days = min(args.sweep_days if days is None else days, p.workload.duration_s / 86400.0)
    _SWEEP_PLAN = dataclasses.replace(p, workload=p.workload.window(0.0, days * 86400.0))
    grid = fr.sweep_configs()
    jobs = [("ours", None), ("ours_reactive", None)] + [(fr.config_name(c), c) for c in grid]
    print(f"\n== tuned baselines: {len(grid)} Ray default configs + ours + ours_reactive, "
          f"{days:g} days of the same workload, fluid mode, {args.sweep_workers} processes; "
          f"best = lowest replica-hours x {prices[0]:g} + violation minutes x "
          f"{prices[1]:.4g} ==")
    t0 = time.perf_counter()
    with mp.get_context("fork").Pool(args.sweep_workers) as pool:
        rows = pool.map(_sweep_one, jobs, chunksize=1)
    by_name = {r["name"]: r for r in rows}
    baselines = [_point(r) for r in rows if r["config"] is not None]
    front = fr.pareto_frontier(baselines)
    best = fr.best_config(baselines, *prices)
    ours, reactive = _point(by_name["ours"]), _point(by_name["ours_reactive"])
    default = next(b for b in baselines if b.config == {
        "target_ongoing_requests": 2.0, "upscale_delay_s": 30.0, "downscale_delay_s": 600.0})
    vs = fr.versus(ours, best)
    print(f"   frontier ({len(front)} of {len(baselines)} configs), replica-hours / violation "
          f"min / scaling events:")
    for q in front:
        print(f"     {q.name:<28} {q.replica_hours:>9,.1f} {q.violation_minutes:>6.0f} "
              f"{q.scaling_events:>6}" + ("   <- best" if q is best else ""))
    for q in (ours, reactive, default):
        print(f"   {q.name:<30} {q.replica_hours:>9,.1f} {q.violation_minutes:>6.0f} "
              f"{q.scaling_events:>6}")
    print(f"   ours vs best tuned baseline {best.name}: violation minutes x{vs['slo_ratio']}, "
          f"replica-hours x{vs['cost_ratio']} -> target (<= 0.5x violations at <= cost, or "
          f"<= 0.8x cost at <= violations) {'MET' if vs['met'] else 'NOT MET'}; scaling events "
          f"{ours.scaling_events} vs {best.scaling_events} "
          f"({'<=' if ours.scaling_events <= best.scaling_events else '>'})")
    name = p.workload.name
    plot = plot_frontier(baselines, front, out_dir / f"frontier_{name}.png",
                         title=f"{name}: {days:g} days, Ray default policy swept "
                               f"({len(baselines)} configs) vs ours", highlight=[
                             ours, reactive, dataclasses.replace(best, name="best baseline")])
    print(f"   plot: {plot}  ({time.perf_counter() - t0:.0f} s)")
    return {"trace": name, "days": days, "prices": {"per_replica_hour": prices[0],
                                                     "per_violation_minute": prices[1]},
            "points": rows, "frontier": [q.name for q in front],
            "best": {"config": best.config, "slo_violation_minutes": best.violation_minutes,
                     "replica_seconds": round(best.replica_hours * 3600.0, 1),
                     "scaling_events": best.scaling_events},
            "vs_best": vs, "ours": by_name["ours"], "ours_reactive": by_name["ours_reactive"]}


def headline(sweep: dict) -> tuple[dict, dict]:
    """A sweep's entries of the JSON's `best_baseline` and `vs_best_baseline`."""
    return ({k: sweep["best"][k] for k in ("config", "slo_violation_minutes", "replica_seconds")},
            sweep["vs_best"])


def bench_families(args) -> dict:
    """The tuned-baseline comparison (`bench_sweep`) on each synthetic family: workloads no
    policy here was tuned on, `--family-days` of each from `--seed`, sized like the trace."""
    out = {}
    for family in args.families:
        trace = load_trace(FAMILY + family, 60.0, args.seed, 0.0, args.family_days)
        p = plan(trace, sim_config(args), args.peak_replicas,
                 ours_options={"price_decisions": False})
        print(f"\n== family {family} (seed {args.seed}), {trace.duration_s / 86400:g} days "
              f"x{p.scale:.1f} (peak {p.workload.peak_rate:.0f} req/s needs {p.peak_replicas} "
              f"replicas, mean {p.workload.mean_rate:.0f} req/s); bounds "
              f"{p.min_replicas}-{p.max_replicas} ==")
        out[family] = bench_sweep(args, p, args.out_dir, days=args.family_days)
    print(f"\n== families (seed {args.seed}, {args.family_days:g} days each): replica-hours / "
          f"violation min / scaling events ==")
    for family, sw in out.items():
        b, o, r = sw["best"], sw["ours"], sw["ours_reactive"]
        print(f"   {family:<15} best {fr.config_name(b['config']):<28} "
              f"{b['replica_seconds'] / 3600:>7,.1f} {b['slo_violation_minutes']:>5} "
              f"{b['scaling_events']:>5} | ours {o['replica_seconds'] / 3600:>7,.1f} "
              f"{o['slo_violation_minutes']:>5} {o['scaling_events']:>5} | ours_reactive "
              f"{r['replica_seconds'] / 3600:>7,.1f} {r['slo_violation_minutes']:>5} "
              f"{r['scaling_events']:>5} | {'MET' if sw['vs_best']['met'] else 'NOT MET'}")
    return out


def families_doc(sweeps: dict, args) -> dict:
    """The families' JSON: the headline keys per family, and every sweep in `families`."""
    pairs = {f: headline(sw) for f, sw in sweeps.items()}
    return {"best_baseline": {f: b for f, (b, _) in pairs.items()},
            "vs_best_baseline": {f: v for f, (_, v) in pairs.items()},
            "scaling_events": {f: {"ours": sw["ours"]["scaling_events"],
                                   "ours_reactive": sw["ours_reactive"]["scaling_events"],
                                   "best_baseline": sw["best"]["scaling_events"]}
                               for f, sw in sweeps.items()},
            "families": {"seed": args.seed, "days": args.family_days, "sweeps": sweeps}}


# -------------------------------------------------------------------------------- ROI veto
def bench_veto(args, p: Plan) -> dict:
    """Ours (priced, as in production) with and without the ROI veto on the busiest hours."""
    from echo_ray.settings import get_settings

    scaling = get_settings().scaling
    prices = (scaling.price_per_replica_hour, scaling.violation_cost_per_hour / 60.0)
    w = p.workload
    span = args.veto_hours * 3600.0
    peak_t = float(np.argmax(w.rates)) * w.bin_seconds
    start = max(0.0, min(peak_t - span / 2, w.duration_s - span))
    window = w.window(start, span)
    print(f"\n== ROI veto: ours priced, roi_veto off vs on, {args.veto_hours:g} h from "
          f"t={start / 3600:.1f} h (the peak), fluid mode; a violation minute at "
          f"{prices[1]:.4g}, a replica-hour at {prices[0]:g} ==")
    out = {"window_start_s": start, "hours": args.veto_hours,
           "prices": {"per_replica_hour": prices[0], "per_violation_minute": prices[1]}}
    for veto in (False, True):
        q = dataclasses.replace(p, workload=window, ours={**p.ours, "roi_veto": veto},
                                ours_options={"price_decisions": True, "keep_records": True})
        policy = make_policy("ours", q)
        r = simulate(q, policy, "fluid")
        recs = pd.DataFrame(policy.records)
        vetoes = int((recs["blocked_by"] == "roi_veto").sum()) if len(recs) else 0
        s = r.summary
        row = {"slo_violation_minutes": int(s["slo_violation_minutes"]),
               "replica_hours": round(s["replica_hours"], 2),
               "scaling_events": int(s["scaling_events"]), "vetoed_decisions": vetoes,
               "priced_total": round(s["replica_hours"] * prices[0]
                                     + s["slo_violation_minutes"] * prices[1], 3),
               "wall_s": round(s["wall_s"], 1)}
        out["on" if veto else "off"] = row
        print(f"   roi_veto {'on ' if veto else 'off'}: violation min {row['slo_violation_minutes']:>4}"
              f"  replica-h {row['replica_hours']:>8,.1f}  scaling events "
              f"{row['scaling_events']:>5}  vetoed decisions {vetoes:>6}  priced total "
              f"{row['priced_total']:.2f}")
    on, off = out["on"], out["off"]
    out["saves_replica_hours"] = round(off["replica_hours"] - on["replica_hours"], 2)
    out["costs_violation_minutes"] = on["slo_violation_minutes"] - off["slo_violation_minutes"]
    print(f"   the veto saves {out['saves_replica_hours']:+,.1f} replica-hours and costs "
          f"{out['costs_violation_minutes']:+d} violation minutes (priced total "
          f"{on['priced_total'] - off['priced_total']:+.2f})")
    return out


# ---------------------------------------------------------------------------------- live
def bench_live(args, trace: RateTrace, tuned: dict | None = None) -> dict:
    """Live replays of the busiest segments under each policy, and the simulator on the same
    input (`echo_ray.sim.validate`): the per-minute agreement table. `--live-from DIR`: the
    live runs saved there by an earlier run (`<out-dir>/live`), simulator side only."""
    import ray
    from ray import serve

    from echo_ray.connection import connect
    from echo_ray.sim import validate as va
    from echo_ray.sim.live import replay_policy

    k = args.live_speedup
    cfg = sim_config(args, service=ServiceModel.exponential(args.live_service_ms / 1000.0),
                     slo_ms=args.live_slo_ms)
    bounds = (1, args.live_max_replicas)
    ours_kwargs = {"target_latency_ms": args.live_slo_ms, "lead_time_s": args.live_lead_s}
    specs = va.default_specs(tuned=tuned, ours=ours_kwargs)
    starts = va.busiest_segments(trace, args.live_segments, args.live_minutes)
    segments = []
    for start in starts:
        seg = trace.window(start, args.live_minutes * 60.0)
        scale = rate_limit(args.live_peak_replicas, cfg) / (seg.peak_rate * k)
        segments.append((start, scale, seg.scaled(scale)))
    print(f"\n== live vs simulated: {len(segments)} segments of {args.live_minutes:g} trace "
          f"minutes (the busiest, from t=" + ", ".join(f"{s / 3600:.2f}" for s, _, _ in segments)
          + f" h), x{k:g} faster, peak needs {args.live_peak_replicas} replicas; replicas sleep "
          f"{cfg.service.describe()}, max_ongoing_requests {cfg.max_ongoing_requests}, bounds "
          f"{bounds[0]}-{bounds[1]}; policies " + ", ".join(
              f"{sp.name} {sp.serve_fields or sp.ours or 'untouched'}" for sp in specs) + " ==")
    live_dir = args.out_dir / "live"
    live_dir.mkdir(parents=True, exist_ok=True)
    if args.live_from:
        runs = {sp.name: [va.load_live_run(args.live_from, sp.name, i, seg.duration_s / k)
                          for i, (_, _, seg) in enumerate(segments)] for sp in specs}
        for rs in runs.values():
            for (start, _, _), r in zip(segments, rs):
                saved = r.setup.get("segment_start_s")
                if saved is not None and abs(saved - start) > 1e-6:
                    sys.exit(f"bench_autoscaling: --live-from {args.live_from} holds a segment "
                             f"from t={saved} s, this run's is t={start} s (same --trace, "
                             f"--start-day and --days as the live run?)")
        print(f"   live runs read from {args.live_from}")
        return _live_agreement(args, cfg, bounds, specs, segments, runs, live_dir)
    connect(num_cpus=4, include_dashboard=False, namespace="echo_ray_bench_autoscaling",
            runtime_env={"env_vars": {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}})
    port = free_port()
    runs: dict[str, list] = {sp.name: [] for sp in specs}
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        for i, (start, _, seg) in enumerate(segments):
            for sp in specs:
                r = replay_policy(sp, seg, f"http://127.0.0.1:{port}",
                                  name=f"bench-{sp.name.replace('_', '-')}-{i}", speedup=k,
                                  mean_s=cfg.service.mean_s, min_replicas=bounds[0],
                                  max_replicas=bounds[1],
                                  max_ongoing_requests=cfg.max_ongoing_requests,
                                  seed=args.seed, slo_ms=args.live_slo_ms, poll_s=0.5,
                                  progress=sys.stderr.isatty())
                r.setup["segment_start_s"] = start
                va.save_live_run(r, live_dir, sp.name, i)
                if sp.kind == "ours":  # the optimizer actor's every decision, for diagnosis
                    _save_actor_decisions(live_dir / f"{sp.name}_{i}_decisions.csv",
                                          f"bench-{sp.name.replace('_', '-')}-{i}")
                runs[sp.name].append(r)
                print(f"   live {sp.name:<12} segment {i}: violation min "
                      f"{r.summary['slo_violation_minutes']:>3}, replica-s "
                      f"{r.summary['replica_seconds']:>6,.0f}, p99 {r.summary['p99_ms']:>8,.0f} "
                      f"ms, max {r.summary['max_replicas']} replicas", flush=True)
    finally:
        serve.shutdown()
        ray.shutdown()
    return _live_agreement(args, cfg, bounds, specs, segments, runs, live_dir)


def _save_actor_decisions(path: Path, app_name: str) -> None:
    """Every decision the optimizer actor made for `app_name`'s deployment, as CSV."""
    import ray

    from echo_ray.autoscaling.actor import deployment_key, get_optimizer

    actor = get_optimizer()
    if actor is None:
        return
    rows = ray.get(actor.events.remote(deployment_key(app_name, "SimulatedWork"),
                                       changes_only=False), timeout=60)
    pd.DataFrame(rows).to_csv(path, index=False)


def _live_agreement(args, cfg, bounds, specs, segments, runs, live_dir) -> dict:
    from echo_ray.sim import validate as va

    k = args.live_speedup
    starts = [s for s, _, _ in segments]
    measured = [x for rs in runs.values() for r in rs
                for x in va.startup_samples(va.samples_timeline(r.setup["replica_samples"]))]
    fallback = float(np.median(measured)) if measured else args.startup_s
    bin_s = 60.0 / k
    out = {"setup": {"segment_starts_s": starts, "scales": [sc for _, sc, _ in segments],
                     "trace_minutes": args.live_minutes, "speedup": k,
                     "service_mean_ms": cfg.service.mean_s * 1000, "slo_ms": cfg.slo_ms,
                     "max_ongoing_requests": cfg.max_ongoing_requests,
                     "min_replicas": bounds[0], "max_replicas": bounds[1],
                     "policies": [sp.describe() for sp in specs],
                     "sim_tick_s": va.SERVE_CONTROL_LOOP_S,
                     "startup_s_measured_median": round(fallback, 2),
                     "deployment": "echo_ray.sim.live:SimulatedWork"}, "segments": {}}
    agreement = {}
    for sp in specs:
        rows = []
        for i, r in enumerate(runs[sp.name]):
            seen = va.startup_samples(va.samples_timeline(r.setup["replica_samples"]))
            startup = float(np.median(seen)) if seen else fallback
            fast = segments[i][2].compressed(k)
            sim = va.simulate_segment(fast, sp, va.segment_config(cfg, startup), *bounds,
                                      router_start_s=r.setup["router_start_s"])
            lm = va.minute_table(r, bin_s, cfg.slo_ms, cfg.replica_rate)
            sm = va.minute_table(sim, bin_s, cfg.slo_ms, cfg.replica_rate, n_minutes=len(lm))
            row = {**va.agreement(lm, sm), "startup_s": round(startup, 2),
                   "router_start_s": round(r.setup["router_start_s"], 2),
                   "live_p95_ms": [None if not math.isfinite(x) else round(x) for x in
                                   lm["p95_ms"].fillna(0)],
                   "sim_p95_ms": [None if not math.isfinite(x) else round(x) for x in
                                  sm["p95_ms"].fillna(0)],
                   "live_replicas": [round(x, 2) for x in lm["mean_provisioned"]],
                   "sim_replicas": [round(x, 2) for x in sm["mean_provisioned"]]}
            rows.append(row)
            pd.DataFrame({"live_replicas": lm["mean_provisioned"],
                          "sim_replicas": sm["mean_provisioned"], "live_p95_ms": lm["p95_ms"],
                          "sim_p95_ms": sm["p95_ms"], "arrivals": lm["arrivals"]}).to_csv(
                live_dir / f"{sp.name}_{i}_minutes.csv", index_label="minute")
            row["replica_seconds_live"] = round(va.replica_seconds(r.timeline, fast.duration_s), 1)
            row["replica_seconds_sim"] = round(va.replica_seconds(sim.timeline, fast.duration_s), 1)
        out["segments"][sp.name] = rows
        agreement[sp.name] = va.pooled(rows)
        req = pd.concat([r.requests for r in runs[sp.name]])
        lat = req["latency_ms"].to_numpy(dtype=float)[(req["status"] == "served").to_numpy()]
        out[sp.name] = {
            "slo_violation_minutes": agreement[sp.name]["violation_minutes_live"],
            "replica_seconds": round(sum(x["replica_seconds_live"] for x in rows), 1),
            "replica_seconds_sim": round(sum(x["replica_seconds_sim"] for x in rows), 1),
            "dropped": int((req["status"] == "dropped").sum()), "arrivals": len(req),
            "p99_ms": round(float(np.percentile(lat, 99)), 1) if len(lat) else None,
            "p95_ms": round(float(np.percentile(lat, 95)), 1) if len(lat) else None,
            "max_replicas": int(max(r.timeline["provisioned"].max() for r in runs[sp.name]))}
    print(f"   agreement per trace minute ({bin_s:g} s of wall time), simulator fed the start-up "
          f"measured live (median {fallback:.1f} s) and Serve's 0.1 s control loop:")
    print(va.table(agreement))
    out["agreement"] = agreement
    return out


def readme_plot(results: list, path: Path, trace_days: float, start_day: float = 0.0,
                trace_name: str = "NASA trace", slo_ms: float = 400.0) -> Path:
    """The busiest day of the run, every policy: demand, replicas, p95 per minute."""
    m = results[0].minutes
    day = int(np.argmax(m["rate_rps"].to_numpy()) // 1440) if trace_days > 1 else 0
    window = (day * 86400.0, (day + 1) * 86400.0)
    return plot_compare(results, path, dpi=72, window=window,
                        title=f"{trace_name}, day {start_day + day + 1:g} of the trace: provisioned "
                              f"replicas and p95 per minute by policy (SLO {slo_ms:g} ms; ray_tuned: "
                              f"the best config of the sweep)")


def write_json(path: Path | None, doc: dict, started: float) -> None:
    """`doc` with the command line and the wall time, to `path` (if given)."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**doc, "command": "python benchmarks/bench_autoscaling.py "
                                + " ".join(sys.argv[1:]),
                                "wall_s": round(time.perf_counter() - started, 1)},
                               indent=1, default=str))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path, default=None, help="write results here")
    ap.add_argument("--trace", default="nasa",
                    help="'nasa' (ECHO_RAY_TRACES), a trace file, or family:NAME (a synthetic "
                         "family of echo_ray.autoscaling.synthetic, generated from --seed)")
    ap.add_argument("--bin-seconds", type=float, default=60.0)
    ap.add_argument("--start-day", type=float, default=0.0)
    ap.add_argument("--days", type=float, default=7.0)
    ap.add_argument("--peak-replicas", type=int, default=40)
    ap.add_argument("--slo-ms", type=float, default=400.0)
    ap.add_argument("--startup-s", type=float, default=30.0)
    ap.add_argument("--service", default="exp:50ms", help="exp:50ms | fixed:.. | calibration")
    ap.add_argument("--max-ongoing", type=int, default=5)
    ap.add_argument("--routing", default="power_of_two")
    ap.add_argument("--tick-s", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--validation-hours", type=float, default=2.0)
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--think-s", type=float, default=5.0)
    ap.add_argument("--speed-hours", type=float, default=24.0)
    ap.add_argument("--speed-max-replicas", type=int, default=200)
    ap.add_argument("--priced-minutes", type=float, default=30.0)
    ap.add_argument("--sweep-days", type=float, default=3.0,
                    help="days (from the run's start) of the tuned-baseline sweep")
    ap.add_argument("--sweep-workers", type=int, default=2)
    ap.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES),
                    help="synthetic families of the tuned-baseline comparison (default: all)")
    ap.add_argument("--family-days", type=float, default=1.0,
                    help="days of each family (from its start) in that comparison")
    ap.add_argument("--families-only", action="store_true",
                    help="only the tuned-baseline comparison on the families")
    ap.add_argument("--skip-families", action="store_true")
    ap.add_argument("--veto-hours", type=float, default=3.0)
    ap.add_argument("--veto-only", action="store_true", help="only the ROI veto comparison")
    ap.add_argument("--skip-live", action="store_true")
    ap.add_argument("--live-only", action="store_true",
                    help="only the live-versus-simulated validation (ray_tuned: "
                         "--live-tuned, default the NASA sweep's pick)")
    ap.add_argument("--live-tuned", type=json.loads, default=None,
                    help='with --live-only: ray_tuned\'s Serve fields as JSON, e.g. '
                         '\'{"target_ongoing_requests": 1, "upscale_delay_s": 0}\'')
    ap.add_argument("--live-from", type=Path, default=None,
                    help="re-run only the simulator side on live runs saved in this folder")
    ap.add_argument("--live-segments", type=int, default=2)
    ap.add_argument("--live-minutes", type=float, default=10.0)
    ap.add_argument("--live-speedup", type=float, default=5.0)
    ap.add_argument("--live-peak-replicas", type=int, default=4)
    ap.add_argument("--live-max-replicas", type=int, default=8)
    ap.add_argument("--live-service-ms", type=float, default=400.0,
                    help="mean service time of the live replicas (fewer requests/s than the "
                         "simulation, so one loaded machine's HTTP proxy and client keep up: "
                         "at 100 ms, ~20 req/s, they capped the live runs on the shared box)")
    ap.add_argument("--live-slo-ms", type=float, default=1600.0,
                    help="the live runs' SLO (p95), 4x their mean service time by default")
    ap.add_argument("--live-lead-s", type=float, default=10.0)
    ap.add_argument("--out-dir", type=Path, default=Path("benchmarks/out/autoscaling"))
    ap.add_argument("--readme-plot", type=Path, default=None,
                    help="also write the one-day comparison plot here (e.g. docs/capacity.png)")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    if args.families_only:
        doc = families_doc(bench_families(args), args)
        total = time.perf_counter() - started
        print(f"\nbench_autoscaling: {total:.0f} s")
        write_json(args.json, doc, started)
        return 0
    trace = load_trace(args.trace, args.bin_seconds, args.seed, args.start_day, args.days)
    if args.live_only:
        live = bench_live(args, trace, args.live_tuned)
        write_json(args.json, {"live": live, "live_agreement": live["agreement"]}, started)
        return 0
    if args.veto_only:
        p = plan(trace, sim_config(args), args.peak_replicas)
        veto = bench_veto(args, p)
        write_json(args.json, {"roi_veto": veto}, started)
        return 0

    policies, setup, results, validation = bench_policies(
        args, trace, args.out_dir, while_waiting=lambda: bench_validation(args, trace))
    p = policies.pop("_plan")
    sweep = bench_sweep(args, p, args.out_dir)
    tuned = simulate(p, ray_default(p.min_replicas, p.max_replicas, **sweep["best"]["config"]),
                     "fluid")
    tuned.policy = "ray_tuned"
    print(_policy_line(tuned).replace(" ray_default ", " ray_tuned   "))
    results.insert(1, tuned)
    policies["ray_tuned"] = {**_pick(tuned.summary), "config": sweep["best"]["config"]}
    scaling_events = {r.policy: int(r.summary["scaling_events"]) for r in results}
    veto = bench_veto(args, p)
    print("   scaling events over the run: " + ", ".join(f"{k} {v:,}" for k, v in
                                                         scaling_events.items()))
    plot_compare(results, args.out_dir / "autoscaling_compare.png",
                 title=f"{trace.name}: {args.days:g} days, fluid mode")
    if args.readme_plot:
        readme_plot(results, args.readme_plot, args.days, args.start_day,
                    "NASA trace" if args.trace == "nasa" else trace.name, args.slo_ms)
    ours, ray = policies["ours"], policies["ray_default"]
    ratios = {"slo_violation_minutes": _ratio(ours["slo_violation_minutes"],
                                              ray["slo_violation_minutes"]),
              "replica_seconds": _ratio(ours["replica_seconds"], ray["replica_seconds"])}
    print(f"   ours / ray_default: SLO-violation minutes x{ratios['slo_violation_minutes']} "
          f"(target <= 0.5), replica-seconds x{ratios['replica_seconds']} (target <= 1.0)")
    speed = bench_sim_speed(args)
    families = {} if args.skip_families else bench_families(args)
    live = {"skipped": True} if args.skip_live else bench_live(args, trace,
                                                               sweep["best"]["config"])
    if not args.skip_live:
        lo, lr = live["ours"], live["ray_default"]
        live["ratios"] = {"slo_violation_minutes": _ratio(lo["slo_violation_minutes"],
                                                          lr["slo_violation_minutes"]),
                          "replica_seconds": _ratio(lo["replica_seconds"],
                                                    lr["replica_seconds"])}
        print(f"   live ours / ray_default: SLO-violation minutes "
              f"x{live['ratios']['slo_violation_minutes']}, replica-seconds "
              f"x{live['ratios']['replica_seconds']}")
    total = time.perf_counter() - started
    print(f"\nbench_autoscaling: {total:.0f} s")
    best, vs = headline(sweep)
    fam = families_doc(families, args)
    doc = {"policies": policies, "ratios_ours_vs_ray_default": ratios, "sim_speed": speed,
           "live": live, "validation": validation, "setup": setup,
           "best_baseline": {sweep["trace"]: best, **fam["best_baseline"]},
           "vs_best_baseline": {sweep["trace"]: vs, **fam["vs_best_baseline"]},
           "scaling_events": {**scaling_events, **fam["scaling_events"]},
           "families": fam["families"], "sweep": sweep, "roi_veto": veto,
           "live_agreement": live.get("agreement", {"skipped": True}),
           "command": "python benchmarks/bench_autoscaling.py " + " ".join(sys.argv[1:]),
           "wall_s": round(total, 1)}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1, default=str))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
