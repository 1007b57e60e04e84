"""What every routing strategy sees and returns, independent of Ray.

A strategy gets a list of `ReplicaView`s (one per replica: id, requests in flight, the
stats the replica last reported, whether it is healthy, its concurrency cap) and returns
replica ids ranked best first. Unhealthy replicas are dropped here, once, so no strategy
can pick one. Keeping this free of Ray lets the simulator and the unit tests drive the
exact classes that run inside Serve's router.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class ReplicaView:
    """A read-only snapshot of one replica at routing time."""

    replica_id: str
    in_flight: int = 0
    stats: Mapping[str, Any] = field(default_factory=dict)
    healthy: bool = True
    capacity: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.replica_id, str) or not self.replica_id:
            raise ValueError(f"replica_id must be a non-empty str, got {self.replica_id!r}")
        if isinstance(self.in_flight, bool) or not isinstance(self.in_flight, int) \
                or self.in_flight < 0:
            raise ValueError(f"in_flight must be an int >= 0, got {self.in_flight!r}")
        if not isinstance(self.stats, Mapping):
            raise TypeError(f"stats must be a mapping, got {type(self.stats).__name__}")
        if self.capacity is not None and not self.capacity > 0:
            raise ValueError(f"capacity must be > 0 or None, got {self.capacity!r}")

    def stat(self, key: str) -> float | None:
        """A numeric reported stat, or None when missing or not a number."""
        value = self.stats.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)


class Strategy(ABC):
    """Ranks healthy replicas; subclasses implement `_rank` on a non-empty healthy list."""

    name: ClassVar[str]

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed)

    def rank(self, replicas: Sequence[ReplicaView]) -> list[str]:
        """Replica ids best first; never contains an unhealthy replica; [] if none healthy."""
        seen: set[str] = set()
        healthy: list[ReplicaView] = []
        for view in replicas:
            if not isinstance(view, ReplicaView):
                raise TypeError(f"replicas must hold ReplicaView, got {type(view).__name__}")
            if view.replica_id in seen:
                raise ValueError(f"replicas has duplicate replica_id {view.replica_id!r}")
            seen.add(view.replica_id)
            if view.healthy:
                healthy.append(view)
        if not healthy:
            return []
        return self._rank(healthy)

    def choose(self, replicas: Sequence[ReplicaView]) -> str | None:
        """The single best replica id, or None when no replica is healthy."""
        ranked = self.rank(replicas)
        return ranked[0] if ranked else None

    def on_complete(self, replica_id: str, latency_s: float, ok: bool = True) -> None:
        """Feedback after a request finished; strategies that learn override this."""
        return None

    def _shuffled(self, views: Sequence[ReplicaView]) -> list[ReplicaView]:
        """A random order, used before a stable sort so ties break at random."""
        out = list(views)
        self._rng.shuffle(out)
        return out

    @abstractmethod
    def _rank(self, healthy: list[ReplicaView]) -> list[str]:
        """Rank a non-empty list of healthy replicas."""
