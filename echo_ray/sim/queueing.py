"""Steady-state response-time laws used by the fluid simulator, vectorised with numpy.

Each replica is a FIFO server with exponential service at rate mu and room for `cap` requests
(Serve's max_ongoing_requests); c replicas share Poisson arrivals at rate lam, so each runs at
rho = lam / (c mu). An arrival routed to a replica finds K requests ahead of it there and its
response is K + 1 exponential services:

    P(T > x) = e^(-mu x) sum_n (mu x)^n / n! P(K >= n)

P(K >= n) depends on the router:

- "pod2" (power of two choices): the mean-field limit of JSQ(2): a replica holds at least n
  with probability s_n = rho^(2^n - 1), an arrival joins the shorter of two, so
  P(K >= n) = s_n^2 = rho^(2^(n+1) - 2);
- "rr" (round robin): each replica sees Erlang-c interarrival times, a GI/M/1 queue whose
  arrivals find K geometric with ratio sigma, the root of sigma = (c rho / (c rho + 1 - sigma))^c;
- "random" (anything else): M/M/1 per replica, P(K >= n) = rho^n;
- "central" (least connections: join the shortest queue): one M/M/c queue, whose response
  tail comes from Erlang C (the closed form in `autoscaling.cost`); `cap` is not applied.

With a cap, K is conditioned on K < cap (the rest waits at the handle, which the fluid model
treats as backlog). The laws assume exponential service; with another distribution the
fluid mode uses its mean (the event-driven mode is exact for any distribution).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import gammaln

from echo_ray.autoscaling.cost import erlang_c

MODELS = ("central", "pod2", "rr", "random")
RHO_CAP = 0.98  # the steady-state part never runs hotter; overload becomes backlog
_POD2_TERMS = 16  # P(K >= 16) under pod2 is below 0.98^65534: negligible
_MAX_TERMS = 64  # caps above this are treated as unbounded


def routing_model(strategy: str, concurrency: int = 1) -> str:
    """The law that approximates a routing strategy (see the module docstring)."""
    if concurrency > 1 or strategy in ("least_connections", "least_response_time", "cpu_based"):
        return "central"
    if strategy == "power_of_two":
        return "pod2"
    if strategy in ("round_robin", "weighted"):
        return "rr"
    return "random"


def rr_sigma(c, rho, iterations: int = 400) -> np.ndarray:
    """GI/M/1 root for Erlang-c interarrivals (round robin over c replicas)."""
    c, rho = np.broadcast_arrays(np.asarray(c, dtype=float), np.asarray(rho, dtype=float))
    sigma = np.zeros(rho.shape)
    for _ in range(iterations):
        nxt = (c * rho / (c * rho + 1.0 - sigma)) ** c
        if np.max(np.abs(nxt - sigma), initial=0.0) < 1e-12:
            sigma = nxt
            break
        sigma = nxt
    return np.where(rho > 0, sigma, 0.0)


class ResponseLaw:
    """One law (model, service rate, cap); `prepare(c, rho)` once, then `tail`/`mean`."""

    def __init__(self, model: str, mu: float, cap: int | None = None) -> None:
        if model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {model!r}")
        if not mu > 0:
            raise ValueError(f"mu must be > 0, got {mu!r}")
        self.model, self.mu = model, float(mu)
        self.cap = None if cap is None or cap > _MAX_TERMS else int(cap)

    def prepare(self, c, rho) -> dict:
        c, rho = np.broadcast_arrays(np.asarray(c, dtype=np.int64),
                                     np.clip(np.asarray(rho, dtype=float), 0.0, RHO_CAP))
        c, rho = c.ravel(), rho.ravel()
        if self.model == "central":
            lam = rho * c * self.mu
            return {"c": c, "lam": lam, "wait": erlang_c(c, lam / self.mu),
                    "theta": c * self.mu - lam}
        if self.model == "pod2":
            n = np.arange(self.cap if self.cap else _POD2_TERMS, dtype=float)
            with np.errstate(divide="ignore", invalid="ignore"):
                log_rho = np.log(rho)[:, None]
                exps = np.where(c[:, None] <= 1, n, 2.0 ** (n + 1.0) - 2.0)  # 1 replica: M/M/1
                q = np.where(n == 0, 1.0, np.exp(exps * log_rho))
            q = np.where((rho[:, None] == 0) & (n > 0), 0.0, q)
            if self.cap:
                last = np.where(c <= 1, rho ** self.cap,
                                rho ** (2.0 ** (self.cap + 1.0) - 2.0))[:, None]
                q = (q - last) / (1.0 - last)
            return {"q": q}
        sigma = rr_sigma(c, rho) if self.model == "rr" else rho
        if not self.cap:
            return {"sigma": sigma}
        n = np.arange(self.cap, dtype=float)
        q = sigma[:, None] ** n
        last = (sigma ** self.cap)[:, None]
        return {"q": (q - last) / (1.0 - last)}

    def tail(self, x, prep: dict) -> np.ndarray:
        """P(response > x) per prepared row (x broadcast to the rows)."""
        mu = self.mu
        if "c" in prep:
            x = np.maximum(np.broadcast_to(np.asarray(x, dtype=float), prep["c"].shape), 0.0)
            theta, wait = prep["theta"], prep["wait"]
            service = np.exp(-mu * x)
            close = np.abs(theta - mu) < 1e-9 * mu
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                queued = np.where(close, (1.0 + mu * x) * service,
                                  (theta * service - mu * np.exp(-theta * x))
                                  / np.where(close, 1.0, theta - mu))
            return np.clip((1.0 - wait) * service + wait * queued, 0.0, 1.0)
        if "sigma" in prep:
            x = np.maximum(np.broadcast_to(np.asarray(x, dtype=float), prep["sigma"].shape), 0.0)
            return np.exp(-mu * (1.0 - prep["sigma"]) * x)
        q = prep["q"]
        x = np.maximum(np.broadcast_to(np.asarray(x, dtype=float), q.shape[:1]), 0.0)
        n = np.arange(q.shape[1], dtype=float)
        mx = (mu * x)[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.exp(-mx + n * np.log(mx) - gammaln(n + 1.0))
        terms[:, 0] = np.exp(-mx[:, 0])
        terms = np.where(mx == 0, np.where(n == 0, 1.0, 0.0), terms)
        return np.minimum((terms * q).sum(axis=1), 1.0)

    def mean(self, prep: dict) -> np.ndarray:
        mu = self.mu
        if "c" in prep:
            with np.errstate(divide="ignore", invalid="ignore"):
                w = prep["wait"] / prep["theta"]
            return 1.0 / mu + np.where(prep["lam"] > 0, w, 0.0)
        if "sigma" in prep:
            return 1.0 / (mu * (1.0 - prep["sigma"]))
        return prep["q"].sum(axis=1) / mu

    def quantile(self, q: float, prep: dict, delay=0.0) -> np.ndarray:
        """The q-quantile of delay + response per row (bisection, ~1e-9 relative)."""
        rows = next(iter(prep.values())).shape[0]
        lo, hi = np.zeros(rows), np.full(rows, 4.0 / self.mu)
        for _ in range(60):
            above = self.tail(hi, prep) > 1.0 - q
            if not above.any():
                break
            hi = np.where(above, hi * 2.0, hi)
        for _ in range(40):
            mid = 0.5 * (lo + hi)
            above = self.tail(mid, prep) > 1.0 - q
            lo, hi = np.where(above, mid, lo), np.where(above, hi, mid)
        return np.asarray(delay, dtype=float) + hi


def tail(x, mu: float, c, rho, model: str, cap: int | None = None) -> np.ndarray:
    """P(response time > x) in steady state, elementwise over broadcast x, c, rho."""
    x, c, rho = np.broadcast_arrays(np.asarray(x, dtype=float), np.asarray(c),
                                    np.asarray(rho, dtype=float))
    law = ResponseLaw(model, mu, cap)
    return law.tail(x.ravel(), law.prepare(c, rho)).reshape(x.shape)


def mean_response(mu: float, c, rho, model: str, cap: int | None = None) -> np.ndarray:
    c, rho = np.broadcast_arrays(np.asarray(c), np.asarray(rho, dtype=float))
    law = ResponseLaw(model, mu, cap)
    return law.mean(law.prepare(c, rho)).reshape(c.shape)


def quantile(q: float, mu: float, c, rho, model: str, cap: int | None = None) -> np.ndarray:
    c, rho = np.broadcast_arrays(np.asarray(c), np.asarray(rho, dtype=float))
    law = ResponseLaw(model, mu, cap)
    return law.quantile(q, law.prepare(c, rho)).reshape(c.shape)


def replicas_needed(rate: float, mu: float, slo_s: float, q: float = 0.95,
                    model: str = "pod2", cap: int | None = None,
                    max_replicas: int = 100_000) -> int:
    """Fewest replicas whose steady-state q-quantile response time is <= slo_s at `rate`."""
    if rate <= 0:
        return 1
    if math.exp(-mu * slo_s) > 1.0 - q:
        raise ValueError(f"slo_s={slo_s} is below the {q:.0%} quantile of the service time "
                         f"alone ({-math.log(1.0 - q) / mu:.3f} s): no replica count meets it")
    law = ResponseLaw(model, mu, cap)
    c = max(1, math.ceil(rate / (mu * RHO_CAP)))
    while c <= max_replicas:
        if float(law.tail(slo_s, law.prepare(c, rate / (c * mu)))[0]) <= 1.0 - q:
            return c
        c += 1
    raise ValueError(f"rate {rate} needs more than max_replicas={max_replicas}")


class QuantileTable:
    """Steady-state q-quantile per replica count, tabulated on a rho grid (fast lookups)."""

    def __init__(self, q: float, law: ResponseLaw, points: int = 256) -> None:
        self.q, self.law = q, law
        self.grid = np.linspace(0.0, RHO_CAP, points)
        self._tables: dict[int, np.ndarray] = {}

    def __call__(self, c: int, rho: float) -> float:
        table = self._tables.get(c)
        if table is None:
            table = self._tables[c] = self.law.quantile(self.q, self.law.prepare(c, self.grid))
        pos = min(max(rho, 0.0), RHO_CAP) / RHO_CAP * (self.grid.size - 1)
        i = min(int(pos), self.grid.size - 2)
        f = pos - i
        return float(table[i] * (1.0 - f) + table[i + 1] * f)


class MeanTable(QuantileTable):
    """Steady-state mean response per replica count on the same grid."""

    def __call__(self, c: int, rho: float) -> float:
        table = self._tables.get(c)
        if table is None:
            table = self._tables[c] = self.law.mean(self.law.prepare(c, self.grid))
        pos = min(max(rho, 0.0), RHO_CAP) / RHO_CAP * (self.grid.size - 1)
        i = min(int(pos), self.grid.size - 2)
        f = pos - i
        return float(table[i] * (1.0 - f) + table[i + 1] * f)
