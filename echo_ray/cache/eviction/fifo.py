"""First in, first out: evicts the entry stored longest ago; reads change nothing."""

from __future__ import annotations

from collections.abc import Hashable

from echo_ray.cache.eviction.base import EvictionPolicy


class FIFOPolicy(EvictionPolicy):
    """Insertion order of a plain dict is the queue; updates keep their place."""

    name = "fifo"

    def _victim(self) -> Hashable:
        return next(iter(self._data))
