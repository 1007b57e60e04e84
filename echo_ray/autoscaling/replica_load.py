"""ReplicaLoad: a replica's own request rate, p95 latency and error rate for Serve's
`record_autoscaling_stats`, so ForecastPolicy forecasts requests/s instead of ongoing requests.

    @serve.deployment(autoscaling_config=forecast_autoscaling_config(...))
    class Model:
        def __init__(self):
            self.load = ReplicaLoad()

        async def __call__(self, request):
            with self.load.track():
                ...

        def record_autoscaling_stats(self) -> dict:
            return self.load.stats()

Counts over a sliding window of `window_s` seconds (bounded memory: at most `max_events`
requests are remembered). `track()` also counts the calls in flight, and `occupancy()` is
their time-mean since the previous `occupancy()` (what a pool or a membrane actor group
reports as its utilisation, over its slots). Pure Python, no Ray.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from contextlib import contextmanager

import numpy as np

from echo_ray.checks import integer, positive


class ReplicaLoad:
    def __init__(self, window_s: float = 10.0, max_events: int = 100_000,
                 clock=time.monotonic) -> None:
        self.window_s = positive("window_s", window_s)
        self._events: deque[tuple[float, float, bool]] = deque(
            maxlen=integer("max_events", max_events, minimum=1))
        self._clock = clock
        self._start = clock()
        self._lock = threading.Lock()
        self.in_flight = 0
        self._area = 0.0  # integral of in_flight over time since the last occupancy()
        self._area_t = self._start  # when in_flight last changed (or occupancy() was read)
        self._occupancy_t = self._start

    def forget(self) -> None:
        """Drop what was measured so far (e.g. a warm-up call, which is not user load);
        calls still in flight stay counted."""
        now = self._clock()
        with self._lock:
            self._events.clear()
            self._start = self._area_t = self._occupancy_t = now
            self._area = 0.0

    def _step_in_flight(self, delta: int) -> None:
        now = self._clock()
        with self._lock:
            self._area += self.in_flight * (now - self._area_t)
            self._area_t = now
            self.in_flight += delta

    def occupancy(self, now: float | None = None) -> float:
        """Mean calls in flight since the previous call (the current count on the first)."""
        now = self._clock() if now is None else now
        with self._lock:
            area = self._area + self.in_flight * max(0.0, now - self._area_t)
            span = now - self._occupancy_t
            self._area, self._area_t, self._occupancy_t = 0.0, now, now
            return area / span if span > 0 else float(self.in_flight)

    def record(self, latency_ms: float, ok: bool = True, now: float | None = None) -> None:
        latency_ms = positive("latency_ms", latency_ms, strict=False)
        with self._lock:
            self._events.append((self._clock() if now is None else now, latency_ms, bool(ok)))

    @contextmanager
    def track(self):
        """Time the block; an exception escaping it counts as an error (and is re-raised)."""
        start = self._clock()
        ok = False
        self._step_in_flight(+1)
        try:
            yield
            ok = True
        finally:
            self._step_in_flight(-1)
            self.record((self._clock() - start) * 1000.0, ok)

    def stats(self, now: float | None = None) -> dict[str, float]:
        """{"request_rate": req/s, "p95_latency_ms", "error_rate"} over the window."""
        now = self._clock() if now is None else now
        with self._lock:
            while self._events and self._events[0][0] < now - self.window_s:
                self._events.popleft()
            events = list(self._events)
        span = min(self.window_s, max(now - self._start, 1e-9))
        if not events:
            return {"request_rate": 0.0, "p95_latency_ms": 0.0, "error_rate": 0.0}
        latencies = np.fromiter((e[1] for e in events), dtype=float, count=len(events))
        errors = sum(1 for e in events if not e[2])
        return {"request_rate": len(events) / span,
                "p95_latency_ms": float(np.percentile(latencies, 95)),
                "error_rate": errors / len(events)}
