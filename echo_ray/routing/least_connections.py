"""Least connections: fewest requests in flight first, ties broken at random.

The random tie-break matters: with a fixed order every idle router would pile its next
request onto the same replica.
"""

from __future__ import annotations

from .base import ReplicaView, Strategy


class LeastConnections(Strategy):
    name = "least_connections"

    def _rank(self, healthy: list[ReplicaView]) -> list[str]:
        ordered = sorted(self._shuffled(healthy), key=lambda view: view.in_flight)
        return [view.replica_id for view in ordered]
