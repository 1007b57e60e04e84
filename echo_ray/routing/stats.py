"""Per-replica load and health numbers for the router, and the matching health check.

`ReplicaStats` lives inside a replica: wrap each request in `track()` and it keeps the
requests in flight, a latency EWMA and the error rate over a sliding time window, and
reads the replica process's CPU and memory with psutil. `snapshot()` is what
`record_routing_stats()` returns (Serve ships it to every router as
`RunningReplica.routing_stats`); its `healthy` flag and `check_health()` come from the
same rule, so the router stops sending to a replica in the same period in which Serve
starts failing its health checks and later replaces it.

`RoutingStatsMixin` gives a deployment class both Serve hooks; override
`dependency_problem()` to report, e.g., that the actors it depends on are gone.
"""

from __future__ import annotations

import inspect
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import psutil

from echo_ray.checks import positive

DependencyCheck = Callable[[], "str | None"]


class ReplicaStats:
    """Thread-safe request accounting for one replica process."""

    def __init__(self, *, capacity: float | None = None, latency_alpha: float = 0.2,
                 error_window_s: float = 30.0, error_rate_threshold: float = 0.5,
                 min_requests: int = 10, clock: Callable[[], float] = time.monotonic,
                 max_window_entries: int = 10_000) -> None:
        self.capacity = None if capacity is None else positive("capacity", capacity)
        self.latency_alpha = positive("latency_alpha", latency_alpha)
        if self.latency_alpha > 1:
            raise ValueError(f"latency_alpha must be in (0, 1], got {latency_alpha!r}")
        self.error_window_s = positive("error_window_s", error_window_s)
        self.error_rate_threshold = positive("error_rate_threshold", error_rate_threshold)
        if self.error_rate_threshold > 1:
            raise ValueError(
                f"error_rate_threshold must be in (0, 1], got {error_rate_threshold!r}")
        if isinstance(min_requests, bool) or not isinstance(min_requests, int) \
                or min_requests < 1:
            raise ValueError(f"min_requests must be an int >= 1, got {min_requests!r}")
        self.min_requests = min_requests
        self._clock = clock
        self._lock = threading.Lock()
        self._in_flight = 0
        self._requests = 0
        self._latency_ewma: float | None = None
        self._outcomes: deque[tuple[float, bool]] = deque(maxlen=max_window_entries)
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # first call only starts the measurement

    # -- accounting -------------------------------------------------------------------
    @contextmanager
    def track(self) -> Iterator[None]:
        """Count the enclosed request: in flight while inside, then latency and outcome.

        Exceptions count as errors; cancellation (client went away) counts as neither.
        """
        with self._lock:
            self._in_flight += 1
        start = self._clock()
        outcome: bool | None = False
        try:
            yield
            outcome = True
        except Exception:
            raise
        except BaseException:
            outcome = None
            raise
        finally:
            with self._lock:
                self._in_flight -= 1
            if outcome is not None:
                self.record(self._clock() - start, ok=outcome)

    def record(self, latency_s: float, ok: bool = True) -> None:
        """Add one finished request (for callers that time requests themselves)."""
        if not latency_s >= 0:
            raise ValueError(f"latency_s must be >= 0, got {latency_s!r}")
        now = self._clock()
        with self._lock:
            self._requests += 1
            self._outcomes.append((now, bool(ok)))
            if self._latency_ewma is None:
                self._latency_ewma = latency_s
            else:
                self._latency_ewma += self.latency_alpha * (latency_s - self._latency_ewma)

    # -- readings ---------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def latency_ewma_s(self) -> float | None:
        return self._latency_ewma

    def window_counts(self) -> tuple[int, int]:
        """(requests, errors) finished within the last `error_window_s` seconds."""
        cutoff = self._clock() - self.error_window_s
        with self._lock:
            while self._outcomes and self._outcomes[0][0] < cutoff:
                self._outcomes.popleft()
            errors = sum(1 for _, ok in self._outcomes if not ok)
            return len(self._outcomes), errors

    @property
    def error_rate(self) -> float:
        total, errors = self.window_counts()
        return errors / total if total else 0.0

    # -- health -----------------------------------------------------------------------
    def health_problem(self, dependency_check: DependencyCheck | None = None) -> str | None:
        """Why this replica is unhealthy, or None. A raising check counts as a problem."""
        if dependency_check is not None:
            try:
                problem = dependency_check()
            except Exception as exc:  # the check itself failing means we cannot serve
                problem = f"dependency check raised {type(exc).__name__}: {exc}"
            if problem:
                return str(problem)
        total, errors = self.window_counts()
        if total >= self.min_requests and errors / total >= self.error_rate_threshold:
            return (f"error rate {errors}/{total} in the last {self.error_window_s:g}s "
                    f">= {self.error_rate_threshold:g}")
        return None

    def check_health(self, dependency_check: DependencyCheck | None = None) -> None:
        """Raise RuntimeError when unhealthy (Serve's `check_health` contract)."""
        problem = self.health_problem(dependency_check)
        if problem is not None:
            raise RuntimeError(f"replica unhealthy: {problem}")

    def snapshot(self, dependency_check: DependencyCheck | None = None) -> dict[str, Any]:
        """The routing stats dict: small, JSON-friendly, refreshed every stats period."""
        problem = self.health_problem(dependency_check)
        total, errors = self.window_counts()
        out: dict[str, Any] = {
            "cpu_percent": float(self._process.cpu_percent(None)),
            "memory_rss_bytes": int(self._process.memory_info().rss),
            "in_flight": self._in_flight,
            "latency_ewma_s": self._latency_ewma,
            "error_rate": errors / total if total else 0.0,
            "requests": self._requests,
            "healthy": problem is None,
            "health_problem": problem,
        }
        if self.capacity is not None:
            out["capacity"] = self.capacity
        return out


class RoutingStatsMixin:
    """Adds Serve's `record_routing_stats()` and `check_health()` to a deployment class.

    Use `with self.replica_stats.track():` around request handling and override
    `dependency_problem()` (sync or async, returns None or a reason string).
    `replica_stats_options` are passed to `ReplicaStats`.
    """

    replica_stats_options: ClassVar[dict[str, Any]] = {}

    @property
    def replica_stats(self) -> ReplicaStats:
        stats = self.__dict__.get("_replica_stats")
        return stats if stats is not None else self.init_replica_stats()

    def init_replica_stats(self, **options: Any) -> ReplicaStats:
        """(Re)create the stats with per-replica options, e.g. a measured `capacity`."""
        stats = ReplicaStats(**{**self.replica_stats_options, **options})
        self.__dict__["_replica_stats"] = stats
        return stats

    def dependency_problem(self) -> Any:
        """None when everything this replica needs is reachable, else a reason."""
        return None

    async def _current_dependency_problem(self) -> str | None:
        try:
            problem = self.dependency_problem()
            if inspect.isawaitable(problem):
                problem = await problem
        except Exception as exc:
            problem = f"dependency check raised {type(exc).__name__}: {exc}"
        return str(problem) if problem else None

    async def record_routing_stats(self) -> dict[str, Any]:
        problem = await self._current_dependency_problem()
        return self.replica_stats.snapshot(lambda: problem)

    async def check_health(self) -> None:
        problem = await self._current_dependency_problem()
        self.replica_stats.check_health(lambda: problem)
