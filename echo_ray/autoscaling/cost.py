"""Cost-benefit of a scaling change: replica cost against SLO-violation time avoided.

Latency is estimated with an M/M/c queue (Poisson arrivals at rate lambda, c replicas each
serving mu requests/s, exponential service times, FCFS): Erlang C gives the chance a request
waits, and the response time T = wait + service has a closed-form tail, so the p95 latency at
a forecast rate can be compared with the target. It is a model, good for ranking options, not
a measurement; the optimizer's triggers use the measured latency.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np

from echo_ray.checks import in_range, integer, positive

VERDICTS = ("recommended", "neutral", "not-recommended")


def erlang_b(c: int, a: float) -> float:
    """Blocking probability of M/M/c/c with offered load a = lambda/mu (stable recursion)."""
    c = integer("c", c, minimum=0)
    a = positive("a", a, strict=False)
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(c, a):
    """Probability an arrival has to wait in M/M/c with offered load a = lambda/mu: 0 if a == 0
    (no traffic), else 1 if a >= c. Scalars give a float (checked); arrays broadcast
    elementwise (the fluid simulator's response laws), each stopping the Erlang B recursion
    at its own c."""
    if np.ndim(c) == 0 and np.ndim(a) == 0:
        c = integer("c", c, minimum=0)
        a = positive("a", a, strict=False)
        if a == 0:
            return 0.0
        if a >= c:
            return 1.0
        b = erlang_b(c, a)
        return c * b / (c - a * (1.0 - b))
    cs, av = np.broadcast_arrays(np.asarray(c, dtype=np.int64), np.asarray(a, dtype=float))
    bv = np.ones(av.shape)
    for k in range(1, (int(cs.max()) if cs.size else 0) + 1):
        bv = np.where(cs >= k, av * bv / (k + av * bv), bv)
    with np.errstate(divide="ignore", invalid="ignore"):
        wait = cs * bv / (cs - av * (1.0 - bv))
    return np.where(av <= 0, 0.0, np.where((av < cs) & (cs > 0), wait, 1.0))


def _check_queue(lam, mu, c) -> tuple[float, float, int]:
    return positive("lam", lam, strict=False), positive("mu", mu), integer("c", c, minimum=0)


def mmc_mean_wait(lam: float, mu: float, c: int) -> float:
    """Mean time in queue (seconds, before service starts); inf when lam >= c * mu."""
    lam, mu, c = _check_queue(lam, mu, c)
    if lam >= c * mu:
        return math.inf
    return erlang_c(c, lam / mu) / (c * mu - lam)


def mmc_prob_wait_exceeds(lam: float, mu: float, c: int, t: float) -> float:
    """P(time in queue > t) = C(c, a) exp(-(c mu - lam) t)."""
    lam, mu, c = _check_queue(lam, mu, c)
    t = positive("t", t, strict=False)
    if lam >= c * mu:
        return 1.0
    return erlang_c(c, lam / mu) * math.exp(-(c * mu - lam) * t)


def mmc_prob_response_exceeds(lam: float, mu: float, c: int, t: float) -> float:
    """P(response time > t), response = queueing wait + service.

    With probability 1 - C the request starts at once (T ~ Exp(mu)); otherwise T is the sum of
    Exp(theta), theta = c mu - lam, and Exp(mu), whose tail is
    (theta e^{-mu t} - mu e^{-theta t}) / (theta - mu), or (1 + mu t) e^{-mu t} if theta = mu.
    """
    lam, mu, c = _check_queue(lam, mu, c)
    t = positive("t", t, strict=False)
    if lam >= c * mu:
        return 1.0
    wait = erlang_c(c, lam / mu)
    theta = c * mu - lam
    service_tail = math.exp(-mu * t)
    if abs(theta - mu) < 1e-9 * mu:
        queued_tail = (1.0 + mu * t) * service_tail
    else:
        queued_tail = (theta * service_tail - mu * math.exp(-theta * t)) / (theta - mu)
    return (1.0 - wait) * service_tail + wait * queued_tail


def mmc_response_percentile(lam: float, mu: float, c: int, q: float = 0.95) -> float:
    """The q-quantile of response time (seconds); inf when the queue is unstable."""
    lam, mu, c = _check_queue(lam, mu, c)
    q = in_range("q", q, 0.0, 1.0, lo_open=True, hi_open=True)
    if lam >= c * mu:
        return math.inf
    lo, hi = 0.0, 1.0 / mu
    while mmc_prob_response_exceeds(lam, mu, c, hi) > 1.0 - q:
        hi *= 2.0
    for _ in range(100):  # bisection: the tail is monotone decreasing in t
        mid = 0.5 * (lo + hi)
        if mmc_prob_response_exceeds(lam, mu, c, mid) > 1.0 - q:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-9 * hi:
            break
    return hi


def slo_rate_limit(mu: float, c: int, target_s: float, q: float = 0.95) -> float:
    """Largest arrival rate at which c replicas keep the q-quantile latency <= target_s.

    0 when even an idle replica's service time alone breaks the target. Memoised: the
    optimizer asks for the same (capacity, replicas) pair on most ticks.
    """
    mu = positive("mu", mu)
    c = integer("c", c, minimum=0)
    target_s = positive("target_s", target_s)
    q = in_range("q", q, 0.0, 1.0, lo_open=True, hi_open=True)
    return _slo_rate_limit(float(mu), int(c), float(target_s), float(q))


@lru_cache(maxsize=4096)
def _slo_rate_limit(mu: float, c: int, target_s: float, q: float) -> float:
    if c == 0 or math.exp(-mu * target_s) > 1.0 - q:
        return 0.0
    lo, hi = 0.0, c * mu
    while hi - lo > 1e-9 * c * mu:  # bisection: the tail grows with the rate (~30 steps)
        mid = 0.5 * (lo + hi)
        if mmc_prob_response_exceeds(mid, mu, c, target_s) <= 1.0 - q:
            lo = mid
        else:
            hi = mid
    return lo


@dataclass(frozen=True)
class CostBenefit:
    """Cost and benefit of moving from `current` to `desired` replicas for `window_s` seconds."""

    current_replicas: int
    desired_replicas: int
    window_s: float
    replica_seconds: float  # extra replica-seconds (negative when scaling down)
    cost: float  # price of those replica-seconds (negative = saving)
    p_violation_current: float | None  # chance the SLO is broken at the forecast rate
    p_violation_desired: float | None
    violation_s_avoided: float | None  # expected SLO-violation seconds avoided (negative = added)
    benefit: float  # value of the violation time avoided
    net: float  # benefit - cost
    roi: float | None  # net / |cost|; None when nothing changes
    verdict: str

    def to_dict(self) -> dict:
        return asdict(self)


def p_violation(rates, mu: float, c: int, target_s: float, q: float) -> float:
    """Share of plausible arrival rates at which c replicas would break the SLO."""
    limit = slo_rate_limit(mu, c, target_s, q)
    r = np.asarray(rates, dtype=float)
    return float(np.mean(r > limit))


def assess_change(current: int, desired: int, rates, service_rate: float | None,
                  target_latency_s: float, window_s: float, price_per_replica_hour: float,
                  violation_cost_per_hour: float, latency_percentile: float = 0.95,
                  roi_threshold: float = 0.1) -> CostBenefit:
    """Price a change and the SLO-violation time it avoids.

    `rates` are plausible arrival rates over the window (e.g. the point forecast plus the
    forecaster's recent errors at that horizon); the violation probability with c replicas is
    the share of them above the M/M/c rate limit for the SLO. `service_rate` is one replica's
    capacity in requests/s; None means unknown, so only the cost is computed.
    """
    current = integer("current", current, minimum=0)
    desired = integer("desired", desired, minimum=0)
    window_s = positive("window_s", window_s)
    price = positive("price_per_replica_hour", price_per_replica_hour, strict=False)
    violation_price = positive("violation_cost_per_hour", violation_cost_per_hour, strict=False)
    roi_threshold = positive("roi_threshold", roi_threshold, strict=False)
    r = np.asarray(rates, dtype=float)
    if r.ndim != 1 or r.size == 0 or not np.isfinite(r).all():
        raise ValueError(f"rates must be a non-empty finite 1-D array, got shape {r.shape}")
    replica_seconds = float((desired - current) * window_s)
    cost = replica_seconds / 3600.0 * price
    if service_rate is None:
        p_cur = p_des = avoided = None
        benefit = 0.0
    else:
        p_cur = p_violation(r, service_rate, current, target_latency_s, latency_percentile)
        p_des = p_violation(r, service_rate, desired, target_latency_s, latency_percentile)
        avoided = window_s * (p_cur - p_des)
        benefit = avoided / 3600.0 * violation_price
    net = benefit - cost
    roi = None if cost == 0 else net / abs(cost)
    if roi is None or service_rate is None:
        verdict = "neutral"
    elif roi >= roi_threshold:
        verdict = "recommended"
    elif roi <= -roi_threshold:
        verdict = "not-recommended"
    else:
        verdict = "neutral"
    return CostBenefit(current_replicas=current, desired_replicas=desired, window_s=window_s,
                       replica_seconds=replica_seconds, cost=cost, p_violation_current=p_cur,
                       p_violation_desired=p_des, violation_s_avoided=avoided, benefit=benefit,
                       net=net, roi=roi, verdict=verdict)
