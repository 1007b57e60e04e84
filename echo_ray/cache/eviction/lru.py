"""Least recently used: evicts the entry read or written longest ago."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from echo_ray.cache.eviction.base import MISSING, EvictionPolicy


class LRUPolicy(EvictionPolicy):
    """An OrderedDict in recency order (oldest first); `move_to_end` marks a use.

    `get` and `put` have a fast path for the common case (count capacity, no
    weights, no TTLs in play) that skips the generic hooks, so a hit costs one
    dict lookup plus one `move_to_end`.
    """

    name = "lru"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._data = OrderedDict()
        # Bound once: saves two attribute lookups on every hit.
        self._lookup = self._data.get
        self._touch = self._data.move_to_end

    def get(self, key: Hashable, default: Any = None) -> Any:
        value = self._lookup(key, MISSING)
        if value is MISSING:
            return default
        if self._expiry and self._is_expired(key):
            self._expire(key)
            return default
        self._touch(key)
        return value

    def put(self, key: Hashable, value: Any, ttl: float | None = None) -> bool:
        if ttl is not None or self._sizes is not None or self._expiry:
            return super().put(key, value, ttl)
        data = self._data
        if key in data:
            data[key] = value
            data.move_to_end(key)
            return True
        if len(data) >= self.maxsize:
            old_key, old_value = data.popitem(last=False)
            self.evictions += 1
            if self._on_evict is not None:
                self._on_evict(old_key, old_value)
        data[key] = value
        return True

    def _on_update(self, key: Hashable) -> None:
        self._data.move_to_end(key)

    def _on_hit(self, key: Hashable) -> None:
        self._data.move_to_end(key)

    def _victim(self) -> Hashable:
        return next(iter(self._data))
