"""The cognitive API's hot paths against a bare Serve no-op deployment, in one run.

    python benchmarks/bench_serve.py --json benchmarks/out/serve.json

Starts a local Ray cluster, deploys our app and a no-op deployment behind the same Serve HTTP
proxy, and drives each with the same closed-loop async client (every client sends its next
request when the previous one answers) at concurrency 8 and 32. Paths: `noop` (a GET: Serve
never fetches a body for it); `noop_await` (diagnostic: a GET no-op that waits once for a
thread; at a handler's first wait Serve's replica starts its watch for the client's disconnect,
an actor call back to the proxy); `noop_post` (diagnostic: a bare deployment that reads the same
JSON body as the hit, which in Ray Serve is an actor call from the replica back to the proxy);
memory retrieve served from the result cache (`hit`, POST /v1/memory), the same as a GET with a
query string (`hit_get`, GET /v1/memory: the same cache entry, no body); the same retrieve
computed by the worker (`miss`, `options.cache=false`). Headline figures at concurrency 32.

The paths that compare with the no-op run in interleaved rounds (`--rounds`, each path's turn
rotating), after a warm-up of the hit load long enough for the ingress to scale to what it
needs (`--warmup`), and each measured window starts only once no replica of any deployment is
starting or stopping; a path's figure is the median over rounds, a ratio the median of the
rounds' own ratios (each round's paths a few seconds apart). The misses, which scale the worker
up, run last. So no path is measured while a replica starts beside it, and drift on a shared
machine falls on every path alike.

Ray Serve's switches come from the environment: `RAY_SERVE_THROUGHPUT_OPTIMIZED=1 python
benchmarks/bench_serve.py ...` measures Serve's throughput-optimized mode (RESULTS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from urllib.parse import urlencode

import httpx
import numpy as np


def ray_cpu_s() -> float:
    """CPU seconds used so far by this driver's Ray processes (proxy, replicas, raylet, GCS):
    per request, a cost that the machine's other jobs disturb less than throughput."""
    import psutil

    total = 0.0
    for p in psutil.Process().children(recursive=True):
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def busy_replicas() -> int:
    """Replicas of every Serve deployment that are neither running nor stopped (starting,
    stopping, updating, recovering): a window measured beside one is not comparable."""
    from ray import serve

    return sum(n for app in serve.status().applications.values()
               for dep in app.deployments.values()
               for state, n in dep.replica_states.items()
               if str(getattr(state, "value", state)) not in ("RUNNING", "STOPPED"))


def wait_settled(timeout_s: float = 120.0) -> None:
    from echo_ray.waiting import wait_until

    wait_until(lambda: busy_replicas() == 0, timeout_s, "no Serve replica starting or stopping",
               interval_s=0.5)


async def closed_loop(url: str, body: dict | None, concurrency: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        async def one_client():
            nonlocal errors
            while time.perf_counter() < stop:
                t = time.perf_counter()
                r = await (client.post(url, json=body) if body is not None else client.get(url))
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - t)
                else:
                    errors += 1
        t0, cpu0, own0 = time.perf_counter(), ray_cpu_s(), time.process_time()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        wall, cpu = time.perf_counter() - t0, ray_cpu_s() - cpu0
        own = time.process_time() - own0
    lat = np.array(latencies) * 1000
    return {"rps": len(latencies) / wall, "p50": float(np.percentile(lat, 50)),
            "p99": float(np.percentile(lat, 99)), "requests": len(latencies), "errors": errors,
            "server_cpu_ms_per_request": 1000 * cpu / max(len(latencies), 1),
            # The load generator's own share of the 2 cores: near 1, it caps every path.
            "client_cpu_cores": own / wall}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True)
    ap.add_argument("--seconds", type=float, default=15.0,
                    help="measured per path and concurrency, split over the rounds")
    ap.add_argument("--rounds", type=int, default=3,
                    help="interleaved rounds of the paths that compare with the no-op")
    ap.add_argument("--warmup", type=float, default=30.0,
                    help="seconds of hit load before each concurrency's rounds")
    args = ap.parse_args(argv)

    import ray
    from ray import serve

    from echo_ray.app import build_app
    from echo_ray.connection import connect
    from echo_ray.ops.localcluster import free_port
    from echo_ray.settings import Settings

    data = tempfile.mkdtemp(prefix="echo-ray-bench-")
    connect(include_dashboard=False)
    port = free_port()  # not a fixed one: other runs may share the machine
    serve.start(http_options={"host": "127.0.0.1", "port": port})

    @serve.deployment(max_ongoing_requests=64, ray_actor_options={"num_cpus": 0})
    class Noop:
        async def __call__(self, request):
            return {"ok": True}

    @serve.deployment(max_ongoing_requests=64, ray_actor_options={"num_cpus": 0})
    class NoopPost:  # diagnostic: a bare deployment that reads a JSON body like the API does
        async def __call__(self, request):
            await request.json()
            return {"ok": True}

    @serve.deployment(max_ongoing_requests=64, ray_actor_options={"num_cpus": 0})
    class NoopAwait:  # diagnostic: a GET no-op that waits once, as any handler doing I/O does
        async def __call__(self, request):
            await asyncio.to_thread(int)
            return {"ok": True}

    serve.run(Noop.bind(), name="noop", route_prefix="/noop")
    serve.run(NoopAwait.bind(), name="noop-await", route_prefix="/noop-await")
    serve.run(NoopPost.bind(), name="noop-post", route_prefix="/noop-post")
    settings = Settings.from_env(paths={"data_dir": data})
    serve.run(build_app(settings), name="echo", route_prefix="/")
    base = f"http://127.0.0.1:{port}"
    sid = httpx.post(f"{base}/v1/sessions").json()["session_id"]
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), 10)) for _ in range(200)]
    r = httpx.post(f"{base}/v1/memory", timeout=120, json={
        "session_id": sid, "input": {"op": "store", "items": [{"text": w} for w in words]}})
    r.raise_for_status()
    retrieve = {"session_id": sid, "input": {"op": "retrieve", "query": {"text": words[7]}, "k": 5}}
    miss = {**retrieve, "options": {"cache": False}}
    httpx.post(f"{base}/v1/memory", json=retrieve, timeout=60).raise_for_status()  # fill cache
    # The same retrieve as a GET (its query string): the same cache entry, no body to fetch.
    hit_get = f"{base}/v1/memory?" + urlencode({"session_id": sid, "text": words[7], "k": 5})
    assert httpx.get(hit_get, timeout=60).json()["cached"]

    paths = {  # name -> (url, body): the paths that compare with the no-op
        "noop": (f"{base}/noop", None),
        "noop_await": (f"{base}/noop-await", None),
        "noop_post": (f"{base}/noop-post", retrieve),
        "hit": (f"{base}/v1/memory", retrieve),
        "hit_get": (hit_get, None),
    }
    round_s = args.seconds / args.rounds
    results: dict = {"concurrency": {}, "rounds": args.rounds, "warmup_s": args.warmup,
                     "round_seconds": round_s}
    for c in (8, 32):
        # The hit load until the ingress has scaled to what it needs (Serve's upscale delay
        # is 15 s), so no replica starts inside a measured window.
        asyncio.run(closed_loop(f"{base}/v1/memory", retrieve, c, args.warmup / 2))
        asyncio.run(closed_loop(hit_get, None, c, args.warmup / 2))
        rounds: dict[str, list[dict]] = {name: [] for name in paths}
        names = list(paths)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                url, body = paths[name]
                wait_settled()
                asyncio.run(closed_loop(url, body, c, 1.0))  # unmeasured: the window starts loaded
                window = asyncio.run(closed_loop(url, body, c, round_s))
                window["busy_replicas_after"] = busy_replicas()  # one started inside it?
                rounds[name].append(window)
        row = {}
        for name, runs in rounds.items():
            requests = sum(x["requests"] for x in runs)
            row[name] = {"rps": statistics.median([x["rps"] for x in runs]),
                         "p50": statistics.median([x["p50"] for x in runs]),
                         "p99": statistics.median([x["p99"] for x in runs]),
                         "requests": requests, "errors": sum(x["errors"] for x in runs),
                         "server_cpu_ms_per_request": sum(
                             x["server_cpu_ms_per_request"] * x["requests"] for x in runs)
                         / max(requests, 1),
                         "client_cpu_cores": statistics.median(
                             [x["client_cpu_cores"] for x in runs]),
                         "rounds_rps": [x["rps"] for x in runs],
                         "rounds_busy_replicas_after": [x["busy_replicas_after"] for x in runs]}
        results["concurrency"][str(c)] = row
    for c in (8, 32):  # last: the misses scale the worker up, for minutes
        wait_settled()
        results["concurrency"][str(c)]["miss"] = asyncio.run(
            closed_loop(f"{base}/v1/memory", miss, c, args.seconds))
    for c, row in results["concurrency"].items():
        print(f"concurrency {c}: " + "  ".join(
            f"{k} {v['rps']:.0f} rps p50 {v['p50']:.1f} ms p99 {v['p99']:.1f} ms"
            f" cpu {v['server_cpu_ms_per_request']:.2f} ms/req"
            for k, v in row.items()))
    head = results["concurrency"]["32"]

    def round_ratios(a: str, b: str) -> list[float]:
        return [x / y for x, y in zip(head[a]["rounds_rps"], head[b]["rounds_rps"])]

    def paired(a: str, b: str) -> float:
        return statistics.median(round_ratios(a, b))

    results.update({
        "noop_rps": head["noop"]["rps"],
        "memory_retrieve_hit_rps": head["hit"]["rps"],
        "memory_retrieve_miss_rps": head["miss"]["rps"],
        "memory_retrieve_hit_get_rps": head["hit_get"]["rps"],
        # Each the median of the rounds' own ratios (a round's paths ran seconds apart).
        "ratio_hit_vs_noop": paired("hit", "noop"),
        "ratio_hit_get_vs_noop": paired("hit_get", "noop"),
        "ratio_noop_post_vs_noop": paired("noop_post", "noop"),
        "ratio_noop_await_vs_noop": paired("noop_await", "noop"),
        "ratio_hit_vs_noop_post": paired("hit", "noop_post"),
        "rounds_ratio_hit_get_vs_noop": round_ratios("hit_get", "noop"),
        "rounds_ratio_hit_vs_noop": round_ratios("hit", "noop"),
        "latency_ms": {k: {"p50": head[k]["p50"], "p99": head[k]["p99"]}
                       for k in ("noop", "noop_await", "noop_post", "hit", "hit_get", "miss")},
        "machine": {"cpus": os.cpu_count()},
    })
    results["load_average"] = os.getloadavg()
    # Serve's own switches (e.g. RAY_SERVE_THROUGHPUT_OPTIMIZED=1) reach the cluster this run
    # starts from this environment: keep them beside the figures they produced.
    results["ray_serve_env"] = {k: v for k, v in os.environ.items() if k.startswith("RAY_SERVE_")}
    print(f"cache-hit path / no-op throughput at concurrency 32: GET retrieve"
          f" {results['ratio_hit_get_vs_noop']:.2f}, POST retrieve {results['ratio_hit_vs_noop']:.2f}"
          f" (bare POST no-op / no-op {results['ratio_noop_post_vs_noop']:.2f}, load {os.getloadavg()})")
    serve.shutdown()
    ray.shutdown()
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(results, f, indent=2)
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
