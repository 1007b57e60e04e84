"""Simulation results: per-request, per-tick and per-minute tables, the summary, CSV files.

Definitions used everywhere (simulator and live replay):

- latency percentiles are over served requests; dropped requests are counted apart;
- an SLO-violation minute is a minute with arrivals whose p95 latency, counting dropped
  requests as infinitely slow, exceeds the target;
- replica-seconds integrate every provisioned replica (starting, serving or draining);
  cost = replica-hours x price;
- efficiency = served requests / what the provisioned replicas could have served
  (replica-seconds x one replica's service rate).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

SERVED, DROPPED, IN_FLIGHT = 1, 2, 0
MINUTE_COLUMNS = ("minute", "arrivals", "served", "dropped", "rate_rps", "mean_running",
                  "mean_provisioned", "capacity_rps", "p50_ms", "p95_ms", "p99_ms",
                  "slo_violation")


@dataclass
class SimResult:
    """One run: `summary` (numbers), `minutes`, `timeline` (per tick), `events`, `requests`."""

    policy: str
    mode: str
    summary: dict
    minutes: pd.DataFrame
    timeline: pd.DataFrame
    events: pd.DataFrame
    requests: pd.DataFrame | None = None
    setup: dict = field(default_factory=dict)

    def to_csv(self, out_dir: str | Path, prefix: str | None = None) -> list[Path]:
        """minutes, timeline, events (and requests if kept) as CSV, plus summary JSON."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        stem = prefix or f"{self.policy}"
        paths = []
        for name in ("minutes", "timeline", "events", "requests"):
            df = getattr(self, name)
            if df is None:
                continue
            path = out / f"{stem}_{name}.csv"
            df.to_csv(path, index=False)
            paths.append(path)
        path = out / f"{stem}_summary.json"
        path.write_text(json.dumps({"summary": self.summary, "setup": self.setup}, indent=1,
                                   default=_json_default))
        paths.append(path)
        return paths


def _json_default(value):
    if isinstance(value, np.integer | np.floating):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def percentiles_ms(latency_s: np.ndarray) -> dict:
    if latency_s.size == 0:
        return {"p50_ms": math.nan, "p95_ms": math.nan, "p99_ms": math.nan, "mean_ms": math.nan}
    p = np.percentile(latency_s, [50, 95, 99]) * 1000.0
    return {"p50_ms": float(p[0]), "p95_ms": float(p[1]), "p99_ms": float(p[2]),
            "mean_ms": float(latency_s.mean() * 1000.0)}


def minute_latency_from_requests(arrival: np.ndarray, latency: np.ndarray, status: np.ndarray,
                                 n_minutes: int, bin_s: float = 60.0) -> pd.DataFrame:
    """Per-minute counts and latency percentiles (dropped count as +inf) by arrival minute."""
    done = status != IN_FLIGHT
    minute = np.minimum((arrival // bin_s).astype(np.int64), n_minutes - 1)
    lat = np.where(status == DROPPED, np.inf, latency)
    order = np.argsort(minute, kind="stable")
    m_sorted, lat_sorted, done_sorted = minute[order], lat[order], done[order]
    bounds = np.searchsorted(m_sorted, np.arange(n_minutes + 1))
    arrivals = np.bincount(minute, minlength=n_minutes)[:n_minutes]
    served = np.bincount(minute[status == SERVED], minlength=n_minutes)[:n_minutes]
    dropped = np.bincount(minute[status == DROPPED], minlength=n_minutes)[:n_minutes]
    pct = np.full((n_minutes, 3), np.nan)
    for m in range(n_minutes):
        lo, hi = bounds[m], bounds[m + 1]
        if hi > lo:
            vals = lat_sorted[lo:hi][done_sorted[lo:hi]]
            if vals.size:
                pct[m] = _inf_percentiles(vals)
    return pd.DataFrame({"minute": np.arange(n_minutes), "arrivals": arrivals,
                         "served": served, "dropped": dropped,
                         "p50_ms": pct[:, 0] * 1000.0, "p95_ms": pct[:, 1] * 1000.0,
                         "p99_ms": pct[:, 2] * 1000.0})


def _inf_percentiles(vals: np.ndarray) -> np.ndarray:
    """Percentiles 50/95/99 where +inf values sort last ("lower" rank, never interpolating
    towards inf)."""
    if np.isinf(vals).any():
        return np.percentile(vals, [50, 95, 99], method="higher")
    return np.percentile(vals, [50, 95, 99])


def add_capacity_columns(minutes: pd.DataFrame, timeline: pd.DataFrame, service_rate: float,
                         slo_ms: float, bin_s: float = 60.0) -> pd.DataFrame:
    """Join per-minute replica means from the timeline and flag SLO-violation minutes."""
    n = len(minutes)
    m = np.minimum((timeline["t"].to_numpy() // bin_s).astype(np.int64), max(n - 1, 0))
    weights = timeline["dt"].to_numpy()
    tot = np.bincount(m, weights=weights, minlength=n)[:n]
    running = np.bincount(m, weights=timeline["running"].to_numpy() * weights, minlength=n)[:n]
    prov = np.bincount(m, weights=timeline["provisioned"].to_numpy() * weights, minlength=n)[:n]
    with np.errstate(invalid="ignore", divide="ignore"):
        minutes["mean_running"] = running / tot
        minutes["mean_provisioned"] = prov / tot
    minutes["rate_rps"] = minutes["arrivals"] / bin_s
    minutes["capacity_rps"] = minutes["mean_running"] * service_rate
    minutes["slo_violation"] = (minutes["arrivals"] > 0) & (minutes["p95_ms"] > slo_ms)
    return minutes[list(MINUTE_COLUMNS)]


def summarise(policy: str, mode: str, minutes: pd.DataFrame, timeline: pd.DataFrame,
              latency_stats: dict, arrivals: float, served: float, dropped: float,
              in_flight: float, replica_seconds: float, service_rate: float, slo_ms: float,
              price_per_replica_hour: float, decision_ms: float, events: int,
              wall_s: float) -> dict:
    duration = float(timeline["dt"].sum()) if len(timeline) else 0.0
    capacity = replica_seconds * service_rate
    return {
        "policy": policy, "mode": mode, "duration_s": duration,
        "arrivals": float(arrivals), "served": float(served), "dropped": float(dropped),
        "in_flight_end": float(in_flight), **latency_stats, "slo_ms": slo_ms,
        "slo_violation_minutes": int(minutes["slo_violation"].sum()),
        "minutes": int(len(minutes)),
        "replica_seconds": float(replica_seconds), "replica_hours": replica_seconds / 3600.0,
        "cost": replica_seconds / 3600.0 * price_per_replica_hour,
        "efficiency": float(served / capacity) if capacity > 0 else math.nan,
        "mean_replicas": replica_seconds / duration if duration else math.nan,
        "max_replicas": _int_or_nan(timeline["provisioned"].max()) if len(timeline) else 0,
        "scaling_events": int(events), "decision_ms": float(decision_ms), "wall_s": wall_s,
    }


def _int_or_nan(value):
    return int(value) if np.isfinite(value) else math.nan


def comparison_table(results: list[SimResult]) -> pd.DataFrame:
    """One row per run with the headline numbers."""
    cols = ["policy", "mode", "slo_violation_minutes", "p50_ms", "p95_ms", "p99_ms", "dropped",
            "replica_seconds", "cost", "efficiency", "mean_replicas", "max_replicas",
            "scaling_events", "decision_ms"]
    return pd.DataFrame([{c: r.summary.get(c) for c in cols} for r in results])
