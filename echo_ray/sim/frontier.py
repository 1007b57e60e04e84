"""Tuned baselines: sweep Ray's default policy, the cost/SLO Pareto frontier, the best config.

A fair comparison is against the best-tuned baseline, not Serve's untouched defaults. Pure
functions over plain points (name, replica-hours, SLO-violation minutes), no simulation here:
`sweep_configs` lists the grid, the caller simulates each, and `pareto_frontier`,
`best_config` and `versus` judge the results.

- the frontier keeps every point no other point beats on both axes (cost and violations);
- the best config is the one with the lowest priced total, replica-hours x price per replica-hour
  + violation minutes x price per violation minute (the prices of the scaling settings), so
  "best" is what a user paying those prices would pick;
- ours meets the target against it when (at equal or lower cost, <= 0.5x its violation minutes)
  or (at equal or fewer violation minutes, <= 0.8x its replica-hours).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

TARGETS = (1, 2, 3, 4, 6, 8)
UPSCALE_DELAYS = (0.0, 10.0, 30.0)
DOWNSCALE_DELAYS = (60.0, 300.0, 600.0)
SLO_RATIO_TARGET = 0.5  # violation minutes, ours / best baseline, at no more cost
COST_RATIO_TARGET = 0.8  # replica-hours, ours / best baseline, at no more violation minutes


@dataclass(frozen=True)
class Point:
    """One policy's outcome on one trace."""

    name: str
    replica_hours: float
    violation_minutes: float
    config: dict | None = None
    scaling_events: int | None = None

    def total(self, price_per_replica_hour: float, price_per_violation_minute: float) -> float:
        return (self.replica_hours * price_per_replica_hour
                + self.violation_minutes * price_per_violation_minute)


def sweep_configs(targets: Sequence[float] = TARGETS,
                  upscale_delays: Sequence[float] = UPSCALE_DELAYS,
                  downscale_delays: Sequence[float] = DOWNSCALE_DELAYS) -> list[dict]:
    """Serve AutoscalingConfig fields for each point of the grid (bounds left to the caller)."""
    return [{"target_ongoing_requests": float(t), "upscale_delay_s": float(u),
             "downscale_delay_s": float(d)}
            for t, u, d in itertools.product(targets, upscale_delays, downscale_delays)]


def config_name(config: dict) -> str:
    return (f"ray(t={config['target_ongoing_requests']:g},up={config['upscale_delay_s']:g},"
            f"down={config['downscale_delay_s']:g})")


def dominates(a: Point, b: Point) -> bool:
    """a is no worse than b on both axes and better on one."""
    return (a.replica_hours <= b.replica_hours and a.violation_minutes <= b.violation_minutes
            and (a.replica_hours < b.replica_hours or a.violation_minutes < b.violation_minutes))


def pareto_frontier(points: Iterable[Point]) -> list[Point]:
    """The non-dominated points, cheapest first (ties on both axes: the first one kept)."""
    pts = sorted(points, key=lambda p: (p.replica_hours, p.violation_minutes))
    frontier: list[Point] = []
    best_violations = math.inf
    for p in pts:
        if p.violation_minutes < best_violations:
            frontier.append(p)
            best_violations = p.violation_minutes
    return frontier


def best_config(points: Iterable[Point], price_per_replica_hour: float,
                price_per_violation_minute: float) -> Point:
    """The point with the lowest priced total (always on the frontier)."""
    pts = list(points)
    if not pts:
        raise ValueError("best_config needs at least one point")
    return min(pts, key=lambda p: (p.total(price_per_replica_hour, price_per_violation_minute),
                                   p.violation_minutes, p.replica_hours))


def _ratio(a: float, b: float) -> float | None:
    if b == 0:
        return 0.0 if a == 0 else None  # None: infinitely worse
    return a / b


def versus(ours: Point, best: Point) -> dict:
    """Ours against the best baseline: the ratios and whether the target is met."""
    slo = _ratio(ours.violation_minutes, best.violation_minutes)
    cost = _ratio(ours.replica_hours, best.replica_hours)
    fewer_violations = (ours.replica_hours <= best.replica_hours
                        and ours.violation_minutes <= SLO_RATIO_TARGET * best.violation_minutes)
    cheaper = (ours.violation_minutes <= best.violation_minutes
               and ours.replica_hours <= COST_RATIO_TARGET * best.replica_hours)
    return {"slo_ratio": None if slo is None else round(slo, 4),
            "cost_ratio": None if cost is None else round(cost, 4),
            "met": bool(fewer_violations or cheaper)}
