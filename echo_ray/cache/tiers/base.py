"""Pieces every tier shares: the hit record, per-tier counters and a tag index."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any


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

    def keys(self, tags: Iterable[str]) -> set[Hashable]:
        found: set[Hashable] = set()
        for tag in tags:
            found |= self._keys.get(tag, set())
        return found

    def clear(self) -> None:
        self._keys.clear()
        self._tags.clear()
