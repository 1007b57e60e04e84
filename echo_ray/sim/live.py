"""A small Serve deployment whose replicas behave like the simulator's, for live replays.

`SimulatedWork` serves one request at a time (FIFO) for an exponential service time spent in
`asyncio.sleep`, so its capacity is proportional to its replica count however few cores the
machine has. (The DTESN worker is CPU-bound: on two shared cores extra replicas add no real
capacity, so autoscaling could not change its latency and a replay would measure the
machine, not the policy.) It reports `ReplicaLoad`'s request rate, p95 latency and error rate
plus its busy fraction as `utilisation` through `record_autoscaling_stats`, exactly the
metrics the simulator gives ForecastPolicy.

`app(policy=...)` builds it with Ray Serve's default autoscaling config (only min/max set) or
with ForecastPolicy (`forecast_autoscaling_config`), both with the same max_ongoing_requests.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque

from ray import serve

from echo_ray.autoscaling.replica_load import ReplicaLoad

WINDOW_S = 10.0


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=5)
class SimulatedWork:
    def __init__(self, mean_s: float = 0.05, seed: int = 0, concurrency: int = 1) -> None:
        if not mean_s >= 0:
            raise ValueError(f"mean_s must be >= 0, got {mean_s!r}")
        try:
            replica = serve.get_replica_context().replica_id.unique_id
        except Exception:
            replica = "local"
        self.rng = random.Random(f"{seed}:{replica}")
        self.mean_s = float(mean_s)
        self.slots = asyncio.Semaphore(concurrency)  # waiters are woken FIFO
        self.concurrency = concurrency
        self.load = ReplicaLoad(window_s=WINDOW_S)
        self.busy: deque[tuple[float, float]] = deque()  # finished (start, end) intervals
        self.serving_since: list[float] = []

    async def __call__(self, request=None) -> dict:
        with self.load.track():  # time at the replica: its queue plus service
            async with self.slots:
                start = time.monotonic()
                self.serving_since.append(start)
                try:
                    if self.mean_s > 0:
                        await asyncio.sleep(self.rng.expovariate(1.0 / self.mean_s))
                finally:
                    self.serving_since.remove(start)
                    self.busy.append((start, time.monotonic()))
        return {"ok": True}

    def utilisation(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        lo = now - WINDOW_S
        while self.busy and self.busy[0][1] < lo:
            self.busy.popleft()
        busy = sum(min(e, now) - max(s, lo) for s, e in self.busy if e > lo)
        busy += sum(now - max(s, lo) for s in self.serving_since)
        return busy / (WINDOW_S * self.concurrency)

    def record_autoscaling_stats(self) -> dict:
        return {**self.load.stats(), "utilisation": self.utilisation()}


def autoscaling_config(policy: str, min_replicas: int, max_replicas: int,
                       ours: dict | None = None) -> dict:
    """Serve's defaults with the bounds (ray_default) or ForecastPolicy (ours)."""
    if policy == "ray_default":
        return {"min_replicas": min_replicas, "max_replicas": max_replicas}
    if policy == "ours":
        from echo_ray.autoscaling.policy import forecast_autoscaling_config

        return forecast_autoscaling_config(dict(ours or {}), min_replicas=min_replicas,
                                           max_replicas=max_replicas)
    raise ValueError(f"policy must be 'ours' or 'ray_default', got {policy!r}")


def app(policy: str = "ray_default", mean_s: float = 0.05, min_replicas: int = 1,
        max_replicas: int = 8, max_ongoing_requests: int = 5, seed: int = 0,
        ours: dict | None = None, autoscale: bool = True, config: dict | None = None):
    """The deployment bound; `config` (an explicit autoscaling_config) overrides `policy`."""
    options: dict = {"max_ongoing_requests": max_ongoing_requests}
    if autoscale:
        options["autoscaling_config"] = config or autoscaling_config(policy, min_replicas,
                                                                     max_replicas, ours)
    else:
        options["num_replicas"] = min_replicas
    return SimulatedWork.options(**options).bind(mean_s, seed)


def replica_counter(app_name: str, deployment: str = "SimulatedWork"):
    """(running, provisioned) replicas of a deployment from `serve.status()`."""
    def count() -> tuple[int, int]:
        try:
            status = serve.status().applications[app_name].deployments[deployment]
        except KeyError:
            return 0, 0
        states = {str(getattr(k, "value", k)): v for k, v in status.replica_states.items()}
        running = states.get("RUNNING", 0)
        provisioned = sum(v for k, v in states.items() if k != "STOPPED")
        return running, provisioned
    return count


def replay_policy(spec, window, base_url: str, *, name: str, speedup: float,
                  mean_s: float, min_replicas: int, max_replicas: int,
                  max_ongoing_requests: int = 5, seed: int = 0, slo_ms: float = 400.0,
                  poll_s: float = 0.5, timeout_s: float = 30.0, progress: bool = False,
                  ready_timeout_s: float = 120.0):
    """Deploy `SimulatedWork` under `spec` (a `validate.PolicySpec`) as app `name`, replay the
    trace window (the *uncompressed* segment; `speedup` compresses it) open loop from one
    replica, delete the app; returns the replay's SimResult (raw replica polls in
    `setup["replica_samples"]`)."""
    import httpx

    from echo_ray.waiting import wait_until

    from .replay import ReplayRequest, replay

    config = spec.autoscaling_config(min_replicas, max_replicas)
    serve.run(app(mean_s=mean_s, min_replicas=min_replicas, max_replicas=max_replicas,
                  max_ongoing_requests=max_ongoing_requests, seed=seed, config=config),
              name=name, route_prefix=f"/{name}")
    url = f"{base_url.rstrip('/')}/{name}"
    count = replica_counter(name)
    first_probe: list[float] = []

    def ready() -> bool:
        if not first_probe:  # the proxy's handle (and its metrics timers) start here
            first_probe.append(time.perf_counter())
        try:
            return httpx.post(url, timeout=30).status_code == 200 and count()[0] >= 1
        except httpx.HTTPError:
            return False

    try:
        wait_until(ready, ready_timeout_s, f"{name} ready", interval_s=0.5)
        result = replay(url, window, speedup=speedup, seed=seed,
                        request=ReplayRequest("/", None), timeout_s=timeout_s,
                        replica_counter=count, poll_s=poll_s, slo_ms=slo_ms,
                        service_rate=1.0 / mean_s, progress=progress, name=spec.name)
        # when the handle started, in the replay's clock (< 0: before its first request)
        result.setup["router_start_s"] = first_probe[0] - result.setup["started_perf_counter"]
        result.setup["autoscaling_config"] = config
        return result
    finally:
        serve.delete(name)
