"""Round-robin: each replica in turn, by replica id order.

The cursor remembers the last replica chosen rather than a counter, so when a replica
joins, leaves or turns unhealthy the rotation simply continues with the next id.
"""

from __future__ import annotations

from bisect import bisect_right

from .base import ReplicaView, Strategy


class RoundRobin(Strategy):
    name = "round_robin"

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(seed)
        self._last: str | None = None

    def _rank(self, healthy: list[ReplicaView]) -> list[str]:
        ids = sorted(view.replica_id for view in healthy)
        start = 0 if self._last is None else bisect_right(ids, self._last) % len(ids)
        ranked = ids[start:] + ids[:start]
        self._last = ranked[0]
        return ranked
