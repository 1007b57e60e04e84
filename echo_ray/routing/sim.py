"""A small discrete-event simulation that drives the routing strategies.

Replicas are FIFO single servers; requests arrive as a Poisson stream and each has an
exponential amount of work (mean 1) that a replica of slowness `s` serves in `s x work`
time. One router dispatches every request on arrival using a strategy and knows exactly
how many requests each replica has in flight; it learns latencies only when requests
complete. Replicas report stats (CPU utilisation = busy fraction, latency EWMA, capacity)
every `stats_period`, like Serve's `record_routing_stats`, so CPU readings are as stale
as they would be in Serve. Times are in units of the mean service time of a normal
replica. All strategies see the same arrivals and work sizes (common random numbers).

Why not `echo_ray.sim.engine`: that engine simulates one autoscaled Serve deployment in
seconds (identical replicas drawn from one service model, a handle queue, replica start-up
and shutdown, a control loop, per-minute results). This benchmark needs what it leaves out
and leaves out what it has: replicas of different speeds (`slowness`), a fixed replica set
with no handle cap or policy, a request count rather than a duration, and the same work
sizes for every strategy so their latencies differ by routing alone. Running it there would
mean adding heterogeneous replicas and a second random-number layout to the engine, and the
published routing figures would no longer be reproducible. This file stays the
strategies' unit-free yardstick; both drive the same `echo_ray.routing` strategies.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .base import ReplicaView, Strategy


@dataclass(frozen=True)
class Scenario:
    """Replica slowness factors (1 = normal) and offered load as a fraction of capacity."""

    name: str
    slowness: tuple[float, ...]
    load: float

    def __post_init__(self) -> None:
        if not self.slowness or any(not s > 0 for s in self.slowness):
            raise ValueError(f"slowness must be a non-empty tuple of numbers > 0, "
                             f"got {self.slowness!r}")
        if not 0 < self.load < 1:
            raise ValueError(f"load must be in (0, 1), got {self.load!r}")

    @property
    def capacity(self) -> float:
        """Requests per unit time all replicas can serve together."""
        return sum(1.0 / s for s in self.slowness)

    @property
    def arrival_rate(self) -> float:
        return self.load * self.capacity


# Time-based knobs expressed in mean service times: Serve's stats period (seconds) and
# Finagle's 10 s latency decay are both long compared with one request.
SIM_STATS_PERIOD = 10.0
SIM_STRATEGY_OPTIONS: dict[str, dict[str, object]] = {"least_response_time": {"decay_s": 100.0}}

SCENARIOS: dict[str, Scenario] = {
    "equal_70": Scenario("equal_70", (1.0,) * 10, 0.7),
    "equal_90": Scenario("equal_90", (1.0,) * 10, 0.9),
    "slow_90": Scenario("slow_90", (5.0,) + (1.0,) * 9, 0.9),
}


@dataclass(frozen=True)
class SimResult:
    p50: float
    p99: float
    mean: float
    stable: bool
    share: tuple[float, ...]  # fraction of requests each replica served

    def as_dict(self) -> dict[str, object]:
        return {"p50": round(self.p50, 4), "p99": round(self.p99, 4),
                "mean": round(self.mean, 4), "stable": self.stable,
                "share": [round(x, 4) for x in self.share]}


def simulate(strategy: Strategy, scenario: Scenario, *, n_requests: int = 100_000,
             warmup: int = 10_000, seed: int = 0, stats_period: float = SIM_STATS_PERIOD,
             stats_alpha: float = 0.2) -> SimResult:
    """Run `n_requests` through `strategy`; latency percentiles skip the first `warmup`.

    `stable` is False when the backlog keeps growing: the mean latency of the last
    quarter of requests is more than twice that of the second quarter.
    """
    if n_requests <= warmup or warmup < 0:
        raise ValueError(f"n_requests must exceed warmup >= 0, got {n_requests}, {warmup}")
    if not stats_period > 0:
        raise ValueError(f"stats_period must be > 0, got {stats_period!r}")
    rng = np.random.default_rng(seed)
    arrivals = np.cumsum(rng.exponential(1.0 / scenario.arrival_rate, n_requests)).tolist()
    work = rng.exponential(1.0, n_requests).tolist()

    ids = [f"r{i}" for i in range(len(scenario.slowness))]
    index = {rid: i for i, rid in enumerate(ids)}
    slowness = scenario.slowness
    in_flight = [0] * len(ids)
    last_finish = [0.0] * len(ids)  # when each FIFO queue drains
    committed = [0.0] * len(ids)  # total work ever assigned, in time units
    busy_at_last_report = [0.0] * len(ids)
    served = [0] * len(ids)
    stats = [{"capacity": 1.0 / s, "cpu_percent": 0.0, "latency_ewma_s": None}
             for s in slowness]  # what the router sees: refreshed only at reports
    latency_ewma: list[float | None] = [None] * len(ids)  # replica-side, live
    completions: list[tuple[float, int, int, float]] = []  # (time, seq, replica, latency)
    latencies = [0.0] * n_requests
    next_report = stats_period
    sim_time = [0.0]
    if hasattr(strategy, "clock"):
        strategy.clock = lambda: sim_time[0]

    for seq, (now, size) in enumerate(zip(arrivals, work, strict=True)):
        while completions and completions[0][0] <= now:
            done_at, _, r, latency = heapq.heappop(completions)
            sim_time[0] = done_at
            in_flight[r] -= 1
            strategy.on_complete(ids[r], latency)
            ewma = latency_ewma[r]
            latency_ewma[r] = latency if ewma is None \
                else ewma + stats_alpha * (latency - ewma)
        while next_report <= now:
            for r in range(len(ids)):
                busy = committed[r] - max(0.0, last_finish[r] - next_report)
                stats[r] = {**stats[r], "latency_ewma_s": latency_ewma[r], "cpu_percent":
                            100.0 * (busy - busy_at_last_report[r]) / stats_period}
                busy_at_last_report[r] = busy
            next_report += stats_period

        sim_time[0] = now
        views = [ReplicaView(ids[r], in_flight[r], stats[r]) for r in range(len(ids))]
        r = index[strategy.rank(views)[0]]
        service = size * slowness[r]
        finish = max(now, last_finish[r]) + service
        last_finish[r] = finish
        committed[r] += service
        in_flight[r] += 1
        served[r] += 1
        latencies[seq] = finish - now
        heapq.heappush(completions, (finish, seq, r, finish - now))

    measured = np.asarray(latencies[warmup:])
    quarter = len(measured) // 4
    stable = bool(measured[3 * quarter:].mean() <= 2.0 * measured[quarter:2 * quarter].mean())
    return SimResult(
        p50=float(np.percentile(measured, 50)),
        p99=float(np.percentile(measured, 99)),
        mean=float(measured.mean()),
        stable=stable,
        share=tuple(x / n_requests for x in served),
    )


def run_all(strategies: Sequence[str], scenarios: Sequence[str] = tuple(SCENARIOS), *,
            n_requests: int = 100_000, warmup: int = 10_000, seed: int = 0,
            stats_period: float = SIM_STATS_PERIOD,
            strategy_options: Mapping[str, Mapping[str, object]] = SIM_STRATEGY_OPTIONS,
            ) -> dict[str, dict[str, SimResult]]:
    """Every strategy on every scenario, fresh strategy instance per run, same seeds."""
    from .registry import make_strategy

    out: dict[str, dict[str, SimResult]] = {}
    for s_idx, scenario_name in enumerate(scenarios):
        scenario = SCENARIOS[scenario_name]
        out[scenario_name] = {
            name: simulate(make_strategy(name, seed=seed, **strategy_options.get(name, {})),
                           scenario, n_requests=n_requests,
                           warmup=warmup, seed=seed + s_idx, stats_period=stats_period)
            for name in strategies
        }
    return out
