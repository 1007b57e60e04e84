"""Request statistics of one ingress replica: counts by type and status, latency percentiles
over a bounded window, and the Ray metrics that Prometheus scrapes."""

from __future__ import annotations

import collections
import threading

import numpy as np

_HIT, _MISS = {"outcome": "hit"}, {"outcome": "miss"}
LATENCY_BOUNDARIES_MS = [1, 2, 5, 10, 20, 50, 100, 200, 400, 800, 1600, 5000]


class RequestStats:
    def __init__(self, window: int = 10_000, export: bool = True):
        self.counts: collections.Counter = collections.Counter()
        self.latency_ms: collections.deque = collections.deque(maxlen=window)
        self.cache_hits = self.cache_misses = 0
        self.worker_retries = 0  # requests re-sent after their worker replica died
        self._lock = threading.Lock()
        self._tags: dict[tuple[str, int], dict[str, str]] = {}  # one dict per (type, status)
        self._metrics = None
        if export:
            try:
                from ray.util import metrics

                self._metrics = {
                    "requests": metrics.Counter(
                        "echo_ray_requests_total", "Cognitive API requests",
                        tag_keys=("type", "status")),
                    "latency": metrics.Histogram(
                        "echo_ray_request_latency_ms", "Cognitive API latency (ms)",
                        boundaries=LATENCY_BOUNDARIES_MS, tag_keys=("type", "status")),
                    "cache": metrics.Counter(
                        "echo_ray_result_cache_total", "Result cache lookups",
                        tag_keys=("outcome",)),
                    "sessions": metrics.Gauge("echo_ray_active_sessions", "Active sessions"),
                }
            except Exception:  # outside Ray: plain counters only
                self._metrics = None

    def record(self, kind: str, status: int, latency_ms: float) -> None:
        with self._lock:
            self.counts[(kind, status)] += 1
            self.latency_ms.append(latency_ms)
        if self._metrics:
            tags = self._tags.get((kind, status))
            if tags is None:
                tags = self._tags.setdefault((kind, status), {"type": kind, "status": str(status)})
            self._metrics["requests"].inc(1, tags)
            self._metrics["latency"].observe(latency_ms, tags)

    def record_cache(self, hit: bool) -> None:
        with self._lock:
            if hit:
                self.cache_hits += 1
            else:
                self.cache_misses += 1
        if self._metrics:
            self._metrics["cache"].inc(1, _HIT if hit else _MISS)

    def record_retry(self) -> None:
        with self._lock:
            self.worker_retries += 1

    def set_sessions(self, n: int) -> None:
        if self._metrics:
            self._metrics["sessions"].set(n)

    def summary(self) -> dict:
        with self._lock:
            lat = np.array(self.latency_ms) if self.latency_ms else np.zeros(0)
            by_type: dict = {}
            for (kind, status), n in self.counts.items():
                by_type.setdefault(kind, {})[str(status)] = n
            total = sum(self.counts.values())
            lookups = self.cache_hits + self.cache_misses
            return {
                "requests": {"total": total, "by_type": by_type,
                             "worker_retries": self.worker_retries},
                "latency_ms": {f"p{q}": float(np.percentile(lat, q)) if lat.size else None
                               for q in (50, 90, 95, 99)},
                "result_cache": {"hits": self.cache_hits, "misses": self.cache_misses,
                                 "hit_ratio": self.cache_hits / lookups if lookups else 0.0},
            }
