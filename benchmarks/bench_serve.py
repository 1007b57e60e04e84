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

Ray Serve's switches come from the environment: `RAY_SERVE_THROUGHPUT_OPTIMIZED=1 python
benchmarks/bench_serve.py ...` measures Serve's throughput-optimized mode (RESULTS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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
        t0, cpu0 = time.perf_counter(), ray_cpu_s()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        wall, cpu = time.perf_counter() - t0, ray_cpu_s() - cpu0
    lat = np.array(latencies) * 1000
    return {"rps": len(latencies) / wall, "p50": float(np.percentile(lat, 50)),
            "p99": float(np.percentile(lat, 99)), "requests": len(latencies), "errors": errors,
            "server_cpu_ms_per_request": 1000 * cpu / max(len(latencies), 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True)
    ap.add_argument("--seconds", type=float, default=15.0, help="per path and concurrency")
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

    results: dict = {"concurrency": {}}
    for c in (8, 32):
        row = {
            "noop": asyncio.run(closed_loop(f"{base}/noop", None, c, args.seconds)),
            "noop_await": asyncio.run(closed_loop(f"{base}/noop-await", None, c, args.seconds)),
            "noop_post": asyncio.run(closed_loop(f"{base}/noop-post", retrieve, c, args.seconds)),
            "hit": asyncio.run(closed_loop(f"{base}/v1/memory", retrieve, c, args.seconds)),
            "hit_get": asyncio.run(closed_loop(hit_get, None, c, args.seconds)),
            "miss": asyncio.run(closed_loop(f"{base}/v1/memory", miss, c, args.seconds)),
        }
        results["concurrency"][str(c)] = row
        print(f"concurrency {c}: " + "  ".join(
            f"{k} {v['rps']:.0f} rps p50 {v['p50']:.1f} ms p99 {v['p99']:.1f} ms"
            f" cpu {v['server_cpu_ms_per_request']:.2f} ms/req"
            for k, v in row.items()))
    head = results["concurrency"]["32"]
    results.update({
        "noop_rps": head["noop"]["rps"],
        "memory_retrieve_hit_rps": head["hit"]["rps"],
        "memory_retrieve_miss_rps": head["miss"]["rps"],
        "memory_retrieve_hit_get_rps": head["hit_get"]["rps"],
        "ratio_hit_vs_noop": head["hit"]["rps"] / head["noop"]["rps"],
        "ratio_hit_get_vs_noop": head["hit_get"]["rps"] / head["noop"]["rps"],
        "ratio_noop_post_vs_noop": head["noop_post"]["rps"] / head["noop"]["rps"],
        "ratio_noop_await_vs_noop": head["noop_await"]["rps"] / head["noop"]["rps"],
        "ratio_hit_vs_noop_post": head["hit"]["rps"] / head["noop_post"]["rps"],
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
