"""Pieces every tier shares: the hit record, per-tier counters and a tag index, and the
base of the in-process stores (`TaggedStore`: an eviction policy whose keys carry tags;
`LocalTier`: plus counters and amortised expiry).

The disk and Redis tiers keep their tags in their own storage, updated in the same
transaction (diskcache) or script (Lua) as the entry, so they do not use `TaggedStore`."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from echo_ray.cache.eviction import make_policy
from echo_ray.cache.eviction.base import MISSING


@dataclass(frozen=True)
class Hit:
    """A tier's answer: the stored thing (live value or entry bytes) and seconds left."""

    value: Any
    ttl: float | None  # None: no expiry
    tags: tuple[str, ...] = ()


@dataclass
class TierStats:
    """Counters a tier keeps; `snapshot` adds the tier's current size."""

    hits: int = 0
    misses: int = 0
    evictions: int = 0
    errors: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def snapshot(self, items: int | None, nbytes: int | None) -> dict[str, Any]:
        lookups = self.hits + self.misses
        out = {
            "hits": self.hits,
            "misses": self.misses,
            "hit_ratio": self.hits / lookups if lookups else 0.0,
            "evictions": self.evictions,
            "errors": self.errors,
            "items": items,
            "bytes": nbytes,
        }
        out.update(self.extra)
        return out


# In-process tiers drop expired entries as they go: each write first drops up to
# PURGE_BATCH of them (soonest deadline first), and so does every PURGE_EVERY_READS-th read,
# so a long-running process does not fill its memory budget with entries nobody reads
# again. With nothing expired this costs one clock read and one heap peek.
PURGE_BATCH = 32
PURGE_EVERY_READS = 64


class TagIndex:
    """tag -> keys and key -> tags, kept consistent when a key is re-tagged or leaves."""

    def __init__(self) -> None:
        self._keys: dict[str, set[Hashable]] = {}
        self._tags: dict[Hashable, tuple[str, ...]] = {}

    def set(self, key: Hashable, tags: Iterable[str]) -> None:
        self.discard(key)
        tags = tuple(tags)
        if tags:
            self._tags[key] = tags
            for tag in tags:
                self._keys.setdefault(tag, set()).add(key)

    def discard(self, key: Hashable) -> None:
        for tag in self._tags.pop(key, ()):
            keys = self._keys.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._keys[tag]

    def tags_of(self, key: Hashable) -> tuple[str, ...]:
        return self._tags.get(key, ())

    def keys(self, tags: Iterable[str]) -> builtins.set[Hashable]:  # `set` is a method here
        found: builtins.set[Hashable] = builtins.set()
        for tag in tags:
            found |= self._keys.get(tag, set())
        return found

    def clear(self) -> None:
        self._keys.clear()
        self._tags.clear()


class TaggedStore:
    """An eviction policy whose keys carry tags (L1, L2 and the object-store holder): a key's
    tags leave with it, whether it is deleted, evicted, expired or refused by the policy."""

    def __init__(self, policy: str, max_bytes: int, sizeof: Callable[[Any], int], *,
                 default_ttl: float | None = None, clock: Callable[[], float] | None = None):
        kwargs: dict[str, Any] = {}
        if policy == "ttl":
            kwargs["ttl"] = default_ttl or 300.0
        if clock is not None:
            kwargs["clock"] = clock
        self._policy = make_policy(policy, maxbytes=max_bytes, sizeof=sizeof,
                                   on_evict=self._on_evict, **kwargs)
        self._tags = TagIndex()

    def _on_evict(self, key: Hashable, value: Any) -> None:
        self._tags.discard(key)

    def _store(self, key: Hashable, value: Any, ttl: float | None, tags: Iterable[str]) -> bool:
        """Put `value` under `key` with `tags`; a refused put drops the key's old tags too."""
        if self._policy.put(key, value, ttl):
            self._tags.set(key, tags)
            return True
        self._tags.discard(key)
        return False

    def delete(self, key: Hashable) -> bool:
        self._tags.discard(key)
        return self._policy.delete(key)

    def keys_for_tags(self, tags: Iterable[str]) -> set[str]:
        return cast(set[str], self._tags.keys(tags))  # the tiers' keys are strings

    def clear(self) -> None:
        self._policy.clear()
        self._tags.clear()


class LocalTier(TaggedStore):
    """A tier in this process (L1, L2): hit/miss counters and amortised expiry."""

    def __init__(self, policy: str, max_bytes: int, sizeof: Callable[[Any], int], *,
                 default_ttl: float | None = None, clock: Callable[[], float] | None = None):
        super().__init__(policy, max_bytes, sizeof, default_ttl=default_ttl, clock=clock)
        self.stats = TierStats()
        self._reads = 0

    def _purge_some(self) -> None:
        """Drop up to PURGE_BATCH expired entries (amortised expiry, see above)."""
        self._policy.purge_expired(PURGE_BATCH)

    def _lookup(self, key: Hashable) -> Any:
        """The stored value, counted as a hit, or MISSING, counted as a miss."""
        self._reads += 1
        if self._reads % PURGE_EVERY_READS == 0:
            self._purge_some()
        value = self._policy.get(key, MISSING)
        if value is MISSING:
            self.stats.misses += 1
        else:
            self.stats.hits += 1
        return value

    def _hit(self, key: Hashable, value: Any) -> Hit:
        return Hit(value, self._policy.ttl_remaining(key), self._tags.tags_of(key))

    def snapshot(self) -> dict[str, Any]:
        return self._snapshot()

    def _snapshot(self, **extra: Any) -> dict[str, Any]:
        """The counters, the policy's and `extra` (a tier's own figures)."""
        self.stats.evictions = self._policy.evictions
        self.stats.extra.update(expirations=self._policy.expirations, policy=self._policy.name,
                                **extra)
        return self.stats.snapshot(len(self._policy), self._policy.currbytes)
