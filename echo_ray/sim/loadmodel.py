"""A closed-loop model of the live load test (benchmarks/bench_load.py), calibrated from the
live service, to predict its latency and throughput at other user counts and to size a
deployment for many more users.

What it models, as the load test runs it:

- `users` users, each thinking uniform in [0.5, 1.5] x `think_s` between an answer and its
  next request (closed loop: a slow answer delays the user's next request);
- a request is a name of the mix (`memory_retrieve`, `reasoning`, ...), drawn by weight, and
  is answered from the result cache with that name's measured hit share;
- every request passes the front (HTTP proxy and ingress) for a time resampled from the
  measured cache-hit latencies. Only its CPU part (`front_cpu_share` of it, measured live as
  the front processes' CPU time per request) holds one of `front_replicas` servers in one FIFO
  queue; the rest (network, the client, Ray's calls between the processes) is a delay that
  does not queue: the proxy and ingress are async and interleave many requests, so they queue
  only for their CPU. A hit is then done; a miss goes on to a worker replica (power of two
  choices on requests held, one at a time per replica: the DTESN work is CPU-bound) for a
  time resampled from the type's measured uncached latency less the median hit latency
  (what the front already counted).

The measured times come from `calibrate_load`: `echo-ray calibrate` (uncached, sequential:
service times with no queueing) plus the same for cache hits. What it does not model: CPU
shared with anything else on the machine (the load generator included), the autoscaler (the
replica counts are given), session creation.
"""

from __future__ import annotations

import heapq
import json
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from echo_ray.checks import integer, positive

from .service import read_calibration, summarise_latencies

HIT_TYPES = ("reasoning", "grammar", "agent_evaluation", "multi_modal")


@dataclass(frozen=True)
class LoadModel:
    mix: Mapping[str, float]  # request name -> weight
    hit_share: Mapping[str, float]  # request name -> share answered from the result cache
    kind_of: Mapping[str, str]  # request name -> calibrated processing type
    front_ms: tuple[float, ...]  # front (proxy + ingress) time of every request
    worker_ms: Mapping[str, tuple[float, ...]]  # processing type -> worker time of a miss
    think_s: float = 1.0
    front_cpu_share: float = 1.0  # the part of a front time that holds a front server

    def __post_init__(self) -> None:
        positive("think_s", self.think_s)
        if not 0.0 < self.front_cpu_share <= 1.0:
            raise ValueError(f"front_cpu_share must be in (0, 1], got {self.front_cpu_share!r}")
        if not self.mix or not all(w >= 0 for w in self.mix.values()):
            raise ValueError("mix must be non-empty with weights >= 0")
        missing = [n for n in self.mix if self.kind_of.get(n) not in self.worker_ms]
        if missing:
            raise ValueError(f"no worker times for the requests {missing}")
        if not self.front_ms:
            raise ValueError("front_ms must hold at least one measured time")

    @classmethod
    def from_calibration(cls, doc: dict, mix: Mapping[str, float],
                         hit_share: Mapping[str, float], kind_of: Mapping[str, str],
                         think_s: float = 1.0) -> LoadModel:
        """From a `calibrate_load` document (or its path). Its `front_cpu_ms` (the front
        processes' CPU time per request, when it was measured) sets `front_cpu_share`; without
        it the whole front time queues, as a single FIFO server would."""
        if not isinstance(doc, dict):
            doc = read_calibration(doc)
        front = np.asarray(doc["cache_hit"]["latency_ms"], float)
        if front.size == 0:
            raise ValueError("the calibration has no cache-hit latencies")
        base = float(np.median(front))
        worker = {k: tuple(np.maximum(np.asarray(v["latency_ms"], float) - base, 0.1).tolist())
                  for k, v in doc["types"].items() if v.get("latency_ms")}
        cpu_ms = doc.get("front_cpu_ms")
        share = min(1.0, max(1e-3, cpu_ms / float(np.mean(front)))) if cpu_ms else 1.0
        return cls(dict(mix), dict(hit_share), dict(kind_of), tuple(front.tolist()), worker,
                   think_s, share)

    def mean_times_s(self) -> tuple[float, float]:
        """(front server seconds per request, worker seconds per request), averaged over the
        mix: what a replica of each is busy for."""
        total = sum(self.mix.values())
        front = self.front_cpu_share * float(np.mean(self.front_ms)) / 1000
        worker = sum(w / total * (1 - self.hit_share.get(n, 0.0))
                     * float(np.mean(self.worker_ms[self.kind_of[n]]))
                     for n, w in self.mix.items()) / 1000
        return front, worker


def simulate_users(model: LoadModel, users: int, worker_replicas: int, front_replicas: int = 1,
                   duration_s: float = 120.0, warmup_s: float = 10.0, seed: int = 0) -> dict:
    """Latency percentiles (ms, requests answered after `warmup_s`) and throughput."""
    integer("users", users, minimum=1)
    integer("worker_replicas", worker_replicas, minimum=1)
    integer("front_replicas", front_replicas, minimum=1)
    positive("duration_s", duration_s)
    rng = np.random.default_rng(seed)
    names = list(model.mix)
    p = np.asarray([model.mix[n] for n in names], float)
    p /= p.sum()
    front = np.asarray(model.front_ms) / 1000
    work = {k: np.asarray(v) / 1000 for k, v in model.worker_ms.items()}
    batch = 4096

    def draws(k):
        while True:
            yield from k()

    pick = draws(lambda: rng.choice(len(names), batch, p=p))
    unif = draws(lambda: rng.random(batch))
    fronts = draws(lambda: rng.choice(front, batch))
    works = {k: draws(lambda v=v: rng.choice(v, batch)) for k, v in work.items()}
    thinks = draws(lambda: rng.uniform(0.5, 1.5, batch) * model.think_s)

    heap: list[tuple[float, int, int, int, int]] = []  # (t, seq, event, request, station)
    seq = 0
    ARRIVE, FRONT_DONE, WORK_DONE, FRONT_LEFT = 0, 1, 2, 3
    share = model.front_cpu_share
    start: list[float] = []
    after: list[float] = []  # each request's front delay that does not queue
    miss: list[int] = []  # name index if a miss else -1
    front_q: deque[tuple[int, float]] = deque()  # (request, server seconds)
    front_busy = 0
    work_q: list[deque[int]] = [deque() for _ in range(worker_replicas)]
    work_busy = [False] * worker_replicas
    held = [0] * worker_replicas
    lat: list[float] = []
    done_t: list[float] = []

    def push(t, ev, req, st=0):
        nonlocal seq
        seq += 1
        heapq.heappush(heap, (t, seq, ev, req, st))

    for _ in range(users):  # users start spread over one think time
        push(float(next(unif)) * model.think_s, ARRIVE, -1)
    while heap:
        t, _, ev, req, st = heapq.heappop(heap)
        if t > duration_s:
            break
        if ev == ARRIVE:
            i = int(next(pick))
            req = len(start)
            start.append(t)
            miss.append(-1 if next(unif) < model.hit_share.get(names[i], 0.0) else i)
            x = float(next(fronts))
            after.append((1.0 - share) * x)
            if front_busy < front_replicas:
                front_busy += 1
                push(t + share * x, FRONT_DONE, req)
            else:
                front_q.append((req, share * x))
        elif ev == FRONT_DONE:  # its CPU part is done: free the server, then the delay
            if front_q:
                nxt, held_s = front_q.popleft()
                push(t + held_s, FRONT_DONE, nxt)
            else:
                front_busy -= 1
            push(t + after[req], FRONT_LEFT, req)
        elif ev == FRONT_LEFT:
            if miss[req] < 0:
                lat.append(t - start[req])
                done_t.append(t)
                push(t + next(thinks), ARRIVE, -1)
            else:
                a, b = rng.integers(worker_replicas, size=2)
                r = int(a if held[a] <= held[b] else b)
                held[r] += 1
                if work_busy[r]:
                    work_q[r].append(req)
                else:
                    work_busy[r] = True
                    push(t + next(works[model.kind_of[names[miss[req]]]]), WORK_DONE, req, r)
        else:  # WORK_DONE at replica st
            held[st] -= 1
            if work_q[st]:
                nxt = work_q[st].popleft()
                push(t + next(works[model.kind_of[names[miss[nxt]]]]), WORK_DONE, nxt, st)
            else:
                work_busy[st] = False
            lat.append(t - start[req])
            done_t.append(t)
            push(t + next(thinks), ARRIVE, -1)
    x = np.asarray(lat) * 1000
    keep = np.asarray(done_t) >= warmup_s
    out = summarise_latencies(x[keep])
    out["rps"] = float(keep.sum() / max(duration_s - warmup_s, 1e-9))
    out.update(users=users, worker_replicas=worker_replicas, front_replicas=front_replicas)
    return out


def plan_replicas(model: LoadModel, users: int, p95_ms: float = 50.0,
                  duration_s: float = 40.0, seed: int = 0, cpus_per_node: int = 4,
                  floor_margin: float = 1.2) -> dict:
    """The fewest replicas (front and worker, sized to the same utilisation) at which the
    model's p95 stays within `p95_ms` for `users` users, and the nodes they need (one CPU per
    replica, `cpus_per_node` CPUs a node). When even nearly idle replicas miss the target
    (the service times alone exceed it: `p95_floor_ms`), `feasible` is False and the plan is
    for `floor_margin` x that floor instead (`planned_for_ms`)."""
    front_s, worker_s = model.mean_times_s()
    rate = users / model.think_s  # an upper bound: responses take no time

    def sized(rho):
        return (max(1, math.ceil(rate * front_s / rho)), max(1, math.ceil(rate * worker_s / rho)))

    def run(rho):
        f, w = sized(rho)
        return simulate_users(model, users, w, f, duration_s=duration_s,
                              warmup_s=min(10.0, duration_s / 4), seed=seed)

    lo, hi = 0.05, 0.99  # utilisation that meets / misses the target
    best = run(lo)
    floor = best["p95_ms"]
    feasible = floor <= p95_ms
    target = p95_ms if feasible else floor_margin * floor
    top = run(hi)
    if top["p95_ms"] <= target:
        best, lo = top, hi
    else:
        for _ in range(6):
            mid = (lo + hi) / 2
            out = run(mid)
            if out["p95_ms"] <= target:
                lo, best = mid, out
            else:
                hi = mid
    replicas = best["worker_replicas"] + best["front_replicas"]
    return {"users": users, "feasible": feasible, "p95_target_ms": p95_ms,
            "p95_floor_ms": floor, "planned_for_ms": target, **best, "utilisation": lo,
            "nodes": math.ceil(replicas / cpus_per_node), "cpus_per_node": cpus_per_node}


def measure_hits(url: str, n: int = 20, timeout_s: float = 60.0) -> list[float]:
    """Client-side latency (ms) of result-cache hits: each stateless type's example request,
    once to compute it, then `n` times sequentially."""
    import time

    import httpx

    from echo_ray.cognitive.examples import EXAMPLE_REQUESTS
    from echo_ray.settings import get_settings

    base = url.rstrip("/")
    out: list[float] = []
    with httpx.Client(timeout=timeout_s, headers=get_settings().service.client_headers()) as c:
        for kind in HIT_TYPES:
            body = {"input": EXAMPLE_REQUESTS[kind]}
            c.post(f"{base}/v1/{kind}", json=body).raise_for_status()
            for _ in range(n):
                t0 = time.perf_counter()
                r = c.post(f"{base}/v1/{kind}", json=body)
                r.raise_for_status()
                if r.json().get("cached"):
                    out.append((time.perf_counter() - t0) * 1000)
    if not out:
        raise RuntimeError(f"{base}: no request was answered from the result cache")
    return out


def calibrate_load(url: str, out: str | Path, n: int = 20) -> dict:
    """`echo-ray calibrate` (uncached times per type) plus cache-hit times under
    `cache_hit`, in one calibration file; returns its contents."""
    from .calibrate import calibrate

    doc = calibrate(url, out, n=n)
    hits = measure_hits(url, n)
    doc["cache_hit"] = {"latency_ms": hits, **summarise_latencies(hits)}
    doc["method"] += f"; cache hits: {n} sequential repeats of each stateless type's example"
    Path(out).write_text(json.dumps(doc, indent=1))
    return doc
