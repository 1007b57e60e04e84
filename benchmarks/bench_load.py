"""Live load test with Locust: latency by processing type under a realistic request mix, and
the largest number of users the service holds at p95 <= 50 ms with errors < 0.1%.

    python benchmarks/bench_load.py --json benchmarks/out/load.json [--quick] [--url URL]
    python benchmarks/bench_load.py --json OUT --sessions 10000 [--sessions-users 200]
    python benchmarks/bench_load.py --json OUT --plan-from [--plan-users 100,1000,10000]

Without --url it starts its own echo-ray (`tests.support.live_app.start_live_app`: a Ray head
on free ports in a private temp dir, deployments/serve_config.yaml deployed through the CLI)
and stops it, by its process group, at the end; it then also records the running replicas
of each step from the Ray dashboard.

Virtual users (Locust, headless, in this process) each create a session, then send requests
with a think time between them (uniform in [0.5, 1.5] x --think-s). The mix (MIX) covers the
six processing types, memory store and retrieve included; stateless requests repeat a popular
body with probability HIT_SHARE (a result-cache hit once computed) and are otherwise a fresh
variant (a miss); memory retrieves repeat the user's own queries (hits until the user's next
store or evolution changes the session). Step load: users go up by STEPS; each step is
measured after its users have started, and stepping stops after two steps in a row that
miss p95 <= 50 ms (over all requests) or errors < 0.1% (one slow outlier in a short step
does not end the run), three steps at least (sim_vs_live compares three load levels). The
load generator shares the machine with the service: on a busy machine the figures are
pessimistic.

sim_vs_live: the closed-loop model of these users (echo_ray.sim.loadmodel) is calibrated from
the first step's answers (cache hits: the front's time; misses: each type's worker time; the
front processes' CPU per request, less their idle CPU: the part of the front's time that
queues). That step is measured only after its users have run --settle-s (the replicas and
membrane groups the first load wakes start and stop meanwhile), and it runs on until every
type has --calibration-misses misses (at most 4 step lengths). The model
predicts every step's p95 and throughput with the replicas that step ran; `echo-ray
calibrate`'s sequential times calibrate it a second time, for comparison. The plan sizes the
replicas and nodes for --plan-users at p95 <= 50 ms with that model.

--sessions N: N idle sessions (one stored memory item each) are created, then
--sessions-users users send the mix for --sessions-minutes; the sessions alive are sampled
every 10 s and the store's disk and the replicas' memory are measured before and after.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support: the live-app harness the benchmark starts

P95_TARGET_MS = 50.0
MAX_ERROR_RATE = 0.001
HIT_SHARE = 0.7
# Relative weights of the requests a user sends after creating its session.
MIX = {"memory_retrieve": 30, "memory_store": 10, "reasoning": 20, "grammar": 10,
       "agent_evaluation": 10, "multi_modal": 15, "membrane_evolution": 5}
STEPS = (5, 10, 20, 40, 80, 160, 320)
QUICK_STEPS = (2, 4, 8, 16)
WORDS = ("echo", "tree", "state", "reservoir", "membrane", "readout", "grammar", "signal")


def stateless_body(kind: str, rng: random.Random, popular: bool) -> dict:
    """The type's calibration request (echo_ray.sim.calibrate), or a fresh variant of it."""
    from echo_ray.sim.calibrate import DEFAULT_REQUESTS

    body = json.loads(json.dumps(DEFAULT_REQUESTS[kind]))
    if popular:
        return body
    x = round(rng.random(), 6)
    if kind == "reasoning":
        body["series"][0] = x
    elif kind == "grammar":
        body["strings"].append("".join(rng.choice("ab") for _ in range(6)))
    elif kind == "agent_evaluation":
        body["examples"][0]["scores"]["speed"] = x
    elif kind == "multi_modal":
        body["samples"][0]["x"]["series"][0][0] = x
    return body


def make_user(think_s: float, seed: int, keep_alive: bool = True):
    """The Locust user class (built here so importing this module imports no Locust).
    `keep_alive=False`: a new connection per request (`Connection: close`), for think times
    longer than the proxy's keep-alive (Serve's `keep_alive_timeout_s`, 5 s in
    deployments/serve_config.yaml), where a request sent as the proxy closes the idle
    connection fails with a reset (status 0)."""
    from locust import between, task
    from locust.contrib.fasthttp import FastHttpUser

    from echo_ray.settings import get_settings

    names, weights = list(MIX), list(MIX.values())
    counter = iter(range(1 << 30))

    class EchoUser(FastHttpUser):
        wait_time = between(0.5 * think_s, 1.5 * think_s)
        hits: dict[str, list[int]] = {}  # name -> [hits, answers]; shared by all users
        samples: list[tuple[str, bool, float]] = []  # (name, cached, ms) of each answer

        def on_start(self):
            self.rng = random.Random(seed * 100_003 + next(counter))
            self.headers = get_settings().service.client_headers()
            if not keep_alive:
                self.headers = {**self.headers, "Connection": "close"}
            self.sid = None
            with self.client.post("/v1/sessions", name="session_create", headers=self.headers,
                                  catch_response=True) as r:
                if r.status_code == 201:
                    self.sid = r.json()["session_id"]
                else:
                    r.failure(f"HTTP {r.status_code}")
            self.queries: list[str] = []
            if self.sid:
                self.send("memory_store")

        @task
        def one(self):
            if self.sid is None:
                return self.on_start()
            self.send(self.rng.choices(names, weights)[0])

        def send(self, name: str):
            rng, sid = self.rng, self.sid
            if name == "memory_store":
                text = " ".join(rng.choice(WORDS) for _ in range(3)) + f" {rng.random():.6f}"
                self.queries = (self.queries + [text])[-4:]
                kind, body = "memory", {"session_id": sid, "input": {
                    "op": "store", "items": [{"text": text}]}}
            elif name == "memory_retrieve":
                query = rng.choice(self.queries) if self.queries else "echo"
                kind, body = "memory", {"session_id": sid, "input": {
                    "op": "retrieve", "query": {"text": query}, "k": 3}}
            elif name == "membrane_evolution":
                kind, body = name, {"session_id": sid, "input": {"steps": 5}}
            else:
                kind = name
                body = {"input": stateless_body(name, rng, rng.random() < HIT_SHARE)}
            t0 = time.perf_counter()
            with self.client.post(f"/v1/{kind}", json=body, name=name, headers=self.headers,
                                  catch_response=True) as r:
                if r.status_code != 200:
                    r.failure(f"HTTP {r.status_code}: {(r.text or '')[:120]}")
                    return
                cached = bool(r.json().get("cached"))
                count = EchoUser.hits.setdefault(name, [0, 0])
                count[0] += cached
                count[1] += 1
                EchoUser.samples.append((name, cached, (time.perf_counter() - t0) * 1000))

    return EchoUser


def snapshot(env, seconds: float) -> dict:
    """Latency by request name and overall, errors and throughput, of the stats since reset."""
    def row(entry) -> dict:
        return {"requests": entry.num_requests, "failures": entry.num_failures,
                "p50_ms": entry.get_response_time_percentile(0.50),
                "p95_ms": entry.get_response_time_percentile(0.95),
                "p99_ms": entry.get_response_time_percentile(0.99),
                "mean_ms": entry.avg_response_time}

    total = env.stats.total
    by_type = {name: row(entry) for (name, _), entry in sorted(env.stats.entries.items())
               if entry.num_requests}
    n = total.num_requests
    return {"by_type": by_type, "all": row(total),
            "error_rate": total.num_failures / n if n else 1.0,
            "rps": n / seconds,
            "errors": {f"{e.name}: {e.error}": e.occurrences
                       for e in env.stats.errors.values()}}


def warm_up(base_url: str) -> None:
    """One request of each type, popular body and a variant, before anything is measured: the
    first request of a type builds its engine on the workers (seconds, once per replica)."""
    import httpx

    from echo_ray.settings import get_settings

    rng = random.Random(-1)
    with httpx.Client(base_url=base_url, headers=get_settings().service.client_headers(), timeout=300) as client:
        sid = client.post("/v1/sessions").raise_for_status().json()["session_id"]
        client.post("/v1/memory", json={"session_id": sid, "input": {
            "op": "store", "items": [{"text": "warm up"}]}}).raise_for_status()
        client.post("/v1/membrane_evolution", json={
            "session_id": sid, "input": {"steps": 5}}).raise_for_status()
        for kind in ("reasoning", "grammar", "agent_evaluation", "multi_modal"):
            for popular in (True, False):
                client.post(f"/v1/{kind}", json={"input": stateless_body(
                    kind, rng, popular)}).raise_for_status()
        client.delete(f"/v1/sessions/{sid}")


def replica_details(dashboard: str, headers: dict, client=None) -> dict[str, list[dict]]:
    """Replicas per deployment, from the Ray dashboard's Serve REST API. Pass a reused
    `client` from inside a measured step: a new httpx client builds an SSL context, 30-100 ms
    of CPU that stalls Locust's event loop and every request in flight (700 ms the first
    time)."""
    import httpx

    r = (client or httpx).get(f"{dashboard}/api/serve/applications/", headers=headers,
                              timeout=10)
    r.raise_for_status()
    return {name: dep.get("replicas", []) for app in r.json().get("applications", {}).values()
            for name, dep in app.get("deployments", {}).items()}


def running_replicas(dashboard: str, headers: dict, client=None) -> dict[str, int]:
    """RUNNING replicas per deployment."""
    return {name: sum(rep.get("state") == "RUNNING" for rep in reps)
            for name, reps in replica_details(dashboard, headers, client).items()}


def replicas_rss_bytes(dashboard: str | None, headers: dict) -> dict[str, int]:
    """Resident memory of the running replicas, by deployment (this machine's only)."""
    if not dashboard:
        return {}
    out: dict[str, int] = {}
    for name, reps in replica_details(dashboard, headers).items():
        for rep in reps:
            try:
                status = Path(f"/proc/{int(rep['pid'])}/status").read_text()
            except (OSError, KeyError, TypeError, ValueError):
                continue
            kb = next(int(line.split()[1]) for line in status.splitlines()
                      if line.startswith("VmRSS:"))
            out[name] = out.get(name, 0) + kb * 1024
    return out


def front_cpu_s(dashboard: str | None, headers: dict, client=None) -> float | None:
    """CPU seconds used so far by the front: the HTTP proxy and the ingress replicas of the
    echo-ray this benchmark started (its own child processes; None for a --url app or when
    none is found). Per request, the part of a cache hit's latency that holds the front."""
    if not dashboard:
        return None
    import psutil

    pids = {int(rep["pid"]) for rep in replica_details(dashboard, headers, client).get(
        "IngressImpl", []) if rep.get("pid")}
    total, found = 0.0, False
    for p in psutil.Process().children(recursive=True):
        try:
            if p.pid in pids or "ProxyActor" in " ".join(p.cmdline()[:1]):
                t = p.cpu_times()
                total += t.user + t.system
                found = True
        except psutil.Error:
            pass
    return total if found else None


def machine_busy_s() -> float:
    """CPU-seconds the machine's cores have spent busy: every process, this one's load
    generator included."""
    import psutil

    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


def dir_bytes(path: Path | None) -> int:
    """Bytes of the files under `path` (0 if there is none)."""
    if path is None or not path.exists():
        return 0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class ReplicaSampler:
    """Samples the running replicas every `period_s` in a greenlet while a step runs."""

    def __init__(self, dashboard: str | None, headers: dict, period_s: float = 2.0):
        self.dashboard, self.headers, self.period_s = dashboard, headers, period_s
        self.samples: list[dict[str, int]] = []
        self._greenlet = None
        self._client = None
        if dashboard:  # one client, warmed up here, outside every measured step
            import httpx

            self._client = httpx.Client()
            try:
                running_replicas(dashboard, headers, self._client)
            except Exception:
                pass

    def __enter__(self):
        import gevent

        self.samples = []
        if self.dashboard:
            self._greenlet = gevent.spawn(self._loop)
        return self

    def _loop(self):
        import gevent

        while True:
            try:
                self.samples.append(running_replicas(self.dashboard, self.headers,
                                                     self._client))
            except Exception:  # a missed sample is not a failed step
                pass
            gevent.sleep(self.period_s)

    def __exit__(self, *exc):
        if self._greenlet is not None:
            self._greenlet.kill()

    def front_cpu_s(self) -> float | None:
        try:
            return front_cpu_s(self.dashboard, self.headers, self._client)
        except Exception:  # no figure rather than a failed step
            return None

    def summary(self) -> dict:
        names = sorted({n for s in self.samples for n in s})
        return {n: {"min": min(s.get(n, 0) for s in self.samples),
                    "mean": sum(s.get(n, 0) for s in self.samples) / len(self.samples),
                    "max": max(s.get(n, 0) for s in self.samples)} for n in names}


def calibration_counts(samples: list) -> dict[str, int]:
    """Misses per calibrated type, and hits (`cache_hit`), among a step's answers."""
    counts = dict.fromkeys(set(KIND_OF.values()) | {"cache_hit"}, 0)
    for name, cached, _ in samples:
        counts["cache_hit" if cached else KIND_OF[name]] += 1
    return counts


def run_steps(base_url: str, steps, step_s: float, think_s: float, seed: int,
              sampler: ReplicaSampler | None = None,
              calibration_misses: int = 0, settle_s: float = 0.0) -> list[dict]:
    import gevent
    from locust.env import Environment

    sampler = sampler or ReplicaSampler(None, {})

    user = make_user(think_s, seed)
    env = Environment(user_classes=[user], host=base_url)
    runner = env.create_local_runner()
    rows = []
    # the front's and the machine's CPU while no user sends anything (Serve's health checks
    # and metrics, Ray's own threads, the replica sampler, other tenants), taken off each
    # step's, so that what is left is the requests' own
    idle_s, idle0, idle_rate = 10.0, sampler.front_cpu_s(), None
    busy0 = machine_busy_s()
    with sampler:
        gevent.sleep(idle_s)
    machine_idle = (machine_busy_s() - busy0) / idle_s
    if idle0 is not None:
        idle1 = sampler.front_cpu_s()
        idle_rate = (idle1 - idle0) / idle_s if idle1 is not None else None
    try:
        for users in steps:
            runner.start(users, spawn_rate=max(users, 1))
            deadline = time.monotonic() + 60
            while runner.user_count < users and time.monotonic() < deadline:
                gevent.sleep(0.2)
            # new users' sessions and first stores; before the first step, which calibrates
            # the model, also the replicas and membrane groups the load starts or stops
            gevent.sleep(max(min(2 * think_s, 5.0), 0.0 if rows else settle_s))
            env.stats.reset_all()
            user.hits.clear()
            user.samples.clear()
            cpu0 = sampler.front_cpu_s()
            busy0 = machine_busy_s()
            t0 = time.monotonic()
            with sampler:
                gevent.sleep(step_s)
                # the first step calibrates the model: it runs on until every type has
                # `calibration_misses` misses and as many hits (at most 3 more step lengths)
                while (not rows and calibration_misses and time.monotonic() - t0 < 4 * step_s
                       and min(calibration_counts(user.samples).values()) < calibration_misses):
                    gevent.sleep(1.0)
            row = {"users": users, **snapshot(env, time.monotonic() - t0),
                   "replicas": sampler.summary()}
            busy = (machine_busy_s() - busy0) / (time.monotonic() - t0)
            cpu1 = sampler.front_cpu_s()
            answered = row["all"]["requests"]
            row["seconds"] = round(time.monotonic() - t0, 1)
            row["machine"] = {  # the cores that service and load generator share
                "cores": os.cpu_count() or 1, "busy_cores": busy, "idle_busy_cores": machine_idle,
                "cpu_ms_per_request": (1000 * max(0.0, busy - machine_idle) * row["seconds"]
                                       / answered if answered else None)}
            row["front_cpu_ms"] = (
                1000 * max(0.0, cpu1 - cpu0 - idle_rate * row["seconds"]) / answered
                if None not in (cpu0, cpu1, idle_rate) and answered else None)
            row["front_idle_cpu"] = idle_rate  # CPU-seconds per second, subtracted above
            hits = sum(h for h, _ in user.hits.values())
            answers = sum(n for _, n in user.hits.values())
            row["cache_hit_ratio"] = hits / answers if answers else 0.0
            row["hits_by_type"] = {k: list(v) for k, v in user.hits.items()}
            row["_samples"] = list(user.samples)  # calibrates the model; not in the JSON
            row["load_average_1m"] = os.getloadavg()[0]  # the machine, shared with others
            row["passed"] = (row["all"]["requests"] > 0
                             and row["all"]["p95_ms"] <= P95_TARGET_MS
                             and row["error_rate"] < MAX_ERROR_RATE)
            rows.append(row)
            workers = row["replicas"].get("CognitiveWorker")
            print(f"users {users:4d}: {row['rps']:6.1f} req/s  p50 {row['all']['p50_ms']:.0f} "
                  f"p95 {row['all']['p95_ms']:.0f} p99 {row['all']['p99_ms']:.0f} ms  "
                  f"errors {row['error_rate']:.2%}  hits {row['cache_hit_ratio']:.0%}  "
                  + (f"workers {workers['min']}-{workers['max']}  " if workers else "")
                  + (f"front CPU {row['front_cpu_ms']:.1f} ms/req  "
                     if row["front_cpu_ms"] is not None else "")
                  + f"machine {busy:.2f} cores busy  "
                  + f"{row['seconds']:.0f} s  load {row['load_average_1m']:.0f}  "
                  + f"{'ok' if row['passed'] else 'over target'}", flush=True)
            if len(rows) >= 3 and not (rows[-1]["passed"] or rows[-2]["passed"]):
                break  # two steps in a row over target: past the knee (3 levels at least)
    finally:
        runner.quit()
    return rows


# The calibrated processing type behind each request name of MIX (echo-ray calibrate times
# the stateless example of each type; a session's store/retrieve costs about the same).
KIND_OF = {"memory_retrieve": "memory", "memory_store": "memory", "reasoning": "reasoning",
           "grammar": "grammar", "agent_evaluation": "agent_evaluation",
           "multi_modal": "multi_modal", "membrane_evolution": "membrane_evolution"}
SIM_TOLERANCE = 0.2


def measured_hit_share(rows: list[dict]) -> dict[str, float]:
    """Share of answers served from the result cache, by request name, over every step."""
    total: dict[str, list[int]] = {}
    for row in rows:
        for name, (h, n) in row.get("hits_by_type", {}).items():
            t = total.setdefault(name, [0, 0])
            t[0] += h
            t[1] += n
    return {name: h / n for name, (h, n) in total.items() if n}


def calibration_from_step(row: dict, fallback: dict | None = None) -> dict:
    """A calibration document (echo_ray.sim.loadmodel) from one live step's answers: the
    cache hits' latencies for the front, each type's misses for its worker time. A type with
    no miss in the step takes `fallback`'s times (echo-ray calibrate's), else every miss's."""
    from echo_ray.sim.service import summarise_latencies

    hits = [ms for _, cached, ms in row["_samples"] if cached]
    types: dict[str, list[float]] = {}
    for name, cached, ms in row["_samples"]:
        if not cached:
            types.setdefault(KIND_OF[name], []).append(ms)
    pooled = [ms for v in types.values() for ms in v]
    for kind in set(KIND_OF.values()) - set(types):
        seq = ((fallback or {}).get("types", {}).get(kind) or {}).get("latency_ms")
        types[kind] = list(seq or pooled)
    return {"method": f"the live load test's step of {row['users']} users",
            "types": {k: {"latency_ms": v, **summarise_latencies(v)} for k, v in types.items()},
            "cache_hit": {"latency_ms": hits, **summarise_latencies(hits)},
            "front_cpu_ms": row.get("front_cpu_ms")}


def sim_vs_live(calibration: dict, rows: list[dict], think_s: float, seed: int,
                sequential: dict | None = None, duration_s: float = 300.0):
    """The calibrated closed-loop model (echo_ray.sim.loadmodel) at each step's users, with
    the replicas that step ran (their mean, rounded), against the live figures. `sequential`
    (an `echo-ray calibrate` document) adds the same model calibrated from it."""
    from echo_ray.sim.loadmodel import LoadModel, simulate_users

    shares = measured_hit_share(rows)
    model = LoadModel.from_calibration(calibration, MIX, shares, KIND_OF, think_s)
    other = (LoadModel.from_calibration(sequential, MIX, shares, KIND_OF, think_s)
             if sequential else None)
    out = []
    for row in rows:
        workers = row.get("replicas", {}).get("CognitiveWorker", {}).get("mean", 1.0)
        fronts = row.get("replicas", {}).get("IngressImpl", {}).get("mean", 1.0)
        shape = (row["users"], max(1, round(workers)), max(1, round(fronts)))
        sim = simulate_users(model, *shape, duration_s=duration_s, seed=seed)
        live_p95, live_rps = row["all"]["p95_ms"], row["rps"]
        entry = {"users": row["users"], "live_p95_ms": live_p95, "sim_p95_ms": sim["p95_ms"],
                 "live_rps": live_rps, "sim_rps": sim["rps"],
                 "live_p50_ms": row["all"]["p50_ms"], "sim_p50_ms": sim["p50_ms"],
                 "worker_replicas": shape[1], "front_replicas": shape[2],
                 "p95_within_20pct": abs(sim["p95_ms"] - live_p95) <= SIM_TOLERANCE * live_p95,
                 "rps_within_20pct": abs(sim["rps"] - live_rps) <= SIM_TOLERANCE * live_rps}
        if other is not None:
            seq = simulate_users(other, *shape, duration_s=duration_s, seed=seed)
            entry.update(sim_sequential_p95_ms=seq["p95_ms"], sim_sequential_rps=seq["rps"])
        out.append(entry)
    return out, model


def fill_sessions(base_url: str, n: int, concurrency: int = 16,
                  keep_alive: bool = True) -> dict:
    """Create `n` sessions, each holding one stored memory item; returns the time taken and
    the failures (Locust's gevent runs the requests concurrently)."""
    import gevent.pool
    import httpx

    from echo_ray.settings import get_settings

    failures: dict[str, int] = {}
    t0 = time.monotonic()
    headers = get_settings().service.client_headers()
    if not keep_alive:
        headers = {**headers, "Connection": "close"}
    with httpx.Client(base_url=base_url, headers=headers,
                      timeout=120, limits=httpx.Limits(max_connections=concurrency)) as c:
        def one(i: int) -> None:
            try:
                r = c.post("/v1/sessions")
                r.raise_for_status()
                sid = r.json()["session_id"]
                c.post("/v1/memory", json={"session_id": sid, "input": {
                    "op": "store", "items": [{"text": f"idle session {i} {WORDS[i % len(WORDS)]}"}]}}
                       ).raise_for_status()
            except Exception as exc:
                key = f"{type(exc).__name__}: {str(exc)[:80]}"
                failures[key] = failures.get(key, 0) + 1

        gevent.pool.Pool(concurrency).map(one, range(n))
    return {"created": n - sum(failures.values()), "seconds": time.monotonic() - t0,
            "failures": failures}


def sessions_run(base_url: str, n: int, users: int, minutes: float, think_s: float,
                 seed: int, dashboard: str | None, dash_headers: dict,
                 store_dir: Path | None, keep_alive: bool = True) -> dict:
    """`n` idle sessions (one memory item each) alive in the store while `users` Locust users
    send the mix for `minutes`; the sessions alive sampled every 10 s, the store's disk and
    the replicas' resident memory before and after the fill."""
    import gevent
    from locust.env import Environment

    before = {"disk_bytes": dir_bytes(store_dir),
              "rss_bytes": replicas_rss_bytes(dashboard, dash_headers),
              "sessions": sessions_alive(base_url)}
    fill = fill_sessions(base_url, n, keep_alive=keep_alive)
    print(f"created {fill['created']} sessions in {fill['seconds']:.0f}s "
          f"({len(fill['failures'])} kinds of failure)", flush=True)
    filled = {"disk_bytes": dir_bytes(store_dir),
              "rss_bytes": replicas_rss_bytes(dashboard, dash_headers),
              "sessions": sessions_alive(base_url)}
    user = make_user(think_s, seed, keep_alive)
    env = Environment(user_classes=[user], host=base_url)
    runner = env.create_local_runner()
    alive: list[int] = []
    sampler = ReplicaSampler(dashboard, dash_headers, period_s=10.0)
    try:
        runner.start(users, spawn_rate=max(1, users // 10))
        deadline = time.monotonic() + 120
        while runner.user_count < users and time.monotonic() < deadline:
            gevent.sleep(0.5)
        gevent.sleep(min(2 * think_s, 10.0))
        env.stats.reset_all()
        t0 = time.monotonic()
        end = t0 + minutes * 60
        with sampler:
            while time.monotonic() < end:
                gevent.sleep(min(10.0, max(0.0, end - time.monotonic())))
                try:
                    alive.append(sessions_alive(base_url))
                except Exception:
                    alive.append(0)  # the count did not answer: counted as nothing alive
                print(f"  {time.monotonic() - t0:4.0f}s: {alive[-1]} sessions alive, "
                      f"{env.stats.total.num_requests} requests, "
                      f"{env.stats.total.num_failures} failures", flush=True)
        stats = snapshot(env, time.monotonic() - t0)
    finally:
        runner.quit()
    after = {"disk_bytes": dir_bytes(store_dir),
             "rss_bytes": replicas_rss_bytes(dashboard, dash_headers),
             "sessions": sessions_alive(base_url)}
    added = max(1, filled["sessions"] - before["sessions"])
    rss_delta = {k: filled["rss_bytes"].get(k, 0) - before["rss_bytes"].get(k, 0)
                 for k in filled["rss_bytes"]}
    return {"sessions_requested": n, "users": users, "minutes": minutes, "think_s": think_s,
            "keep_alive": keep_alive,
            "fill": fill, "before": before, "filled": filled, "after": after,
            "sessions_alive_min": min(alive) if alive else 0, "alive_samples": alive,
            "disk_bytes_per_session": (filled["disk_bytes"] - before["disk_bytes"]) / added,
            "rss_bytes_per_session": {k: v / added for k, v in rss_delta.items()},
            "store_dir": str(store_dir) if store_dir else None,
            "replicas": sampler.summary(), **stats}


PLAN_USERS = (100, 1000, 10_000)


def plan_calibration(sim_rows: list[dict]) -> str:
    """Which calibration the plan uses: the one whose model came closer to the live p95
    over the steps ("first step" or "sequential", `sim_vs_live`'s two columns). Neither is
    right by construction: the first step's times carry the machine as it was (the load
    generator included), echo-ray calibrate's leave out all concurrency; the live steps
    decide."""
    def error(key: str) -> float:
        errs = [abs(r[key] - r["live_p95_ms"]) / r["live_p95_ms"] for r in sim_rows
                if r.get(key) is not None and r.get("live_p95_ms")]
        return sum(errs) / len(errs) if errs else math.inf
    if error("sim_sequential_p95_ms") < error("sim_p95_ms"):
        return "sequential"
    return "first step"


def plan_for(model, users_list, seed: int) -> list[dict]:
    """Replicas and nodes the calibrated model needs for p95 <= 50 ms at each user count."""
    from echo_ray.sim.loadmodel import plan_replicas

    out = []
    for users in users_list:
        t0 = time.monotonic()
        row = plan_replicas(model, users, P95_TARGET_MS, seed=seed)
        out.append(row)
        print(f"plan, {users} users: {row['worker_replicas']} worker + {row['front_replicas']} "
              f"front replicas, {row['nodes']} nodes of 4 CPUs, p95 {row['p95_ms']:.0f} ms "
              f"(planned for {row['planned_for_ms']:.0f}; idle floor {row['p95_floor_ms']:.0f}), "
              f"{row['rps']:.0f} req/s ({time.monotonic() - t0:.0f}s)", flush=True)
    return out


def plot_plan(plan: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    users = [r["users"] for r in plan]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(users, [r["worker_replicas"] for r in plan], marker="o", label="worker replicas")
    ax.plot(users, [r["front_replicas"] for r in plan], marker="s", label="front replicas")
    ax.plot(users, [r["nodes"] for r in plan], marker="^", label="nodes (4 CPUs)")
    for r in plan:
        ax.annotate(f"p95 {r['p95_ms']:.0f} ms (floor {r['p95_floor_ms']:.0f})",
                    (r["users"], r["worker_replicas"]),
                    textcoords="offset points", xytext=(-30, 8), fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("concurrent users (bench_load mix, 1 s think time)")
    ax.set_ylabel("count")
    infeasible = [r for r in plan if not r["feasible"]]
    ax.set_title("replicas for p95 <= 50 ms, calibrated closed-loop model" if not infeasible
                 else "replicas for p95 <= 1.2 x the idle floor (50 ms is below it)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plan_from(load_json: Path, users_list, seed: int, png: Path | None) -> dict:
    """Add the plan to a load JSON already written (its calibration and hit shares)."""
    from echo_ray.sim.loadmodel import LoadModel

    doc = json.loads(load_json.read_text())
    sm = doc["sim_model"]
    raw = json.loads(Path(sm["calibration"]).read_text())
    which = plan_calibration(doc.get("sim_vs_live") or [])
    calibration = raw["sequential"] if which == "sequential" else raw
    model = LoadModel.from_calibration(calibration, doc["config"]["mix"], sm["hit_share"],
                                       sm["kind_of"], sm["think_s"])
    doc["plan"] = plan_for(model, users_list, seed)
    doc["plan_calibration"] = which
    if png is not None:
        plot_plan(doc["plan"], png)
        doc["plan_plot"] = str(png)
    load_json.write_text(json.dumps(doc, indent=2))
    return doc


def sessions_alive(base_url: str) -> int:
    import httpx

    from echo_ray.settings import get_settings

    r = httpx.get(f"{base_url}/v1/stats", headers=get_settings().service.client_headers(), timeout=60)
    r.raise_for_status()
    return int(r.json().get("sessions", {}).get("active", 0))


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    users = [r["users"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4))
    for q in ("p50_ms", "p95_ms", "p99_ms"):
        ax.plot(users, [r["all"][q] for r in rows], marker="o", label=q.split("_")[0])
    ax.axhline(P95_TARGET_MS, color="grey", linestyle="--", label="50 ms")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent users")
    ax.set_ylabel("latency (ms), all requests")
    ax.set_title("echo-ray under the bench_load mix")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def summarise(rows: list[dict], cores: int, alive: int, url: str, args) -> dict:
    passed = [r for r in rows if r["passed"]]
    head = passed[-1] if passed else rows[0]
    best = head["users"] if passed else 0
    return {
        "users_at_p95_50ms": best,
        "users_per_core": best / cores,
        "p95_ms": {name: r["p95_ms"] for name, r in head["by_type"].items()},
        "p50_ms": {name: r["p50_ms"] for name, r in head["by_type"].items()},
        "p99_ms": {name: r["p99_ms"] for name, r in head["by_type"].items()},
        "mean_ms": head["all"]["mean_ms"],
        "error_rate": head["error_rate"],
        "rps": head["rps"],
        "rps_per_core": head["rps"] / cores,
        "cache_hit_ratio": head["cache_hit_ratio"],
        "headline_users": head["users"],
        "sim_vs_live": getattr(args, "sim_rows", []),
        "sessions_alive": alive,
        "steps": rows,
        "config": {"url": url, "app_args": args.app_args, "think_s": args.think_s,
                   "step_seconds": args.step_seconds, "settle_s": args.settle_s,
                   "calibration_misses": args.calibration_misses,
                   "mix": MIX, "hit_share": HIT_SHARE, "p95_target_ms": P95_TARGET_MS,
                   "max_error_rate": MAX_ERROR_RATE, "seed": args.seed},
        "machine": {"cpus": cores, "load_average_end": list(os.getloadavg()),
                    "note": "load generator and service share these cores"},
    }


def main(argv=None) -> int:
    import locust  # noqa: F401  (first: Locust patches the standard library with gevent)

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", required=True)
    ap.add_argument("--url", help="a running echo-ray (default: start one, stop it at the end)")
    ap.add_argument("--dashboard", help="its Ray dashboard, to record the running replicas "
                    "per step (default: the started one's; none with --url)")
    ap.add_argument("--quick", action="store_true", help="fewer, shorter steps (< 5 minutes)")
    ap.add_argument("--steps", help="comma-separated users per step (default: STEPS)")
    ap.add_argument("--step-seconds", type=float, help="measured seconds per step")
    ap.add_argument("--think-s", type=float, default=1.0, help="mean think time per user")
    ap.add_argument("--plot", help="latency-vs-users PNG (default: next to --json)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sessions", type=int, default=0, help="sessions mode: create this many "
                    "idle sessions, then run --sessions-users users for --sessions-minutes "
                    "(no step load)")
    ap.add_argument("--sessions-users", type=int, default=200)
    ap.add_argument("--sessions-minutes", type=float,
                    help="minutes of the sessions mode's load (default 10, --quick 1)")
    ap.add_argument("--sessions-think-s", type=float, default=10.0,
                    help="mean think time of the active users in sessions mode")
    ap.add_argument("--no-keep-alive", action="store_true", help="sessions mode: a new "
                    "connection per request (think times past the proxy's keep-alive)")
    ap.add_argument("--app-args", help="JSON of settings sections over the started app's "
                    "(e.g. '{\"service\": {\"worker_warm_up\": false}}')")
    ap.add_argument("--store-dir", help="the embedded session store's folder, to measure its "
                    "disk use (default: the started app's)")
    ap.add_argument("--plan-users", help="comma-separated user counts to size from the "
                    "calibrated model (default 100,1000,10000; --quick: none)")
    ap.add_argument("--plan-from", action="store_true", help="no live run: add the plan to "
                    "the --json a previous run wrote")
    ap.add_argument("--calibrate-n", type=int, help="requests per type of `echo-ray calibrate` "
                    "before the steps, a second calibration of the model beside the first "
                    "step's (default 20, --quick 10; 0: none)")
    ap.add_argument("--calibration-misses", type=int, help="the first step, which calibrates "
                    "the model, runs on until every type has this many misses and the cache "
                    "this many hits, up to 4 step lengths (default 30, --quick 10; 0: no more "
                    "than the other steps)")
    ap.add_argument("--settle-s", type=float, help="seconds the first step's users run "
                    "before it is measured, so that the autoscalers it wakes have settled "
                    "(default 90, --quick 10)")
    args = ap.parse_args(argv)
    if args.settle_s is None:
        args.settle_s = 10.0 if args.quick else 90.0
    if args.calibration_misses is None:
        args.calibration_misses = 10 if args.quick else 30
    steps = [int(s) for s in args.steps.split(",")] if args.steps else list(
        QUICK_STEPS if args.quick else STEPS)
    args.step_seconds = args.step_seconds or (15.0 if args.quick else 60.0)
    if args.sessions_minutes is None:
        args.sessions_minutes = 1.0 if args.quick else 10.0
    cores = os.cpu_count() or 1
    plan_users = ([int(u) for u in args.plan_users.split(",") if u] if args.plan_users
                  is not None else ([] if args.quick else list(PLAN_USERS)))
    if args.plan_from:
        path = Path(args.json)
        png = Path(args.plot) if args.plot else path.with_name(path.stem + "_plan.png")
        plan_from(path, plan_users or list(PLAN_USERS), args.seed, png)
        print(f"wrote the plan into {path} and {png}")
        return 0

    app = None
    url, dashboard, dash_headers = args.url, args.dashboard, {}
    if url is None:
        from tests.support.live_app import start_live_app

        t0 = time.monotonic()
        # Sessions mode: room for the idle sessions and the users' own, above the default.
        app_args = json.loads(args.app_args) if args.app_args else {}
        if args.sessions:
            app_args.setdefault("sessions", {})["max_sessions"] = (
                args.sessions + args.sessions_users + 1000)
        app = start_live_app(tracing=False, app_args=app_args or None)
        url = app.base_url
        dashboard, dash_headers = app.cluster.dashboard_url, app.cluster.auth_headers()
        print(f"started echo-ray on {url} in {time.monotonic() - t0:.0f}s", flush=True)
    elif dashboard:
        from echo_ray.settings import get_settings

        token = get_settings().cluster.ray_auth_token()  # what Ray's dashboard wants
        dash_headers = {"Authorization": f"Bearer {token}"} if token else {}
    sampler = ReplicaSampler(dashboard, dash_headers)
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    calib_n = args.calibrate_n if args.calibrate_n is not None else (10 if args.quick else 20)
    calibration = None
    try:
        t0 = time.monotonic()
        warm_up(url.rstrip("/"))
        print(f"warmed up in {time.monotonic() - t0:.0f}s", flush=True)
        if args.sessions:
            store = (Path(args.store_dir) if args.store_dir else
                     app.cluster.temp_dir / "data" / "sessions" if app else None)
            run = sessions_run(url.rstrip("/"), args.sessions, args.sessions_users,
                               args.sessions_minutes, args.sessions_think_s, args.seed,
                               dashboard, dash_headers, store, not args.no_keep_alive)
            doc = {"sessions_alive": run["sessions_alive_min"], "sessions_run": run,
                   "error_rate": run["error_rate"], "mean_ms": run["all"]["mean_ms"],
                   "p95_ms": {k: v["p95_ms"] for k, v in run["by_type"].items()},
                   "machine": {"cpus": cores, "load_average": os.getloadavg()}}
            path.write_text(json.dumps(doc, indent=2))
            print(f"sessions alive (lowest sample): {doc['sessions_alive']}, errors "
                  f"{run['error_rate']:.3%} of {run['all']['requests']} requests, "
                  f"{run['rps']:.1f} req/s, p95 {run['all']['p95_ms']:.0f} ms; store disk "
                  f"{run['disk_bytes_per_session']:.0f} B/session; wrote {path}")
            return 0
        if calib_n > 0:
            from echo_ray.sim.loadmodel import calibrate_load

            t0 = time.monotonic()
            calibration = calibrate_load(url, path.with_suffix(".sequential.json"), calib_n)
            print(f"calibrated in {time.monotonic() - t0:.0f}s: uncached p50 " + ", ".join(
                f"{k} {v['p50_ms']:.0f}" for k, v in calibration["types"].items()
                if v.get("p50_ms") is not None)
                + f" ms; cache hit p50 {calibration['cache_hit']['p50_ms']:.0f} ms", flush=True)
        rows = run_steps(url.rstrip("/"), steps, args.step_seconds, args.think_s, args.seed,
                         sampler, args.calibration_misses, args.settle_s)
        alive = sessions_alive(url.rstrip("/"))
    finally:
        if app is not None:
            app.stop()
    args.sim_rows, model = [], None
    base = rows[0]
    if base["_samples"] and any(c for _, c, _ in base["_samples"]):
        # calibrated from the first (lightest) step, as the model's service times
        step_calibration = calibration_from_step(base, calibration)
        args.sim_rows, model = sim_vs_live(step_calibration, rows, args.think_s, args.seed,
                                           sequential=calibration)
        for r in args.sim_rows:
            print(f"sim vs live, {r['users']} users on {r['worker_replicas']} workers: p95 "
                  f"{r['sim_p95_ms']:.0f} vs {r['live_p95_ms']:.0f} ms, {r['sim_rps']:.1f} vs "
                  f"{r['live_rps']:.1f} req/s"
                  + (f" (calibrated sequentially: p95 {r['sim_sequential_p95_ms']:.0f} ms)"
                     if "sim_sequential_p95_ms" in r else ""), flush=True)
    # every answer of every step (request name, from the cache, ms): to recalibrate offline
    path.with_suffix(".samples.json").write_text(json.dumps(
        [{"users": row["users"], "samples": row.pop("_samples", [])} for row in rows]))
    out = summarise(rows, cores, alive, url, args)
    if model is not None:
        calib_path = path.with_suffix(".calibration.json")
        if calibration is not None:
            step_calibration["sequential"] = calibration  # echo-ray calibrate's, for reference
        calib_path.write_text(json.dumps(step_calibration, indent=1))
        out["sim_model"] = {"calibration": str(calib_path), "hit_share": dict(model.hit_share),
                            "kind_of": KIND_OF, "think_s": args.think_s,
                            "calibrated_from": step_calibration["method"]}
        if plan_users:
            which = plan_calibration(args.sim_rows)
            plan_model = model
            if which == "sequential":
                from echo_ray.sim.loadmodel import LoadModel

                plan_model = LoadModel.from_calibration(calibration, MIX, model.hit_share,
                                                        KIND_OF, args.think_s)
            out["plan_calibration"] = which
            out["plan"] = plan_for(plan_model, plan_users, args.seed)
            plot_plan(out["plan"], path.with_name(path.stem + "_plan.png"))
    png = Path(args.plot) if args.plot else path.with_suffix(".png")
    plot(rows, png)
    out["plot"] = str(png)
    path.write_text(json.dumps(out, indent=2))
    print(f"users at p95 <= {P95_TARGET_MS:.0f} ms and errors < {MAX_ERROR_RATE:.1%}: "
          f"{out['users_at_p95_50ms']} ({out['users_per_core']:.1f} per core); "
          f"p95 by type at {out['headline_users']} users: "
          + ", ".join(f"{k} {v:.0f}" for k, v in out["p95_ms"].items()) + " ms")
    print(f"wrote {path} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
