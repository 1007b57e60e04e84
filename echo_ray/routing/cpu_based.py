"""CPU-based: fewest requests in flight per unit of reported CPU headroom.

Replicas report `cpu_percent` (utilisation of their process) every stats period. Ranking
by that number alone herds: between two reports every request sees the same readings
and goes to the same replica, whose queue then explodes (the simulator shows p99 an
order of magnitude worse than round-robin). So the score is
`(in flight + 1) / max(1 - cpu/100, min_headroom)`: live in-flight counts spread the
load, and a replica whose CPU is busy with work the router cannot see (expensive
requests, a neighbour) gets proportionally less. `min_headroom` caps the penalty so a
saturated replica is deprioritised, not abandoned. A replica that has not reported yet
counts as the average of those that have.
"""

from __future__ import annotations

from .base import ReplicaView, Strategy


class CpuBased(Strategy):
    name = "cpu_based"

    def __init__(self, min_headroom: float = 0.2, seed: int | None = None) -> None:
        super().__init__(seed)
        if isinstance(min_headroom, bool) or not isinstance(min_headroom, int | float) \
                or not 0 < min_headroom <= 1:
            raise ValueError(f"min_headroom must be a number in (0, 1], got {min_headroom!r}")
        self.min_headroom = float(min_headroom)

    def _rank(self, healthy: list[ReplicaView]) -> list[str]:
        readings = {view.replica_id: view.stat("cpu_percent") for view in healthy}
        known = [cpu for cpu in readings.values() if cpu is not None]
        fallback = sum(known) / len(known) if known else 0.0

        def score(view: ReplicaView) -> float:
            cpu = readings[view.replica_id]
            used = min(max(fallback if cpu is None else cpu, 0.0), 100.0) / 100.0
            return (view.in_flight + 1) / max(1.0 - used, self.min_headroom)

        return [view.replica_id for view in sorted(self._shuffled(healthy), key=score)]
