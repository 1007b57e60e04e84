"""L1: live Python objects in this process, bounded by a share of MAX_CACHE_MEMORY_MB."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from echo_ray.cache.eviction import make_policy
from echo_ray.cache.eviction.base import MISSING
from echo_ray.cache.tiers.base import (
    PURGE_BATCH,
    PURGE_EVERY_READS,
    Hit,
    TagIndex,
    TierStats,
)


class MemoryTier:
    """Holds the value object itself (no decode on a hit). An entry's weight is the
    size of its encoded form, a stable, type-independent stand-in for its memory.
    Values are shared with callers, not copied: treat cached objects as read-only.
    """

    name = "l1"

    def __init__(self, max_bytes: int, policy: str = "lru", default_ttl: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        kwargs: dict[str, Any] = {}
        if policy == "ttl":
            kwargs["ttl"] = default_ttl or 300.0
        self._policy = make_policy(policy, maxbytes=max_bytes, sizeof=_weight, clock=clock,
                                   on_evict=self._on_evict, **kwargs)
        self._tags = TagIndex()
        self.stats = TierStats()
        self._reads = 0

    def _on_evict(self, key: str, entry: tuple[Any, int]) -> None:
        self._tags.discard(key)

    def _purge_some(self) -> None:
        """Drop up to PURGE_BATCH expired entries (amortised expiry; see tiers.base)."""
        self._policy.purge_expired(PURGE_BATCH)

    def get(self, key: str) -> Hit | None:
        self._reads += 1
        if self._reads % PURGE_EVERY_READS == 0:
            self._purge_some()
        entry = self._policy.get(key, MISSING)
        if entry is MISSING:
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return Hit(entry[0], self._policy.ttl_remaining(key), self._tags.tags_of(key))

    def put(self, key: str, value: Any, nbytes: int, ttl: float | None,
            tags: Iterable[str] = ()) -> bool:
        self._purge_some()
        stored = self._policy.put(key, (value, nbytes), ttl)
        if stored:
            self._tags.set(key, tags)
        else:
            self._tags.discard(key)
        return stored

    def delete(self, key: str) -> bool:
        self._tags.discard(key)
        return self._policy.delete(key)

    def keys_for_tags(self, tags: Iterable[str]) -> set[str]:
        return self._tags.keys(tags)

    def clear(self) -> None:
        self._policy.clear()
        self._tags.clear()

    def snapshot(self) -> dict[str, Any]:
        self.stats.evictions = self._policy.evictions
        self.stats.extra["expirations"] = self._policy.expirations
        self.stats.extra["policy"] = self._policy.name
        return self.stats.snapshot(len(self._policy), self._policy.currbytes)


def _weight(entry: tuple[Any, int]) -> int:
    return entry[1]
