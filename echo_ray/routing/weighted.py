"""Smooth weighted round-robin (the nginx algorithm).

Each pick adds every replica's weight to its running score, takes the highest score and
subtracts the total weight from it. Over any window the picks match the weights exactly
and heavy replicas are interleaved rather than served in bursts. Weights come from the
`weights` config (by replica id); otherwise from the replica's reported `capacity` stat,
then its concurrency cap, then 1.
"""

from __future__ import annotations

from collections.abc import Mapping

from .base import ReplicaView, Strategy


class Weighted(Strategy):
    name = "weighted"

    def __init__(self, weights: Mapping[str, float] | None = None,
                 seed: int | None = None) -> None:
        super().__init__(seed)
        weights = dict(weights or {})
        for replica_id, weight in weights.items():
            if isinstance(weight, bool) or not isinstance(weight, int | float) or not weight > 0:
                raise ValueError(
                    f"weights[{replica_id!r}] must be a number > 0, got {weight!r}")
        self._weights = {str(k): float(v) for k, v in weights.items()}
        self._score: dict[str, float] = {}

    def weight_of(self, view: ReplicaView) -> float:
        if view.replica_id in self._weights:
            return self._weights[view.replica_id]
        capacity = view.stat("capacity")
        if capacity is not None and capacity > 0:
            return capacity
        if view.capacity is not None:
            return float(view.capacity)
        return 1.0

    def _rank(self, healthy: list[ReplicaView]) -> list[str]:
        weights = {view.replica_id: self.weight_of(view) for view in healthy}
        # Forget replicas that are gone so a returning one starts fresh.
        self._score = {rid: self._score.get(rid, 0.0) for rid in weights}
        for rid, weight in weights.items():
            self._score[rid] += weight
        # Highest score first; ties by id keep the order deterministic.
        ranked = sorted(weights, key=lambda rid: (-self._score[rid], rid))
        self._score[ranked[0]] -= sum(weights.values())
        return ranked
