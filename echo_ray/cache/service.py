"""CacheService: one MultiLevelCache inside a Ray actor, shared through its handle.

Other actors and deployments call it with `handle.get.remote(key)` etc. The
actor runs one call at a time, which is what MultiLevelCache (not thread-safe)
needs. Its object-store tier hands out zero-copy arrays to readers that use
`ObjectStoreTier` directly.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import ray

from echo_ray.cache.codec import decode, encode
from echo_ray.cache.config import CacheConfig
from echo_ray.cache.multilevel import MultiLevelCache

DEFAULT_NAME = "echo_ray_cache"
_MISSING: Any = object()


@ray.remote(num_cpus=0)
class CacheService:
    """The actor. Pass a CacheConfig built in the caller (its env, not the worker's)."""

    def __init__(self, config: CacheConfig | None = None):
        self._cache = MultiLevelCache(config)

    def ping(self) -> str:
        return "ok"

    def get(self, key: str, default: Any = None) -> Any:
        return self._cache.get(key, default)

    def lookup(self, key: str) -> tuple[bool, Any]:
        """(found, value): tells a cached None from a miss."""
        value = self._cache.get(key, _MISSING)
        return (False, None) if value is _MISSING else (True, value)

    def get_encoded(self, key: str) -> bytes | None:
        """The value in codec bytes (for HTTP clients asking for msgpack), or None."""
        value = self._cache.get(key, _MISSING)
        return None if value is _MISSING else encode(value)

    def get_many(self, keys: list[str]) -> dict[str, Any]:
        return self._cache.get_many(keys)

    def put(self, key: str, value: Any, ttl: float | None = None,
            tags: Iterable[str] | None = None) -> None:
        self._cache.put(key, value, ttl=ttl, tags=tags)

    def put_encoded(self, key: str, data: bytes, ttl: float | None = None,
                    tags: Iterable[str] | None = None) -> None:
        """Store a value sent as codec bytes (decoded here, never unpickled)."""
        self._cache.put(key, decode(data), ttl=ttl, tags=tags)

    def delete(self, key: str) -> bool:
        return self._cache.delete(key)

    def delete_by_tags(self, tags: list[str]) -> int:
        return self._cache.delete_by_tags(tags)

    def clear(self) -> None:
        self._cache.clear()

    def stats(self) -> dict[str, Any]:
        return self._cache.stats()


def cache_service(name: str = DEFAULT_NAME, config: CacheConfig | None = None,
                  detached: bool = False) -> Any:
    """Handle to the named CacheService, created on first use (config from echo_ray.settings)."""
    if config is None:
        from echo_ray.settings import get_settings

        config = get_settings().cache_config()
    # On the head, as the ingress that creates it: a 0-CPU actor left to Ray's default lands
    # on a worker node and keeps that node from ever idling (the autoscaler never removes it;
    # seen in tests/multinode/test_multinode_autoscaler.py), and goes with that node's loss.
    options: dict[str, Any] = {"name": name, "get_if_exists": True,
                               "resources": {"node:__internal_head__": 0.001}}
    if detached:
        options["lifetime"] = "detached"
    return CacheService.options(**options).remote(config)
