"""The fast, time-stepped ("fluid") simulator for scale runs.

Per tick of `tick_s` the deployment is summarised by its replica count c, the arrival rate
lam (the trace's rate, or users thinking / think time for a closed population) and a backlog
B of requests waiting at the handle. Requests flow as a fluid: the replicas drain up to
c mu tick_s per tick, what exceeds it accumulates in B (dropped past `timeout_s` or
`max_queued_requests`). The queueing inside the replicas is taken as steady state at load
rho = min(lam / (c mu), 0.98) with the law of the routing strategy (`queueing`), so a request
arriving in the tick takes B / (c mu) (draining the backlog) plus a steady-state response
time. Latency percentiles, per minute and overall, are quantiles of the arrival-weighted
mixture of those per-tick distributions, solved by vectorised bisection. The policy and the
control loop are the same objects as in the event-driven mode.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd

from .arrivals import ClosedPopulation
from .config import SimConfig, check_run_inputs
from .policies import Observation, SimPolicy
from .queueing import RHO_CAP, MeanTable, QuantileTable, ResponseLaw, routing_model
from .results import SimResult, add_capacity_columns, summarise


def mixture_quantiles(q, group: np.ndarray, n_groups: int, weight: np.ndarray,
                      law: ResponseLaw, c: np.ndarray, rho: np.ndarray, delay: np.ndarray,
                      iterations: int = 45) -> np.ndarray:
    """Per group, the q-quantile of the weight-mixture of (delay + steady-state response).

    Rows with the same group share one mixture; `q` is one level or one per group (a level
    >= 1 gives +inf); groups without weight get NaN.
    """
    mu = law.mu
    prep = law.prepare(c, rho)
    total = np.bincount(group, weights=weight, minlength=n_groups)
    q = np.broadcast_to(np.asarray(q, dtype=float), (n_groups,))
    lo = np.zeros(n_groups)
    hi = np.full(n_groups, 4.0 / mu)
    has = (total > 0) & (q < 1.0)
    target = (1.0 - np.minimum(q, 1.0)) * total

    def excess(x: np.ndarray) -> np.ndarray:
        p = law.tail(x[group] - delay, prep)
        p = np.where(x[group] < delay, 1.0, p)
        return np.bincount(group, weights=weight * p, minlength=n_groups)

    for _ in range(80):
        above = has & (excess(hi) > target * (1 + 1e-12))
        if not above.any():
            break
        hi = np.where(above, hi * 2.0, hi)
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        above = excess(mid) > target
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    return np.where(total > 0, np.where(q < 1.0, hi, np.inf), np.nan)


def _compress(keys: list[np.ndarray], weight: np.ndarray) -> tuple[np.ndarray, ...]:
    """Merge rows with identical keys (summing weights): fewer rows for the bisection."""
    stacked = np.stack(keys, axis=1)
    uniq, inverse = np.unique(stacked, axis=0, return_inverse=True)
    w = np.bincount(inverse.ravel(), weights=weight, minlength=len(uniq))
    keep = w > 0
    return tuple(uniq[keep, i] for i in range(uniq.shape[1])) + (w[keep],)


class FluidSimulator:
    """`nodes` (echo_ray.sim.nodes.NodeCluster, optional): replicas are packed onto worker
    nodes that take minutes to arrive; without it a replica always finds room."""

    def __init__(self, workload, policy: SimPolicy, config: SimConfig, nodes=None) -> None:
        self.workload, self.policy, self.cfg = check_run_inputs(workload, policy, config)
        self.nodes = nodes
        self.mu = 1.0 / config.service.mean_s
        self.model = routing_model(config.routing, config.concurrency)
        self.law = ResponseLaw(self.model, self.mu,
                               None if self.model == "central" else config.max_ongoing_requests)
        self.p95_table = QuantileTable(0.95, self.law)
        self.mean_table = MeanTable(0.5, self.law)

    def run(self) -> SimResult:
        wall0 = time.perf_counter()
        cfg, policy, mu = self.cfg, self.policy, self.mu
        dt = cfg.tick_s
        duration = float(self.workload.duration_s)
        n = max(1, math.ceil(duration / dt - 1e-9))
        closed = isinstance(self.workload, ClosedPopulation)
        if not closed:
            lam_open = self.workload.rate_at((np.arange(n) + 0.5) * dt)
        conc = cfg.concurrency
        timeout = cfg.timeout_s
        max_q = cfg.max_queued_requests
        cols = {name: np.zeros(n) for name in (
            "arrivals", "served", "dropped", "running", "starting", "provisioned", "target",
            "ongoing", "queued", "busy_servers", "rho", "delay", "p95_replica_ms")}
        running = policy.initial_replicas()
        target = running
        starting: list[float] = []  # ready times
        backlog = 0.0
        in_system = 0.0
        replica_seconds = 0.0

        def window_for(k: int):
            def stats(seconds: float) -> dict:
                lo = max(0, k + 1 - max(1, round(seconds / dt)))
                served = cols["served"][lo:k + 1]
                arr = cols["arrivals"][lo:k + 1]
                span = min(seconds, (k + 1) * dt)
                p95 = cols["p95_replica_ms"][lo:k + 1]
                cap = cols["running"][lo:k + 1].sum() * conc
                return {"request_rate": float(served.sum() / span),
                        "p95_latency_ms": float((p95 * arr).sum() / arr.sum())
                        if arr.sum() > 0 else 0.0,
                        "error_rate": 0.0,
                        "utilisation": float(cols["busy_servers"][lo:k + 1].sum() / cap)
                        if cap > 0 else 0.0}
            return stats

        for k in range(n):
            t0 = k * dt
            if starting:
                ready = [s for s in starting if s <= t0 + 1e-9]
                if ready:
                    running += len(ready)
                    starting = [s for s in starting if s > t0 + 1e-9]
            servers = running * conc
            cap_rate = servers * mu
            if closed:
                pop = self.workload
                lam = max(pop.users - in_system, 0.0) / pop.think_s
            else:
                lam = lam_open[k]
            a = lam * dt
            drained = min(backlog + a, cap_rate * dt)
            new_backlog = backlog + a - drained
            dropped = 0.0
            if timeout is not None and new_backlog > timeout * cap_rate:
                dropped += new_backlog - timeout * cap_rate
                new_backlog = timeout * cap_rate
            if max_q is not None and new_backlog > max_q:
                dropped += new_backlog - max_q
                new_backlog = float(max_q)
            if cap_rate > 0:
                delay = 0.5 * (backlog + new_backlog) / cap_rate
                rho = min(lam / cap_rate, RHO_CAP) if new_backlog <= 0 else RHO_CAP
            else:
                delay, rho = math.inf, RHO_CAP
            backlog = new_backlog
            flow = min(lam, cap_rate * RHO_CAP)
            at_replicas = flow * self.mean_table(servers, rho) if servers else 0.0
            in_system = backlog + at_replicas
            p95_rep = self.p95_table(servers, rho) * 1000.0 if servers else math.inf
            provisioned = running + len(starting)
            replica_seconds += provisioned * dt
            c = cols
            c["arrivals"][k], c["served"][k], c["dropped"][k] = a, drained, dropped
            c["running"][k], c["starting"][k] = running, len(starting)
            c["provisioned"][k] = provisioned
            c["ongoing"][k], c["queued"][k] = in_system, backlog
            c["busy_servers"][k] = drained / (dt * mu)
            c["rho"][k], c["delay"][k], c["p95_replica_ms"][k] = rho, delay, p95_rep
            obs = Observation(t=t0 + dt, running=running, starting=len(starting), target=target,
                              ongoing=in_system, queued=backlog, window=window_for(k))
            target = policy.decide(obs)
            c["target"][k] = target
            active = running + len(starting)
            if target > active:
                starting.extend(self.nodes.place(t0 + dt, target - active, cfg.startup_s)
                                if self.nodes else [t0 + dt + cfg.startup_s] * (target - active))
            elif target < active:
                excess = active - target
                cut = min(excess, len(starting))
                if cut:
                    starting = sorted(starting)[:len(starting) - cut]  # newest first
                running -= excess - cut
                if self.nodes:
                    self.nodes.release(t0 + dt, excess)
            if self.nodes:
                self.nodes.tick(t0 + dt, dt, policy, running)
        return self._result(cols, n, dt, replica_seconds, backlog, time.perf_counter() - wall0)

    def _result(self, cols: dict, n: int, dt: float, replica_seconds: float, backlog: float,
                wall_s: float) -> SimResult:
        cfg, law, model = self.cfg, self.law, self.model
        t = np.arange(n) * dt
        timeline = pd.DataFrame({"t": t, "dt": np.full(n, dt), **cols})
        servers = cols["running"].astype(np.int64) * cfg.concurrency
        served_w = np.maximum(cols["arrivals"] - cols["dropped"], 0.0)
        rho_q = np.round(cols["rho"], 4)
        delay_q = np.round(np.where(np.isfinite(cols["delay"]), cols["delay"], 1e9), 4)
        n_minutes = max(1, math.ceil(n * dt / 60.0 - 1e-9))
        minute = np.minimum((t // 60.0).astype(np.int64), n_minutes - 1)
        # per-minute percentiles count dropped requests as infinitely slow: a dropped share
        # above 1 - q makes the quantile infinite
        mg, mc, mr, md, mw = _compress([minute, servers, rho_q, delay_q], served_w)
        mg = mg.astype(np.int64)
        arrivals_m = np.bincount(minute, weights=cols["arrivals"], minlength=n_minutes)
        dropped_m = np.bincount(minute, weights=cols["dropped"], minlength=n_minutes)
        served_m = np.bincount(mg, weights=mw, minlength=n_minutes)
        pct = {}
        for q in (0.5, 0.95, 0.99):
            # quantile q over served+dropped = quantile q' over served, q' = q * total / served
            with np.errstate(invalid="ignore", divide="ignore"):
                q_served = np.where(served_m > 0, q * (served_m + dropped_m) / served_m, np.inf)
            vals = mixture_quantiles(q_served, mg, n_minutes, mw, law, mc, mr, md)
            vals = np.where(served_m > 0, vals, np.inf)
            vals[arrivals_m <= 0] = np.nan
            pct[q] = vals * 1000.0
        minutes = pd.DataFrame({"minute": np.arange(n_minutes), "arrivals": arrivals_m,
                                "served": np.bincount(minute, weights=cols["served"],
                                                      minlength=n_minutes),
                                "dropped": dropped_m, "p50_ms": pct[0.5], "p95_ms": pct[0.95],
                                "p99_ms": pct[0.99]})
        minutes = add_capacity_columns(minutes, timeline, cfg.replica_rate, cfg.slo_ms)
        # overall percentiles over served requests
        zero = np.zeros(n, dtype=np.int64)
        g, gc, gr, gd, gw = _compress([zero, servers, rho_q, delay_q], served_w)
        stats = {}
        for q, key in ((0.5, "p50_ms"), (0.95, "p95_ms"), (0.99, "p99_ms")):
            stats[key] = float(mixture_quantiles(q, g.astype(np.int64), 1, gw, law, gc, gr,
                                                 gd)[0]) * 1000.0
        mean_rep = law.mean(law.prepare(np.maximum(servers, 1), cols["rho"]))
        mean_t = (served_w * (np.where(np.isfinite(cols["delay"]), cols["delay"], 0.0)
                              + mean_rep)).sum()
        stats["mean_ms"] = float(mean_t / served_w.sum() * 1000.0) if served_w.sum() else math.nan
        events = pd.DataFrame(self.policy.events,
                              columns=["t", "policy", "from", "to", "running", "reason"])
        arrivals = float(cols["arrivals"].sum())
        dropped = float(cols["dropped"].sum())
        summary = summarise(
            self.policy.name, "fluid", minutes, timeline, stats, arrivals=arrivals,
            served=arrivals - dropped - backlog, dropped=dropped, in_flight=backlog,
            replica_seconds=replica_seconds, service_rate=cfg.replica_rate, slo_ms=cfg.slo_ms,
            price_per_replica_hour=cfg.price_per_replica_hour,
            decision_ms=self.policy.decision_ms, events=len(events), wall_s=wall_s)
        summary["latency_model"] = model
        if self.nodes:
            summary.update(self.nodes.summary())
        return SimResult(self.policy.name, "fluid", summary, minutes, timeline, events, None,
                         setup={"config": cfg.to_dict(), "policy": self.policy.describe(),
                                "latency_model": model})


def run_fluid(workload, policy: SimPolicy, config: SimConfig | None = None,
              nodes=None) -> SimResult:
    """Simulate `workload` tick by tick (fast; see the module docstring); `nodes`: see
    FluidSimulator."""
    return FluidSimulator(workload, policy, config or SimConfig(), nodes).run()
