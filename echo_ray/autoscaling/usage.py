"""What a resource used and what it cost, integrated from the samples it was fed.

Between two samples the resource is taken to stay as the earlier sample saw it (piecewise
constant), so over the interval dt it used `replicas * dt` replica-seconds, was offered
`request_rate * dt` requests and could have served `replicas * capacity * dt`.

- cost = replica-hours x price per replica-hour
- efficiency = served demand / provisioned capacity, where served demand is the offered load
  minus failures, capped by the capacity. When no per-replica capacity is known it falls back
  to busy replica-seconds / replica-seconds (the mean utilisation), which is the same number
  when the capacity is measured as rate / (replicas x utilisation).

Running totals, O(1) memory: a meter can run for months. Pure Python, no Ray.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from echo_ray.checks import integer, positive, real

USAGE_COLUMNS = (
    "resource", "resource_type", "samples", "seconds", "replica_hours", "mean_replicas",
    "price_per_replica_hour", "cost", "demand_requests", "served_requests",
    "capacity_requests", "efficiency", "efficiency_basis", "mean_utilisation",
)


class UsageMeter:
    """Feed `add(t, replicas, request_rate, utilisation, ...)` in time order; read `report()`."""

    def __init__(self, resource: str, resource_type: str, price_per_replica_hour: float) -> None:
        if not isinstance(resource, str) or not resource:
            raise ValueError(f"resource must be a non-empty string, got {resource!r}")
        self.resource = resource
        self.resource_type = resource_type
        self.price_per_replica_hour = positive("price_per_replica_hour", price_per_replica_hour,
                                               strict=False)
        self.samples = 0
        self.seconds = 0.0
        self.replica_seconds = 0.0
        self.busy_replica_seconds = 0.0
        self.cost = 0.0
        self.demand = 0.0  # requests offered
        self.served = 0.0  # requests served within capacity, over intervals with a capacity
        self.capacity = 0.0  # requests that could have been served, same intervals
        self.served_all = 0.0  # requests that did not fail, every interval
        self._last: tuple | None = None  # (t, replicas, rate, utilisation, error, capacity)

    def add(self, t: float, replicas: int, request_rate: float, utilisation: float,
            error_rate: float = 0.0, capacity_rps: float | None = None,
            price_per_replica_hour: float | None = None) -> None:
        t = real("t", t)
        replicas = integer("replicas", replicas, minimum=0)
        rate = positive("request_rate", request_rate, strict=False)
        util = positive("utilisation", utilisation, strict=False)
        err = positive("error_rate", error_rate, strict=False)
        cap = None if capacity_rps is None else positive("capacity_rps", capacity_rps,
                                                         strict=False)
        if self._last is not None and t < self._last[0]:
            raise ValueError(f"t must not go backwards: got {t} after {self._last[0]}")
        if self._last is not None:
            t0, n, r, u, e, c = self._last
            dt = t - t0
            self.seconds += dt
            self.replica_seconds += n * dt
            self.busy_replica_seconds += n * min(u, 1.0) * dt
            self.cost += n * dt / 3600.0 * self.price_per_replica_hour
            self.demand += r * dt
            ok = r * (1.0 - min(e, 1.0)) * dt
            self.served_all += ok
            if c is not None and c > 0:
                self.capacity += n * c * dt
                self.served += min(ok, n * c * dt)
        if price_per_replica_hour is not None:  # price changes apply from now on
            self.price_per_replica_hour = positive("price_per_replica_hour",
                                                   price_per_replica_hour, strict=False)
        self._last = (t, replicas, rate, util, err, cap)
        self.samples += 1

    def resize(self, replicas: int) -> None:
        """The resource was resized right after the last sample: charge the new size from
        then on (the manager knows this when it applies a decision itself)."""
        replicas = integer("replicas", replicas, minimum=0)
        if self._last is not None:
            self._last = (self._last[0], replicas, *self._last[2:])

    def add_sample(self, sample, capacity_rps: float | None = None) -> None:
        """Convenience for a `Sample` (or its dict)."""
        s = sample if isinstance(sample, dict) else sample.to_dict()
        self.add(s["t"], s["replicas"], s["request_rate"], s["utilisation"],
                 s.get("error_rate", 0.0), capacity_rps)

    def report(self) -> dict:
        if self.capacity > 0:
            efficiency, basis = self.served / self.capacity, "capacity"
        elif self.replica_seconds > 0:
            efficiency, basis = self.busy_replica_seconds / self.replica_seconds, "utilisation"
        else:
            efficiency, basis = None, "none"
        return {
            "resource": self.resource,
            "resource_type": self.resource_type,
            "samples": self.samples,
            "seconds": self.seconds,
            "replica_hours": self.replica_seconds / 3600.0,
            "mean_replicas": self.replica_seconds / self.seconds if self.seconds else None,
            "price_per_replica_hour": self.price_per_replica_hour,
            "cost": self.cost,
            "demand_requests": self.demand,
            "served_requests": self.served_all,
            "capacity_requests": self.capacity if self.capacity > 0 else None,
            "efficiency": efficiency,
            "efficiency_basis": basis,
            "mean_utilisation": (self.busy_replica_seconds / self.replica_seconds
                                 if self.replica_seconds else None),
        }


def cost_frame(reports: Iterable[dict]) -> pd.DataFrame:
    """Usage reports as a DataFrame, plus a TOTAL row: cost and replica-hours summed; where
    every row has a capacity, efficiency = capacity-weighted mean of the rows' efficiencies
    (= all served-within-capacity requests / all capacity)."""
    rows = list(reports)
    frame = pd.DataFrame(rows, columns=list(USAGE_COLUMNS))
    if not rows:
        return frame
    total: dict[str, object] = {c: None for c in USAGE_COLUMNS}
    total.update(resource="TOTAL", resource_type="all",
                 samples=int(frame["samples"].sum()),
                 replica_hours=float(frame["replica_hours"].sum()),
                 cost=float(frame["cost"].sum()),
                 demand_requests=float(frame["demand_requests"].sum()),
                 served_requests=float(frame["served_requests"].sum()))
    if frame["capacity_requests"].notna().all():
        capacity = float(frame["capacity_requests"].sum())
        served = float((frame["efficiency"] * frame["capacity_requests"]).sum())
        total.update(capacity_requests=capacity, efficiency_basis="capacity",
                     efficiency=served / capacity if capacity else None)
    return pd.concat([frame, pd.DataFrame([total], columns=list(USAGE_COLUMNS))],
                     ignore_index=True)
