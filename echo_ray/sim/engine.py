"""The exact, event-driven simulator of one Serve deployment.

Every request is an object in time: it arrives (from a trace or a closed population), waits
at the handle if no replica has room, is routed by the real routing strategy from
`echo_ray.routing` (which sees each replica's in-flight count, as Serve's router does), waits
in that replica's FIFO queue, is served for a time drawn from the service model, and leaves.
Replicas start after `startup_s`; a replica told to stop leaves the routing set at once and
finishes what it holds (graceful shutdown). Every `tick_s` the control loop hands an
`Observation` to the policy and applies the target it returns. Seeded: the same workload,
policy and config give the same result.
"""

from __future__ import annotations

import heapq
import math
import time
from collections import deque

import numpy as np
import pandas as pd

from echo_ray.routing.base import ReplicaView
from echo_ray.routing.registry import make_strategy

from .arrivals import ClosedPopulation, RateTrace
from .config import SimConfig, check_run_inputs
from .policies import Observation, SimPolicy
from .results import (
    DROPPED,
    IN_FLIGHT,
    SERVED,
    SimResult,
    add_capacity_columns,
    minute_latency_from_requests,
    percentiles_ms,
    summarise,
)

STARTING, RUNNING, DRAINING, STOPPED = 0, 1, 2, 3
_COMPLETE, _READY, _THINK = 0, 1, 2
STATS_PERIOD_S = 10.0  # replicas refresh the routing stats the router sees this often
_SERVICE_BATCH = 65536


class EventSimulator:
    """One run; use `run_events(...)` unless you want to poke at the state."""

    def __init__(self, workload: RateTrace | ClosedPopulation, policy: SimPolicy,
                 config: SimConfig, drain_s: float = 0.0) -> None:
        self.workload, self.policy, self.cfg = check_run_inputs(workload, policy, config)
        if not drain_s >= 0:
            raise ValueError(f"drain_s must be >= 0, got {drain_s!r}")
        self.drain_s = float(drain_s)
        seed = config.seed
        self.rng_service = np.random.default_rng([seed, 2])
        self.rng_think = np.random.default_rng([seed, 3])
        self.duration = float(self.workload.duration_s)
        self.closed = isinstance(self.workload, ClosedPopulation)
        self.now = 0.0
        self.strategy = make_strategy(config.routing, seed=seed)
        if hasattr(self.strategy, "clock"):
            self.strategy.clock = lambda: self.now
        if self.closed:
            self.arrival: list[float] = []
        else:
            self.arrival = self.workload.arrivals(np.random.default_rng([seed, 1])).tolist()
        n = len(self.arrival)
        self.latency = [math.nan] * n
        self.status = [IN_FLIGHT] * n
        self.admitted_at = [0.0] * n
        self.user: list[int] = []
        self._svc: list[float] = []
        self._svc_i = 0
        # replicas
        self.rid: list[str] = []
        self.state: list[int] = []
        self.born: list[float] = []
        self.died: list[float | None] = []
        self.inflight: list[int] = []
        self.serving: list[int] = []
        self.rqueue: list[deque] = []
        self.views: list[ReplicaView] = []
        self.stats: list[dict] = []
        self.busy_area_r: list[float] = []
        self.busy_last_r: list[float] = []
        self.busy_at_report: list[float] = []
        self.lat_ewma: list[float | None] = []
        self.running: list[int] = []
        self.starting: list[int] = []
        self.free_slots = 0
        self.handle_q: deque[int] = deque()
        self.heap: list[tuple] = []
        self._seq = 0
        # accounting
        self.n_inflight = 0  # admitted to a replica, not finished
        self.n_draining = 0
        self.busy_servers = 0
        self.busy_area = 0.0
        self.busy_last = 0.0
        self.n_arrived = self.n_served = self.n_dropped = 0
        self.recent: deque[tuple[float, float]] = deque()  # (done_t, replica-side latency)
        self.target = 0
        self.rows: list[tuple] = []

    # ---- replicas --------------------------------------------------------------------------
    def _new_replica(self, t: float, ready_at: float | None) -> int:
        r = len(self.rid)
        rid = f"replica-{r}"
        self.rid.append(rid)
        self.state.append(STARTING)
        self.born.append(t)
        self.died.append(None)
        self.inflight.append(0)
        self.serving.append(0)
        self.rqueue.append(deque())
        self.stats.append({})
        self.views.append(ReplicaView(rid, 0))
        self.busy_area_r.append(0.0)
        self.busy_last_r.append(t)
        self.busy_at_report.append(0.0)
        self.lat_ewma.append(None)
        if ready_at is None:
            self._ready(r, t)
        else:
            self.starting.append(r)
            self._push(ready_at, _READY, r, -1)
        return r

    def _ready(self, r: int, t: float) -> None:
        if self.state[r] != STARTING:
            return  # cancelled while starting
        if r in self.starting:
            self.starting.remove(r)
        self.state[r] = RUNNING
        self.running.append(r)
        self.free_slots += self.cfg.max_ongoing_requests - self.inflight[r]
        self._dispatch(t)

    def _stop(self, r: int, t: float) -> None:
        if self.state[r] == STARTING:
            self.starting.remove(r)
            self.state[r], self.died[r] = STOPPED, t
        elif self.state[r] == RUNNING:
            self.running.remove(r)
            self.free_slots -= self.cfg.max_ongoing_requests - self.inflight[r]
            if self.inflight[r] == 0:
                self.state[r], self.died[r] = STOPPED, t
            else:
                self.state[r] = DRAINING
                self.n_draining += 1

    def _scale_to(self, target: int, t: float) -> None:
        active = len(self.running) + len(self.starting)
        if target > active:
            for _ in range(target - active):
                self._new_replica(t, t + self.cfg.startup_s)
        elif target < active:
            excess = active - target
            for r in sorted(self.starting, reverse=True)[:excess]:  # newest first
                self._stop(r, t)
                excess -= 1
            for r in sorted(self.running, reverse=True)[:excess]:
                self._stop(r, t)

    # ---- requests --------------------------------------------------------------------------
    def _push(self, t: float, kind: int, a: int, b: int) -> None:
        self._seq += 1
        heapq.heappush(self.heap, (t, self._seq, kind, a, b))

    def _service_time(self) -> float:
        if self._svc_i >= len(self._svc):
            self._svc = self.cfg.service.sample(self.rng_service, _SERVICE_BATCH).tolist()
            self._svc_i = 0
        s = self._svc[self._svc_i]
        self._svc_i += 1
        return s

    def _busy_change(self, r: int, t: float, delta: int) -> None:
        self.busy_area += self.busy_servers * (t - self.busy_last)
        self.busy_last = t
        self.busy_servers += delta
        self.busy_area_r[r] += self.serving[r] * (t - self.busy_last_r[r])
        self.busy_last_r[r] = t
        self.serving[r] += delta

    def _arrive(self, j: int, t: float) -> None:
        self.n_arrived += 1
        limit = self.cfg.max_queued_requests
        if limit is not None and len(self.handle_q) >= limit and self.free_slots == 0:
            self._drop(j, t)
            return
        self.handle_q.append(j)
        if self.free_slots:
            self._dispatch(t)

    def _drop(self, j: int, t: float) -> None:
        self.status[j] = DROPPED
        self.n_dropped += 1
        if self.closed:
            self._push(t + self.rng_think.exponential(self.workload.think_s), _THINK,
                       self.user[j], -1)

    def _dispatch(self, t: float) -> None:
        q, cap, timeout = self.handle_q, self.cfg.max_ongoing_requests, self.cfg.timeout_s
        while q and self.free_slots > 0:
            j = q.popleft()
            if timeout is not None and t - self.arrival[j] > timeout:
                self._drop(j, t)
                continue
            views, inflight = self.views, self.inflight
            avail = [views[r] for r in self.running if inflight[r] < cap]
            chosen = self.strategy.rank(avail)[0]
            r = int(chosen[8:])  # "replica-<r>"
            self._admit(r, j, t)

    def _admit(self, r: int, j: int, t: float) -> None:
        self.inflight[r] += 1
        self.n_inflight += 1
        self.free_slots -= 1
        self.views[r] = ReplicaView(self.rid[r], self.inflight[r], self.stats[r])
        self.admitted_at[j] = t
        if self.serving[r] < self.cfg.concurrency:
            self._start(r, j, t)
        else:
            self.rqueue[r].append(j)

    def _start(self, r: int, j: int, t: float) -> None:
        self._busy_change(r, t, +1)
        self._push(t + self._service_time(), _COMPLETE, r, j)

    def _complete(self, r: int, j: int, t: float) -> None:
        self._busy_change(r, t, -1)
        self.inflight[r] -= 1
        self.n_inflight -= 1
        lat = t - self.arrival[j]
        self.latency[j] = lat
        self.status[j] = SERVED
        self.n_served += 1
        at_replica = t - self.admitted_at[j]
        self.recent.append((t, at_replica))
        ewma = self.lat_ewma[r]
        self.lat_ewma[r] = at_replica if ewma is None else ewma + 0.2 * (at_replica - ewma)
        self.strategy.on_complete(self.rid[r], lat)
        if self.rqueue[r]:
            self._start(r, self.rqueue[r].popleft(), t)
        if self.closed:
            self._push(t + self.rng_think.exponential(self.workload.think_s), _THINK,
                       self.user[j], -1)
        if self.state[r] == DRAINING:
            if self.inflight[r] == 0:
                self.state[r], self.died[r] = STOPPED, t
                self.n_draining -= 1
            return
        self.views[r] = ReplicaView(self.rid[r], self.inflight[r], self.stats[r])
        self.free_slots += 1
        self._dispatch(t)

    def _new_request(self, user: int, t: float) -> int:
        j = len(self.arrival)
        self.arrival.append(t)
        self.latency.append(math.nan)
        self.status.append(IN_FLIGHT)
        self.admitted_at.append(0.0)
        self.user.append(user)
        return j

    # ---- control loop ----------------------------------------------------------------------
    def _window(self, t: float):
        rows, conc = self.rows, self.cfg.concurrency

        def stats(seconds: float) -> dict:
            recent = self.recent
            while recent and recent[0][0] < t - seconds:
                recent.popleft()
            span = min(seconds, max(t, 1e-9))
            util = window_utilisation(rows, seconds, conc)
            if not recent:
                return {"request_rate": 0.0, "p95_latency_ms": 0.0, "error_rate": 0.0,
                        "utilisation": util}
            lat = np.fromiter((x[1] for x in recent), dtype=float, count=len(recent))
            return {"request_rate": len(recent) / span,
                    "p95_latency_ms": float(np.percentile(lat, 95)) * 1000.0,
                    "error_rate": 0.0,  # ReplicaLoad sees no handle-side drops
                    "utilisation": util}
        return stats

    def _refresh_stats(self, t: float) -> None:
        for r in self.running:
            self.busy_area_r[r] += self.serving[r] * (t - self.busy_last_r[r])
            self.busy_last_r[r] = t
            busy = self.busy_area_r[r] - self.busy_at_report[r]
            self.busy_at_report[r] = self.busy_area_r[r]
            self.stats[r] = {"cpu_percent": 100.0 * busy / (STATS_PERIOD_S
                                                            * self.cfg.concurrency),
                             "latency_ewma_s": self.lat_ewma[r]}
            self.views[r] = ReplicaView(self.rid[r], self.inflight[r], self.stats[r])

    def _tick(self, t: float, dt: float, last: dict) -> None:
        timeout = self.cfg.timeout_s
        if timeout is not None:  # clients give up on requests stuck at the handle
            q = self.handle_q
            while q and t - self.arrival[q[0]] > timeout:
                self._drop(q.popleft(), t)
        self.busy_area += self.busy_servers * (t - self.busy_last)
        self.busy_last = t
        ongoing = self.n_inflight + len(self.handle_q)
        obs = Observation(t=t, running=len(self.running), starting=len(self.starting),
                          target=self.target, ongoing=float(ongoing),
                          queued=float(len(self.handle_q)), window=self._window(t))
        self.target = self.policy.decide(obs)
        self._scale_to(self.target, t)
        provisioned = len(self.running) + len(self.starting) + self.n_draining
        self.rows.append((t - dt, dt, self.n_arrived - last["arrived"],
                          self.n_served - last["served"], self.n_dropped - last["dropped"],
                          len(self.running), len(self.starting), provisioned, self.target,
                          ongoing, len(self.handle_q), (self.busy_area - last["busy"]) / dt))
        last.update(arrived=self.n_arrived, served=self.n_served, dropped=self.n_dropped,
                    busy=self.busy_area)

    # ---- the run ---------------------------------------------------------------------------
    def run(self) -> SimResult:
        wall0 = time.perf_counter()
        cfg, policy = self.cfg, self.policy
        initial = policy.initial_replicas()
        for _ in range(initial):
            self._new_replica(0.0, None)
        self.target = initial
        if self.closed:
            pop = self.workload
            for u, think in enumerate(self.rng_think.exponential(pop.think_s, pop.users)):
                self._push(float(think), _THINK, u, -1)
        arrival, heap = self.arrival, self.heap
        n_open = 0 if self.closed else len(arrival)
        i, k = 0, 1
        next_tick = cfg.tick_s
        next_stats = STATS_PERIOD_S
        last = {"arrived": 0, "served": 0, "dropped": 0, "busy": 0.0}
        end = self.duration + self.drain_s + 1e-9  # drain: no arrivals, requests finish
        inf = math.inf
        while True:
            t_arr = arrival[i] if i < n_open else inf
            t_ev = heap[0][0] if heap else inf
            if min(next_tick, t_arr, t_ev) > end:
                break
            if next_tick <= t_arr and next_tick <= t_ev:
                self.now = next_tick
                if next_tick >= next_stats:
                    self._refresh_stats(next_tick)
                    next_stats += STATS_PERIOD_S
                self._tick(next_tick, cfg.tick_s, last)
                k += 1
                next_tick = k * cfg.tick_s
            elif t_ev <= t_arr:
                t, _, kind, a, b = heapq.heappop(heap)
                self.now = t
                if kind == _COMPLETE:
                    self._complete(a, b, t)
                elif kind == _READY:
                    self._ready(a, t)
                elif t <= self.duration:  # a user done thinking sends a request
                    self._arrive(self._new_request(a, t), t)
            else:
                self.now = t_arr
                self._arrive(i, t_arr)
                i += 1
        return self._result(time.perf_counter() - wall0)

    def _result(self, wall_s: float) -> SimResult:
        cfg, end = self.cfg, self.duration
        n = len(self.arrival) if self.closed else self.n_arrived
        arrival = np.asarray(self.arrival[:n], dtype=float)
        latency = np.asarray(self.latency[:n], dtype=float)
        status = np.asarray(self.status[:n], dtype=np.int8)
        timeline = pd.DataFrame(self.rows, columns=[
            "t", "dt", "arrivals", "served", "dropped", "running", "starting", "provisioned",
            "target", "ongoing", "queued", "busy_servers"])
        n_minutes = max(1, math.ceil(end / 60.0 - 1e-9))
        minutes = minute_latency_from_requests(arrival, latency, status, n_minutes)
        minutes = add_capacity_columns(minutes, timeline, cfg.replica_rate, cfg.slo_ms)
        replica_seconds = sum(min(d if d is not None else end, end) - b
                              for b, d in zip(self.born, self.died) if b < end)
        served_lat = latency[status == SERVED]
        events = pd.DataFrame(self.policy.events,
                              columns=["t", "policy", "from", "to", "running", "reason"])
        summary = summarise(
            self.policy.name, "event", minutes, timeline, percentiles_ms(served_lat),
            arrivals=n, served=int((status == SERVED).sum()),
            dropped=int((status == DROPPED).sum()), in_flight=int((status == IN_FLIGHT).sum()),
            replica_seconds=replica_seconds, service_rate=cfg.replica_rate, slo_ms=cfg.slo_ms,
            price_per_replica_hour=cfg.price_per_replica_hour,
            decision_ms=self.policy.decision_ms, events=len(events), wall_s=wall_s)
        requests = None
        if cfg.keep_requests:
            requests = pd.DataFrame({"arrival_s": arrival, "latency_ms": latency * 1000.0,
                                     "status": pd.Categorical.from_codes(
                                         status, ["in_flight", "served", "dropped"])})
        return SimResult(self.policy.name, "event", summary, minutes, timeline, events,
                         requests, setup={"config": cfg.to_dict(),
                                          "policy": self.policy.describe()})


def window_utilisation(rows: list[tuple], seconds: float, concurrency: int) -> float:
    """Busy fraction of the serving replicas over the last `seconds` of timeline rows."""
    busy = capacity = covered = 0.0
    for row in reversed(rows):
        dt = row[1]
        busy += row[11] * dt
        capacity += row[5] * concurrency * dt
        covered += dt
        if covered >= seconds - 1e-9:
            break
    return busy / capacity if capacity > 0 else 0.0


def run_events(workload, policy: SimPolicy, config: SimConfig | None = None,
               drain_s: float = 0.0) -> SimResult:
    """Simulate `workload` request by request under `policy`; `drain_s` more seconds run
    after the workload ends (no arrivals) so requests still queued finish or time out, as
    they do in a live replay, which waits for every response (the timeline then runs past
    the workload's end; its last minute's replica means include the drain)."""
    return EventSimulator(workload, policy, config or SimConfig(), drain_s).run()
