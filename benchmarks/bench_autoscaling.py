"""Autoscaling policies on a real trace: ours vs Ray Serve's default vs static provisioning.

    python benchmarks/bench_autoscaling.py --json OUT [--trace PATH] [--days 7] [--skip-live]

1. policies: the NASA trace (or `--trace`: a `minute,requests` CSV or one count per line at
   `--bin-seconds`), `--days` days from `--start-day`, scaled so its peak needs
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
4. live: 10 trace minutes around the peak, compressed `--live-speedup` times and scaled so
   the peak needs `--live-peak-replicas`, replayed open loop against a local Serve app
   (`echo_ray.sim.live.SimulatedWork`: replicas that serve one request at a time for an
   exponential `--live-service-ms` time, so capacity grows with replicas on two cores) once
   with ForecastPolicy and once with Serve's default autoscaling config (only min/max set),
   both starting from one replica.

Every run is seeded; ratios are ours / ray_default on the same workload.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

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
from echo_ray.sim.arrivals import resolve_trace_path
from echo_ray.sim.plots import plot_compare
from echo_ray.sim.results import SimResult
from echo_ray.sim.runner import POLICIES, rate_limit

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


def load_trace(args) -> RateTrace:
    try:
        path = resolve_trace_path(args.trace)
    except ValueError as exc:
        sys.exit(f"bench_autoscaling: {exc}")
    trace = RateTrace.load(path, args.bin_seconds)
    start = args.start_day * 86400.0
    if start >= trace.duration_s:
        sys.exit(f"bench_autoscaling: --start-day {args.start_day} is past the trace's end")
    return trace.window(start, args.days * 86400.0)


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


# ---------------------------------------------------------------------------------- live
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_live(args, trace: RateTrace) -> dict:
    import httpx
    import ray
    from ray import serve

    from echo_ray.sim.live import app, replica_counter
    from echo_ray.sim.replay import ReplayRequest, replay

    k = args.live_speedup
    peak_t = float(np.argmax(trace.rates)) * trace.bin_seconds
    start = max(0.0, min(peak_t - 300.0, trace.duration_s - args.live_minutes * 60.0))
    window = trace.window(start, args.live_minutes * 60.0)
    cfg = sim_config(args, service=ServiceModel.exponential(args.live_service_ms / 1000.0))
    scale = rate_limit(args.live_peak_replicas, cfg) / (window.peak_rate * k)
    window = window.scaled(scale)
    bounds = (1, args.live_max_replicas)
    ours_kwargs = {"target_latency_ms": args.slo_ms, "lead_time_s": args.live_lead_s}
    print(f"\n== live: {args.live_minutes:g} trace minutes from t={start / 3600:.2f} h, x{k:g} "
          f"faster ({window.expected_requests():,.0f} requests in "
          f"{window.duration_s / k:.0f} s, peak {window.peak_rate * k:.0f} req/s needs "
          f"{args.live_peak_replicas} replicas), bounds {bounds[0]}-{bounds[1]} ==")
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False,
             namespace="echo_ray_bench_autoscaling",
             runtime_env={"env_vars": {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}})
    port = _free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    out = {"setup": {"window_start_s": start, "trace_minutes": args.live_minutes,
                     "speedup": k, "scale": scale, "service_mean_ms": cfg.service.mean_s * 1000,
                     "max_ongoing_requests": cfg.max_ongoing_requests,
                     "min_replicas": bounds[0], "max_replicas": bounds[1],
                     "ours_policy_kwargs": ours_kwargs,
                     "deployment": "echo_ray.sim.live:SimulatedWork"}}
    try:
        for policy in ("ours", "ray_default"):
            name = f"bench-{policy.replace('_', '-')}"
            serve.run(app(policy=policy, mean_s=cfg.service.mean_s, min_replicas=bounds[0],
                          max_replicas=bounds[1], max_ongoing_requests=cfg.max_ongoing_requests,
                          seed=args.seed, ours=ours_kwargs),
                      name=name, route_prefix=f"/{name}")
            url = f"http://127.0.0.1:{port}/{name}"
            deadline = time.monotonic() + 120
            while httpx.post(url, timeout=30).status_code != 200:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not become ready")
                time.sleep(0.5)
            r = replay(url, window, speedup=k, seed=args.seed, request=ReplayRequest("/", None),
                       timeout_s=30.0, replica_counter=replica_counter(name), poll_s=1.0,
                       slo_ms=args.slo_ms, service_rate=cfg.replica_rate,
                       progress=sys.stderr.isatty(), name=policy)
            s = r.summary
            out[policy] = {**_pick(s, HEADLINE + ("p95_ms", "p50_ms", "arrivals", "served",
                                                   "mean_replicas", "max_replicas")),
                           "expected_requests": round(s["expected_requests"], 1),
                           "send_lag_p99_ms": round(s["send_lag_p99_ms"], 2),
                           "http_status_counts": s["http_status_counts"]}
            print(f"   {policy:<12} SLO-violation min {s['slo_violation_minutes']:>3}  "
                  f"replica-s {s['replica_seconds']:>7,.0f}  dropped {s['dropped']:>5,.0f}  "
                  f"p99 {s['p99_ms']:>8,.0f} ms  ({s['arrivals']:,.0f} sent, "
                  f"max {s['max_replicas']} replicas)")
            serve.delete(name)
    finally:
        serve.shutdown()
        ray.shutdown()
    return out


def readme_plot(results: list, path: Path, trace_days: float) -> Path:
    """The busiest day of the run, every policy: demand, replicas, p95 per minute."""
    m = results[0].minutes
    day = int(np.argmax(m["rate_rps"].to_numpy()) // 1440) if trace_days > 1 else 0
    window = (day * 86400.0, (day + 1) * 86400.0)
    return plot_compare(results, path, dpi=72, window=window,
                        title=f"NASA trace, day {day + 1} of the simulated week: provisioned "
                              f"replicas and p95 per minute by policy (SLO 400 ms)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", type=Path, default=None, help="write results here")
    ap.add_argument("--trace", default="nasa", help="'nasa' (ECHO_RAY_TRACES) or a trace file")
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
    ap.add_argument("--skip-live", action="store_true")
    ap.add_argument("--live-minutes", type=float, default=10.0)
    ap.add_argument("--live-speedup", type=float, default=5.0)
    ap.add_argument("--live-peak-replicas", type=int, default=4)
    ap.add_argument("--live-max-replicas", type=int, default=8)
    ap.add_argument("--live-service-ms", type=float, default=100.0,
                    help="mean service time of the live replicas (fewer requests/s than the "
                         "simulation, so one loaded machine's HTTP proxy keeps up)")
    ap.add_argument("--live-lead-s", type=float, default=10.0)
    ap.add_argument("--out-dir", type=Path, default=Path("benchmarks/out/autoscaling"))
    ap.add_argument("--readme-plot", type=Path, default=None,
                    help="also write the one-day comparison plot here (e.g. docs/capacity.png)")
    args = ap.parse_args(argv)
    started = time.perf_counter()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    trace = load_trace(args)

    policies, setup, results, validation = bench_policies(
        args, trace, args.out_dir, while_waiting=lambda: bench_validation(args, trace))
    plot_compare(results, args.out_dir / "autoscaling_compare.png",
                 title=f"{trace.name}: {args.days:g} days, fluid mode")
    if args.readme_plot:
        readme_plot(results, args.readme_plot, args.days)
    ours, ray = policies["ours"], policies["ray_default"]
    ratios = {"slo_violation_minutes": _ratio(ours["slo_violation_minutes"],
                                              ray["slo_violation_minutes"]),
              "replica_seconds": _ratio(ours["replica_seconds"], ray["replica_seconds"])}
    print(f"   ours / ray_default: SLO-violation minutes x{ratios['slo_violation_minutes']} "
          f"(target <= 0.5), replica-seconds x{ratios['replica_seconds']} (target <= 1.0)")
    speed = bench_sim_speed(args)
    live = {"skipped": True} if args.skip_live else bench_live(args, trace)
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
    doc = {"policies": policies, "ratios_ours_vs_ray_default": ratios, "sim_speed": speed,
           "live": live, "validation": validation, "setup": setup,
           "command": "python benchmarks/bench_autoscaling.py " + " ".join(sys.argv[1:]),
           "wall_s": round(total, 1)}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1, default=str))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
