"""Routing strategies: a queueing simulation and a real Ray Serve deployment.

    python benchmarks/bench_routing.py --json OUT [--part sim|serve|all] [--duration 30]

`sim`: every strategy in `echo_ray.routing` drives the discrete-event simulation in
`echo_ray.routing.sim` (10 FIFO replicas, Poisson arrivals, exponential service) at
70% and 90% load with equal replicas and at 90% with one replica 5x slower. Latency is
in units of the mean service time; ratios are against round-robin on the same arrivals.

`serve`: a real Serve app on a private local Ray cluster, 3 replicas that each serve one
request at a time (a FIFO lock around a sleep that stands in for model compute, so the
2-core machine is not saturated by the load generator), replica rank 0 sleeps 5x longer.
16 closed-loop HTTP clients run for `--duration` seconds per strategy, with Serve's own
default router (`ray_default`) and our round-robin as the baselines in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import numpy as np

from echo_ray.ops.localcluster import free_port
from echo_ray.routing import STRATEGIES
from echo_ray.routing.sim import SCENARIOS, SIM_STATS_PERIOD, run_all

SERVE_BASELINE = "ray_default"


# ---------------------------------------------------------------------------------- sim
def bench_sim(n_requests: int, warmup: int, seed: int) -> dict:
    started = time.perf_counter()
    results = run_all(list(STRATEGIES), n_requests=n_requests, warmup=warmup, seed=seed)
    out = {scenario: {name: r.as_dict() for name, r in by_strategy.items()}
           for scenario, by_strategy in results.items()}
    print(f"\n== sim: 10 FIFO replicas, {n_requests} requests ({warmup} warm-up), "
          f"stats period {SIM_STATS_PERIOD:g} service times, "
          f"{time.perf_counter() - started:.0f} s ==")
    print("latency in mean service times; x RR = p99 / round_robin p99 in the same scenario")
    for scenario, by_strategy in out.items():
        rr = by_strategy["round_robin"]
        print(f"-- {scenario} ({SCENARIOS[scenario].load:.0%} load)"
              + ("" if rr["stable"] else "  (round_robin unstable: its p99 grows with run "
                 "length, so x RR is not meaningful)"))
        print(f"   {'strategy':<20}{'p50':>9}{'p99':>11}{'x RR':>8}  stable")
        for name, row in by_strategy.items():
            ratio = f"{row['p99'] / rr['p99']:>8.2f}" if rr["stable"] else f"{'-':>8}"
            print(f"   {name:<20}{row['p50']:>9.2f}{row['p99']:>11.2f}{ratio}  "
                  f"{row['stable']}")
    print("-- slow_90 p99 / equal_90 p99 (target <= 3 for least_connections, "
          "least_response_time)")
    for name in STRATEGIES:
        ratio = out["slow_90"][name]["p99"] / out["equal_90"][name]["p99"]
        print(f"   {name:<20}{ratio:>9.2f}")
    return out


# -------------------------------------------------------------------------------- serve
def _deployment(base_ms: float, slow_factor: float, max_ongoing: int):
    from ray import serve
    from starlette.requests import Request

    from echo_ray.routing.stats import RoutingStatsMixin

    @serve.deployment(num_replicas=3, max_ongoing_requests=max_ongoing,
                      ray_actor_options={"num_cpus": 0})
    class BenchReplica(RoutingStatsMixin):
        """Serves one request at a time; replica rank 0 is `slow_factor` times slower."""

        def __init__(self) -> None:
            ctx = serve.get_replica_context()
            self.replica = ctx.replica_id.unique_id
            self.slow = ctx.rank.rank == 0
            self.delay_s = base_ms / 1000.0 * (slow_factor if self.slow else 1.0)
            # Replicas know their own speed, as hardware specs would tell them.
            self.init_replica_stats(capacity=1.0 / slow_factor if self.slow else 1.0)
            self.lock = asyncio.Lock()

        async def __call__(self, request: Request) -> dict:
            with self.replica_stats.track():
                async with self.lock:
                    await asyncio.sleep(self.delay_s)
            return {"replica": self.replica, "slow": self.slow}

    return BenchReplica


async def _closed_loop(url: str, clients: int, warmup_s: float, duration_s: float) -> dict:
    import httpx

    latencies: list[float] = []
    slow_hits = 0
    errors = 0
    start = time.perf_counter()
    measure_from = start + warmup_s
    stop_at = measure_from + duration_s

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal slow_hits, errors
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return
            try:
                response = await http.get(url)
                ok = response.status_code == 200
                slow = ok and response.json()["slow"]
            except httpx.HTTPError:
                ok, slow = False, False
            t1 = time.perf_counter()
            if t0 >= measure_from and t1 <= stop_at:
                if ok:
                    latencies.append(t1 - t0)
                    slow_hits += slow
                else:
                    errors += 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60.0, limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    ms = np.asarray(latencies) * 1000.0
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "rps": round(len(ms) / duration_s, 1),
            "slow_share": round(slow_hits / max(1, len(ms)), 4),
            "errors": errors}


def bench_serve(strategies: list[str], duration_s: float, warmup_s: float, clients: int,
                base_ms: float, slow_factor: float, max_ongoing: int) -> dict:
    import ray
    from ray import serve

    from echo_ray.connection import connect
    from echo_ray.routing.router import request_router_config

    connect(include_dashboard=False, namespace="echo_ray_bench")
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    deployment = _deployment(base_ms, slow_factor, max_ongoing)
    out: dict[str, dict] = {}
    print(f"\n== serve: 3 replicas ({base_ms:g} ms, one {slow_factor:g}x slower, FIFO), "
          f"max_ongoing_requests={max_ongoing}, {clients} closed-loop HTTP clients, "
          f"{duration_s:g} s per strategy after {warmup_s:g} s warm-up ==")
    try:
        for name in strategies:
            options = {} if name == SERVE_BASELINE else {
                "request_router_config": request_router_config(name, stats_period_s=1.0)}
            app_name = f"bench_routing_{name}"
            serve.run(deployment.options(**options).bind(), name=app_name,
                      route_prefix=f"/{app_name}")
            try:
                row = asyncio.run(_closed_loop(f"http://127.0.0.1:{port}/{app_name}",
                                               clients, warmup_s, duration_s))
            finally:
                serve.delete(app_name)
            out[name] = row
            print(f"   {name:<20} p50 {row['p50_ms']:>8.1f} ms  p99 {row['p99_ms']:>8.1f} ms  "
                  f"{row['rps']:>7.1f} rps  slow share {row['slow_share']:.3f}  "
                  f"errors {row['errors']}", flush=True)
    finally:
        serve.shutdown()
        ray.shutdown()
    for baseline in (SERVE_BASELINE, "round_robin"):
        if baseline in out:
            base = out[baseline]
            print(f"-- p99 and rps ratio vs {baseline}")
            for name, row in out.items():
                print(f"   {name:<20} p99 x{row['p99_ms'] / base['p99_ms']:>6.2f}   "
                      f"rps x{row['rps'] / base['rps']:>5.2f}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="write results here")
    parser.add_argument("--part", choices=["sim", "serve", "all"], default="all")
    parser.add_argument("--sim-requests", type=int, default=200_000)
    parser.add_argument("--sim-warmup", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--duration", type=float, default=30.0,
                        help="measured seconds per strategy in the serve part")
    parser.add_argument("--warmup", type=float, default=3.0,
                        help="unmeasured seconds before each serve measurement")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--base-ms", type=float, default=20.0)
    parser.add_argument("--slow-factor", type=float, default=5.0)
    parser.add_argument("--max-ongoing", type=int, default=8)
    parser.add_argument("--strategies", default=",".join([SERVE_BASELINE, *STRATEGIES]),
                        help="comma-separated serve strategies (ray_default = Serve's own)")
    args = parser.parse_args(argv)
    if args.duration <= 0 or args.clients <= 0 or args.base_ms <= 0:
        parser.error("--duration, --clients and --base-ms must be > 0")
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    unknown = [s for s in strategies if s != SERVE_BASELINE and s not in STRATEGIES]
    if unknown:
        parser.error(f"unknown strategies {unknown}; valid: {SERVE_BASELINE}, "
                     f"{', '.join(STRATEGIES)}")

    results: dict[str, object] = {"config": {k: v for k, v in vars(args).items()
                                             if k != "json"}}
    if args.part in ("sim", "all"):
        results["sim"] = bench_sim(args.sim_requests, args.sim_warmup, args.seed)
    if args.part in ("serve", "all"):
        results["serve"] = bench_serve(strategies, args.duration, args.warmup, args.clients,
                                       args.base_ms, args.slow_factor, args.max_ongoing)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
