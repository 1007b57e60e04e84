"""MultiLevelCache: one get/put API over L1, L2, object store, L3 and L4.

`get` looks through the tiers fastest first and copies a hit into every faster
tier (promotion), keeping its remaining TTL and its tags. `put` encodes the
value once and writes through to every configured tier. Invalidation
(`delete`, `delete_by_tags`, `clear`) reaches every tier, Redis included.

Tier order: L1 live objects -> L2 compressed -> object store (large numpy
arrays, only inside Ray) -> L3 disk -> L4 Redis. Not thread-safe: use one
instance per thread or actor (the CacheService actor serialises its calls).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from typing import Any

from echo_ray.cache.config import CacheConfig
from echo_ray.cache.entry import pack_entry, unpack_entry
from echo_ray.cache.metrics import MetricsExporter, ray_is_running
from echo_ray.cache.tiers.base import Hit
from echo_ray.cache.tiers.compressed import CompressedTier
from echo_ray.cache.tiers.memory import MemoryTier

MAX_KEY_LENGTH = 512
MAX_TAGS = 64
_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f]")
_MISSING: Any = object()


def check_key(key: Any, what: str = "key") -> str:
    """Keys (and tags) are non-empty str, at most 512 chars, no control characters."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"{what} must be a non-empty str, got {key!r}")
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"{what} must be at most {MAX_KEY_LENGTH} characters, got {len(key)}")
    if _BAD_CHARS.search(key):
        raise ValueError(f"{what} must not contain control characters, got {key!r}")
    return key


def check_tags(tags: Iterable[str] | None) -> tuple[str, ...]:
    if tags is None:
        return ()
    if isinstance(tags, str):
        raise ValueError(f"tags must be a list of str, not a single str ({tags!r})")
    tags = tuple(sorted({check_key(t, "tag") for t in tags}))
    if len(tags) > MAX_TAGS:
        raise ValueError(f"tags must hold at most {MAX_TAGS} tags, got {len(tags)}")
    return tags


class MultiLevelCache:
    """The cache. Build it from a CacheConfig (default: echo_ray.settings' `cache_config()`)."""

    def __init__(self, config: CacheConfig | None = None, *,
                 clock: Callable[[], float] = time.monotonic):
        if config is None:
            from echo_ray.settings import get_settings

            config = get_settings().cache_config()
        self.config = config
        policy, ttl = config.eviction_policy, config.default_ttl
        self.l1 = MemoryTier(config.l1_bytes, policy, ttl, clock=clock)
        self.l2 = (CompressedTier(config.l2_bytes, policy, ttl, min_bytes=config.l2_min_bytes,
                                  min_saving=config.l2_min_saving,
                                  level=config.compression_level, clock=clock)
                   if config.enable_compression else None)
        self.objects = None
        if config.object_store == "on" or (config.object_store == "auto" and ray_is_running()):
            from echo_ray.cache.tiers.object_store import ObjectStoreTier

            self.objects = ObjectStoreTier(config.namespace,
                                           max_bytes=int(config.object_store_max_mb * 2**20),
                                           min_bytes=config.object_store_min_bytes)
        self.l3 = None
        if config.cache_dir:
            from echo_ray.cache.tiers.disk import DiskTier

            self.l3 = DiskTier(config.cache_dir, config.namespace,
                               size_limit_bytes=int(config.disk_limit_mb * 2**20))
        self.l4 = None
        if config.redis_url:
            from echo_ray.cache.tiers.redis_tier import RedisTier

            self.l4 = RedisTier(config.redis_url, config.namespace)
        # Fastest first; the object store only ever holds live arrays.
        self.tiers = [t for t in (self.l1, self.l2, self.objects, self.l3, self.l4)
                      if t is not None]
        self.hits = 0
        self.misses = 0
        self._exporter = MetricsExporter(config.namespace)
        self._last_export = 0.0

    # -- reads ----------------------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        """The cached value, or `default`. A hit is promoted to the faster tiers."""
        check_key(key)
        for level, tier in enumerate(self.tiers):
            hit = tier.get(key)
            if hit is not None:
                value = self._promote(key, level, hit)
                if value is not _MISSING:
                    self.hits += 1
                    return value
        self.misses += 1
        return default

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        """Values of the keys that are cached; Redis is asked once for all the rest."""
        keys = [check_key(k) for k in keys]
        found: dict[str, Any] = {}
        remaining = []
        local = [t for t in self.tiers if t is not self.l4]
        for key in keys:
            for level, tier in enumerate(local):
                hit = tier.get(key)
                if hit is not None:
                    value = self._promote(key, level, hit)
                    if value is not _MISSING:
                        found[key] = value
                        break
            else:
                remaining.append(key)
        if self.l4 is not None and remaining:
            level = self.tiers.index(self.l4)
            for key, hit in self.l4.get_many(remaining).items():
                value = self._promote(key, level, hit)
                if value is not _MISSING:
                    found[key] = value
        self.hits += len(found)
        self.misses += len(keys) - len(found)
        return found

    def _promote(self, key: str, level: int, hit: Hit) -> Any:
        """Decode a hit from tier `level` and copy it into the faster tiers."""
        tier = self.tiers[level]
        if tier is self.l1:
            return hit.value
        blob: bytes | None = None
        if tier is self.objects:
            value, tags = hit.value, hit.tags
        else:
            blob = hit.value
            try:
                value, tags = unpack_entry(blob)
            except ValueError:  # unreadable bytes: drop them rather than fail the read
                tier.delete(key)
                return _MISSING
        ttl = hit.ttl
        if ttl is not None and ttl <= 0.001:
            return value  # about to expire: serve it, do not spread it
        nbytes = len(blob) if blob is not None else int(getattr(value, "nbytes", 0)) or 1
        for faster in self.tiers[:level]:
            if faster is self.l1:
                self.l1.put(key, value, nbytes, ttl, tags)
            elif faster is self.l2 and blob is not None:
                self.l2.put(key, blob, ttl, tags)
            elif faster is self.objects and self.objects.accepts(value):
                self.objects.put(key, value, ttl, tags)
        return value

    # -- writes ---------------------------------------------------------------------------
    def put(self, key: str, value: Any, ttl: float | None = None,
            tags: Iterable[str] | None = None) -> None:
        """Store `value` in every tier. `ttl` in seconds (default DEFAULT_TTL_SECONDS).

        Raises TypeError (before touching any tier) if the value cannot be encoded.
        """
        check_key(key)
        tags = check_tags(tags)
        if ttl is None:
            ttl = self.config.default_ttl
        elif isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0:
            raise ValueError(f"ttl must be a positive number of seconds or None, got {ttl!r}")
        blob = pack_entry(value, tags)
        self.l1.put(key, value, len(blob), ttl, tags)
        if self.l2 is not None:
            self.l2.put(key, blob, ttl, tags)
        if self.objects is not None:
            if self.objects.accepts(value):
                self.objects.put(key, value, ttl, tags)
            else:
                self.objects.forget(key)  # an older array under this key must not shadow it
        for tier in (self.l3, self.l4):
            if tier is not None:
                tier.put(key, blob, ttl, tags)
        self._maybe_export()

    def delete(self, key: str) -> bool:
        """Remove `key` from every tier; True if any tier had it."""
        check_key(key)
        removed = False
        for tier in self.tiers:
            removed |= bool(tier.delete(key))
        return removed

    def delete_by_tags(self, tags: Iterable[str]) -> int:
        """Remove every entry carrying any of `tags`, in every tier; returns how many keys."""
        tags = check_tags(tags)
        if not tags:
            return 0
        keys: set[str] = set()
        for tier in self.tiers:
            keys |= tier.keys_for_tags(tags)
        for tier in self.tiers:
            if tier is self.l4:
                self.l4.delete_many(keys)
                self.l4.delete_by_tags(tags)  # also drops the tag sets themselves
            elif tier is self.objects:
                self.objects.delete_many(keys)
            else:
                for key in keys:
                    tier.delete(key)
        return len(keys)

    def clear(self) -> None:
        """Empty every tier, touching only this cache's namespace in Redis and on disk."""
        for tier in self.tiers:
            tier.clear()

    # -- introspection --------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counters for the whole cache and per tier; exported as Ray metrics inside Ray."""
        tiers = {tier.name: tier.snapshot() for tier in self.tiers}
        lookups = self.hits + self.misses
        out = {
            "namespace": self.config.namespace,
            "hits": self.hits,
            "misses": self.misses,
            "hit_ratio": self.hits / lookups if lookups else 0.0,
            "tiers": tiers,
        }
        if self._exporter.export(tiers):
            self._last_export = time.monotonic()
        return out

    EXPORT_EVERY_S = 10.0

    def _maybe_export(self) -> None:
        """Inside Ray, refresh the exported metrics at most every EXPORT_EVERY_S on writes."""
        if ray_is_running() and time.monotonic() - self._last_export > self.EXPORT_EVERY_S:
            self.stats()

    def close(self) -> None:
        for tier in (self.l3, self.l4):
            if tier is not None:
                tier.close()

    def __enter__(self) -> MultiLevelCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
