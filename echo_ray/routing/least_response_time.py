"""Least response time: lowest peak-EWMA latency x (in flight + 1) first.

The latency estimate per replica is a peak-EWMA as in Finagle/Linkerd: a slower
observation replaces the estimate at once; otherwise the estimate decays towards recent
observations, and towards zero while the replica is idle, with time constant `decay_s`.
So a replica that turns slow is avoided immediately and is trusted again gradually.
Multiplying by (in flight + 1) estimates how long a new request would wait behind the
ones already there. `decay_s` should be long compared with one request (Finagle uses
10 s); shorter makes the estimate chase noise. Estimates come from completions the
router observed; a replica without any uses its reported `latency_ewma_s` stat, else
the mean of the others, so a new replica is neither starved nor flooded. Failed
requests never lower an estimate (fast failures must not attract traffic).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from .base import ReplicaView, Strategy


class LeastResponseTime(Strategy):
    name = "least_response_time"

    def __init__(self, decay_s: float = 10.0, seed: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(seed)
        if isinstance(decay_s, bool) or not isinstance(decay_s, int | float) \
                or not decay_s > 0:
            raise ValueError(f"decay_s must be a number > 0, got {decay_s!r}")
        self.decay_s = float(decay_s)
        self.clock = clock
        self._cost: dict[str, tuple[float, float]] = {}  # replica -> (estimate, stamp)

    def latency_of(self, replica_id: str) -> float | None:
        """The current (decayed) latency estimate, or None before any observation."""
        entry = self._cost.get(replica_id)
        if entry is None:
            return None
        cost, stamp = entry
        return cost * math.exp(-max(0.0, self.clock() - stamp) / self.decay_s)

    def on_complete(self, replica_id: str, latency_s: float, ok: bool = True) -> None:
        if not latency_s >= 0:
            raise ValueError(f"latency_s must be >= 0, got {latency_s!r}")
        now = self.clock()
        entry = self._cost.get(replica_id)
        if entry is None or latency_s >= entry[0]:
            self._cost[replica_id] = (latency_s, now)
        elif ok:
            cost, stamp = entry
            w = math.exp(-max(0.0, now - stamp) / self.decay_s)
            self._cost[replica_id] = (cost * w + latency_s * (1.0 - w), now)

    def _rank(self, healthy: list[ReplicaView]) -> list[str]:
        estimates: dict[str, float | None] = {}
        for view in healthy:
            latency = self.latency_of(view.replica_id)
            estimates[view.replica_id] = latency if latency is not None \
                else view.stat("latency_ewma_s")
        known = [x for x in estimates.values() if x is not None]
        fallback = sum(known) / len(known) if known else 1.0

        def score(view: ReplicaView) -> float:
            latency = estimates[view.replica_id]
            return (fallback if latency is None else latency) * (view.in_flight + 1)

        return [view.replica_id for view in sorted(self._shuffled(healthy), key=score)]
