"""Time to live: every entry expires; the one closest to expiry is evicted first."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from echo_ray.cache.eviction.base import EvictionPolicy


class TTLPolicy(EvictionPolicy):
    """Entries without an explicit ttl get the policy's default `ttl`.

    Every entry has a deadline, so the base class's deadline heap orders all of
    them by expiry. Expired entries are dropped before any live one is evicted,
    and `get` never returns an expired entry.
    """

    name = "ttl"

    def __init__(self, *args: Any, ttl: float = 300.0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0:
            raise ValueError(f"ttl must be a positive number of seconds, got {ttl!r}")
        self.default_ttl = float(ttl)

    def put(self, key: Hashable, value: Any, ttl: float | None = None) -> bool:
        self.purge_expired()
        return super().put(key, value, self.default_ttl if ttl is None else ttl)

    def _victim(self) -> Hashable:
        top = self._next_deadline()
        assert top is not None, "victim requested from an empty TTL policy"
        return top[1]
