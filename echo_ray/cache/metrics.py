"""Per-tier cache statistics exported as Ray metrics, only when running inside Ray.

Ray is looked up in `sys.modules` rather than imported: a process that never
imported Ray cannot be connected to a cluster, so pure (Ray-less) use of the
cache pays nothing and needs nothing.
"""

from __future__ import annotations

import sys
from typing import Any

_COUNTERS = ("hits", "misses", "evictions", "errors")
_GAUGES = ("items", "bytes", "hit_ratio")
_METRICS: dict[str, Any] = {}  # one metric object per name per process


def ray_is_running() -> bool:
    ray = sys.modules.get("ray")
    return ray is not None and ray.is_initialized()


def _metric(kind: str, name: str) -> Any:
    full = f"echo_ray_cache_{name}"
    if full not in _METRICS:
        from ray.util import metrics

        cls = metrics.Counter if kind == "counter" else metrics.Gauge
        _METRICS[full] = cls(full, description=f"echo_ray cache {name} per tier",
                             tag_keys=("namespace", "tier"))
    return _METRICS[full]


class MetricsExporter:
    """Turns successive `stats()` snapshots into Ray counter increments and gauges."""

    def __init__(self, namespace: str):
        self.namespace = namespace
        self._last: dict[tuple[str, str], float] = {}

    def export(self, tiers: dict[str, dict[str, Any]]) -> bool:
        """Record the snapshot; returns False (doing nothing) when Ray is not running."""
        if not ray_is_running():
            return False
        for tier, stats in tiers.items():
            tags = {"namespace": self.namespace, "tier": tier}
            for name in _COUNTERS:
                value = stats.get(name)
                if value is None:
                    continue
                delta = value - self._last.get((tier, name), 0)
                if delta > 0:
                    _metric("counter", name).inc(delta, tags=tags)
                self._last[(tier, name)] = value
            for name in _GAUGES:
                value = stats.get(name)
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    _metric("gauge", name).set(value, tags=tags)
        return True
