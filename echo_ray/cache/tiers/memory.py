"""L1: live Python objects in this process, bounded by a share of MAX_CACHE_MEMORY_MB."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from echo_ray.cache.eviction.base import MISSING
from echo_ray.cache.tiers.base import Hit, LocalTier


class MemoryTier(LocalTier):
    """Holds the value object itself (no decode on a hit). An entry's weight is the
    size of its encoded form, a stable, type-independent stand-in for its memory.
    Values are shared with callers, not copied: treat cached objects as read-only.
    """

    name = "l1"

    def __init__(self, max_bytes: int, policy: str = "lru", default_ttl: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__(policy, max_bytes, _weight, default_ttl=default_ttl, clock=clock)

    def get(self, key: str) -> Hit | None:
        entry = self._lookup(key)
        return None if entry is MISSING else self._hit(key, entry[0])

    def put(self, key: str, value: Any, nbytes: int, ttl: float | None,
            tags: Iterable[str] = ()) -> bool:
        self._purge_some()
        return self._store(key, (value, nbytes), ttl, tags)


def _weight(entry: tuple[Any, int]) -> int:
    return entry[1]
