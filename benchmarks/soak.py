"""Soak: the cognitive app at ~70% of its measured capacity for 10 minutes.

    python benchmarks/soak.py --minutes 10 --json benchmarks/out/soak.json     (make soak)

Starts a private Ray cluster, a private redis-server (sessions in Redis behind the journal;
`--no-redis`: the embedded store) and the app with 2 worker replicas (fixed, so every process
lives through the whole run and its memory can be compared). Then:

1. capacity: closed loop at 8 clients for `--capacity-s` seconds with the soak's request mix;
2. soak: open-loop arrivals at `--load` x capacity (evenly spaced) for `--minutes`; sessions
   are checked out one request at a time (no self-inflicted conflicts) and replaced after 20
   stores (create/delete churn);
3. every 10 s: RSS of every process of the cluster (Ray's own, every actor, redis-server);
4. at the end: errors, RSS growth per process (median of the first three samples after the
   first minute vs the last three; target < 5%), actors alive that were not alive after the
   first minute, and actors still alive once the app is deleted (leaked; target 0; the
   detached scaling optimizer is kept by design).

The "competitor" of a soak is the same system earlier in the run: the figures are ratios of
the end of the run to its start (RSS, p50/p99 latency).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import psutil

from echo_ray.ops.deploy import wait_http_ready
from echo_ray.ops.localcluster import free_port
from echo_ray.waiting import wait_until

SAMPLE_EVERY_S = 10.0
POOL = 32  # sessions; at most one request per session at a time
ROTATE_AFTER = 20  # stores per session before it is deleted and replaced
MIX = [("store", 0.40), ("retrieve", 0.30), ("reasoning", 0.15), ("evolve", 0.10),
       ("stats", 0.05)]


# -- the workload ----------------------------------------------------------------------------
class Workload:
    def __init__(self, client: httpx.AsyncClient, seed: int = 0):
        self.client, self.rng = client, np.random.default_rng(seed)
        self.pool: asyncio.Queue = asyncio.Queue()
        self.stores: dict[str, int] = {}
        self.statuses: dict[str, int] = {}
        self.latencies: list[tuple[float, float]] = []  # (start, seconds) of 2xx answers
        self.series = np.sin(np.arange(60) / 3.0).round(6).tolist()

    async def setup(self) -> None:
        for _ in range(POOL):
            self.pool.put_nowait(await self._create())

    async def _create(self) -> str:
        r = await self._send("POST", "/v1/sessions")
        if r is None or r.status_code != 201:
            raise RuntimeError(f"could not create a session: {r and r.text}")
        sid = r.json()["session_id"]
        self.stores[sid] = 0
        return sid

    def _text(self) -> str:
        return "".join(chr(97 + c) for c in self.rng.integers(0, 26, int(self.rng.integers(8, 17))))

    async def _send(self, method: str, path: str, body=None):
        t = time.monotonic()
        try:
            r = await self.client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            key = type(exc).__name__
            self.statuses[key] = self.statuses.get(key, 0) + 1
            return None
        self.statuses[str(r.status_code)] = self.statuses.get(str(r.status_code), 0) + 1
        if r.status_code < 300:
            self.latencies.append((t, time.monotonic() - t))
        return r

    async def one(self) -> None:
        kind = MIX[int(self.rng.choice(len(MIX), p=[p for _, p in MIX]))][0]
        if kind == "stats":
            await self._send("GET", "/v1/stats")
            return
        if kind == "reasoning":
            await self._send("POST", "/v1/reasoning", {"input": {"series": self.series,
                                                                 "horizon": 3}})
            return
        sid = await self.pool.get()
        if kind == "retrieve" and not self.stores[sid]:
            kind = "store"  # (retrieving from an empty memory is a 422 by design)
        try:
            if kind == "store":
                await self._send("POST", "/v1/memory", {"session_id": sid, "input": {
                    "op": "store", "items": [{"text": self._text()}]}})
                self.stores[sid] += 1
                if self.stores[sid] >= ROTATE_AFTER:
                    await self._send("DELETE", f"/v1/sessions/{sid}")
                    self.stores.pop(sid)
                    sid = await self._create()
            elif kind == "retrieve":
                await self._send("POST", "/v1/memory", {"session_id": sid, "input": {
                    "op": "retrieve", "query": {"text": self._text()[:6]}, "k": 3}})
            else:
                await self._send("POST", "/v1/membrane_evolution",
                                 {"session_id": sid, "input": {"steps": 3, "reset": True}})
        finally:
            self.pool.put_nowait(sid)

    def errors(self) -> int:
        return sum(n for k, n in self.statuses.items() if not (k.isdigit() and int(k) < 300))


async def closed_loop(work: Workload, clients: int, seconds: float) -> float:
    stop = time.monotonic() + seconds
    done = 0

    async def client():
        nonlocal done
        while time.monotonic() < stop:
            await work.one()
            done += 1

    t0 = time.monotonic()
    await asyncio.gather(*(client() for _ in range(clients)))
    return done / (time.monotonic() - t0)


async def open_loop(work: Workload, rate: float, seconds: float, on_tick) -> dict:
    """Requests start every 1/rate s whatever the answers do; `on_tick()` every 10 s."""
    t0 = time.monotonic()
    tasks: set = set()
    sent, late, next_tick = 0, 0, t0
    while (now := time.monotonic()) - t0 < seconds:
        if now >= next_tick:
            on_tick(now - t0)
            next_tick += SAMPLE_EVERY_S
        due = t0 + sent / rate
        if due > now:
            await asyncio.sleep(min(due - now, max(0.0, next_tick - now)))
            continue
        late += (now - due) > 1.0
        task = asyncio.create_task(work.one())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        sent += 1
    await asyncio.gather(*tasks)
    on_tick(time.monotonic() - t0)
    return {"sent": sent, "started_over_1s_late": late}


# -- processes and actors --------------------------------------------------------------------
def actor_table() -> list[dict]:
    from ray._private import state

    return list(state.actors().values())


def process_labels() -> dict[int, str]:
    """pid -> a readable name: the actor it runs, or Ray's process name."""
    labels = {a["Pid"]: f"{a['ActorClassName']}" + (f" {a['Name']}" if a["Name"] else "")
              for a in actor_table() if a["State"] == "ALIVE" and a["Pid"]}
    out = {}
    for p in [psutil.Process()] + psutil.Process().children(recursive=True):
        try:
            out[p.pid] = labels.get(p.pid) or _process_name(p)
        except psutil.Error:
            pass
    return out


def _process_name(p: psutil.Process) -> str:
    """`raylet`, `gcs_server`, `ray::IDLE`, `python dashboard.py`, `redis-server`..."""
    cmd = p.cmdline()
    name = Path(cmd[0]).name if cmd else p.name()
    if name.startswith("python"):
        script = next((Path(a).name for a in cmd[1:] if a.endswith(".py")), None)
        module = cmd[cmd.index("-m") + 1] if "-m" in cmd[:-1] else None
        return f"python {script or module or ' '.join(cmd[1:3])}"
    return name


def rss_sample() -> dict[int, int]:
    out = {}
    for p in [psutil.Process()] + psutil.Process().children(recursive=True):
        try:
            out[p.pid] = p.memory_info().rss
        except psutil.Error:
            pass
    return out


def rss_report(samples: list[tuple[float, dict]], labels: dict[int, str],
               warmup_s: float) -> list[dict]:
    after = [s for t, s in samples if t >= warmup_s]
    first, last = after[:3], after[-3:]
    rows = []
    for pid in sorted(set().union(*(s.keys() for s in after))):
        a = [s[pid] for s in first if pid in s]
        b = [s[pid] for s in last if pid in s]
        if len(a) < len(first) or len(b) < len(last):
            rows.append({"pid": pid, "process": labels.get(pid, "?"), "lived": "part"})
            continue
        start, end = float(np.median(a)), float(np.median(b))
        rows.append({"pid": pid, "process": labels.get(pid, "?"), "lived": "all",
                     "start_mb": start / 2**20, "end_mb": end / 2**20,
                     "growth_pct": 100 * (end - start) / start})
    return rows


def start_redis(folder: str) -> tuple[subprocess.Popen, str]:
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server not found (install it, or run with --no-redis)")
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", folder],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    def answers() -> bool:
        try:
            return bool(redis.Redis.from_url(url, socket_timeout=0.5).ping())
        except redis.RedisError:
            return False

    try:
        wait_until(answers, 20, "redis-server answering", interval_s=0.1)
    except TimeoutError as exc:
        raise SystemExit(str(exc)) from None
    return proc, url


# -- main ------------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--load", type=float, default=0.7, help="fraction of measured capacity")
    ap.add_argument("--capacity-s", type=float, default=45.0)
    ap.add_argument("--warmup-s", type=float, default=60.0, help="soak time before baselines")
    ap.add_argument("--no-redis", action="store_true", help="embedded session store")
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args(argv)
    if not 0 < args.load <= 1 or args.minutes <= 0:
        raise SystemExit("--load must be in (0, 1] and --minutes > 0")

    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import ray
    from ray import serve

    from echo_ray.app import build_app
    from echo_ray.connection import connect
    from echo_ray.settings import Settings

    folder = tempfile.mkdtemp(prefix="echo-ray-soak-")
    redis_proc, redis_url = (None, None) if args.no_redis else start_redis(folder)
    connect(include_dashboard=False, runtime_env={"env_vars": {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}})
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    settings = Settings.from_env(paths={"data_dir": folder}, sessions={"redis_url": redis_url},
                                 scaling={"min_instances": 2, "max_instances": 2})
    serve.run(build_app(settings), name="soak", route_prefix="/")
    base = f"http://127.0.0.1:{port}"
    out: dict = {"minutes": args.minutes, "load": args.load,
                 "sessions": "redis" if redis_url else "embedded", "cpus": os.cpu_count(),
                 "loadavg_start": os.getloadavg()[1]}  # other work on the machine matters
    try:
        out.update(asyncio.run(run(base, args)))
    finally:
        out["loadavg_end"] = os.getloadavg()[1]
        serve.delete("soak")
        leaked = wait_for_no_app_actors(30.0)
        out["leaked_actors"] = leaked
        serve.shutdown()
        ray.shutdown()
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(10)
        shutil.rmtree(folder, ignore_errors=True)
    report(out)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


async def run(base: str, args) -> dict:
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        wait_http_ready(f"{base}/readyz", 180)  # blocks the loop: nothing else runs yet
        work = Workload(client)
        await work.setup()
        await closed_loop(work, 8, min(10.0, args.capacity_s))  # engines created, caches warm
        capacity = await closed_loop(work, 8, args.capacity_s)
        cap_errors = work.errors()
        work.statuses.clear()
        work.latencies.clear()
        rate = args.load * capacity
        print(f"capacity {capacity:.1f} req/s (closed loop, 8 clients); soak at {rate:.1f} "
              f"req/s for {args.minutes:g} min", flush=True)
        samples: list[tuple[float, dict]] = []
        labels: dict[int, str] = {}
        state: dict = {}

        def on_tick(t: float) -> None:
            samples.append((t, rss_sample()))
            labels.update(process_labels())
            if "baseline_actors" not in state and t >= args.warmup_s:
                state["baseline_actors"] = {a["ActorID"] for a in actor_table()
                                            if a["State"] == "ALIVE"}
            print(f"  t={t:5.0f}s  answered {sum(work.statuses.values()):6d}  errors "
                  f"{work.errors():3d}  RSS total {sum(samples[-1][1].values()) / 2**20:7.0f} MB",
                  flush=True)

        sent = await open_loop(work, rate, args.minutes * 60, on_tick)
        alive = [a for a in actor_table() if a["State"] == "ALIVE"]
        new = [f"{a['ActorClassName']} {a['Name']}" for a in alive
               if a["ActorID"] not in state.get("baseline_actors", set())]
        lat = np.array(work.latencies) if work.latencies else np.zeros((0, 2))
        soak_s = args.minutes * 60

        def window(lo, hi):
            sel = lat[(lat[:, 0] - lat[0, 0] >= lo) & (lat[:, 0] - lat[0, 0] < hi), 1] * 1000
            return ({"p50_ms": float(np.percentile(sel, 50)), "p99_ms": float(np.percentile(sel, 99))}
                    if sel.size else {})

        rows = rss_report(samples, labels, args.warmup_s)
        return {"capacity_rps": capacity, "capacity_errors": cap_errors, "rate_rps": rate,
                "requests": sum(work.statuses.values()), "statuses": work.statuses,
                "errors": work.errors(), **sent,
                "latency_first_minute": window(0, 60),
                "latency_last_minute": window(soak_s - 60, soak_s + 60),
                "rss": rows, "actors_alive_end": len(alive), "actors_new_since_warmup": new}


def wait_for_no_app_actors(timeout_s: float) -> list[str]:
    """Actors still alive after the app was deleted, other than Serve's own and the detached
    scaling optimizer (shared by every app, by design)."""
    keep = ("ServeController", "ProxyActor", "ScalingOptimizerActor")
    left: list[str] = []

    def none_left() -> bool:
        left[:] = [f"{a['ActorClassName']} {a['Name']}" for a in actor_table()
                   if a["State"] in ("ALIVE", "RESTARTING", "PENDING_CREATION")
                   and a["ActorClassName"] not in keep]
        return not left

    try:
        wait_until(none_left, timeout_s, "no app actors left", interval_s=0.5)
    except TimeoutError:
        pass  # reported by the caller: the actors still alive are the finding
    return left


def report(out: dict) -> None:
    print(f"\nsoak {out['minutes']:g} min at {out['load']:.0%} of capacity "
          f"({out.get('capacity_rps', 0):.1f} req/s measured -> {out.get('rate_rps', 0):.1f} "
          f"req/s), sessions in {out['sessions']}, {out['cpus']} CPUs, 5-min load average "
          f"{out['loadavg_start']:.1f} -> {out['loadavg_end']:.1f}")
    print(f"requests {out.get('requests')}  errors {out.get('errors')}  statuses "
          f"{out.get('statuses')}  started >1 s late {out.get('started_over_1s_late')}")
    f, last = out.get("latency_first_minute", {}), out.get("latency_last_minute", {})
    if f and last:
        print(f"latency first minute p50 {f['p50_ms']:.0f} ms p99 {f['p99_ms']:.0f} ms; last "
              f"minute p50 {last['p50_ms']:.0f} ms p99 {last['p99_ms']:.0f} ms "
              f"(ratio p99 {last['p99_ms'] / f['p99_ms']:.2f})")
    rows = [r for r in out.get("rss", []) if r["lived"] == "all"]
    print(f"\nRSS of every process that lived through the run ({len(rows)}), baseline after the "
          "first minute:")
    for r in sorted(rows, key=lambda r: -r["growth_pct"]):
        flag = "" if r["growth_pct"] < 5 else "  <-- over 5%"
        print(f"  {r['growth_pct']:+6.2f}%  {r['start_mb']:7.1f} -> {r['end_mb']:7.1f} MB  "
              f"{r['process']}{flag}")
    part = [r["process"] for r in out.get("rss", []) if r["lived"] == "part"]
    if part:
        print(f"  ({len(part)} short-lived processes not compared: {part[:6]})")
    over = [r for r in rows if r["growth_pct"] >= 5]
    print(f"\nprocesses over 5% RSS growth: {len(over)}; actors new since the first minute: "
          f"{out.get('actors_new_since_warmup')}; leaked actors after deleting the app: "
          f"{len(out['leaked_actors'])} {out['leaked_actors']}")


if __name__ == "__main__":
    sys.exit(main())
