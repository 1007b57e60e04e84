"""Least frequently used with O(1) frequency buckets (Shah, Mitra & Matani 2010)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from echo_ray.cache.eviction.base import EvictionPolicy


class LFUPolicy(EvictionPolicy):
    """Each use moves a key from bucket f to bucket f+1; the victim is the least
    recently used key of the lowest non-empty bucket. Every step is O(1) except
    finding a new minimum after an arbitrary delete, which scans the buckets.
    """

    name = "lfu"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._freq: dict[Hashable, int] = {}
        self._buckets: dict[int, OrderedDict] = {}
        self._min_freq = 0

    def frequency(self, key: Hashable) -> int:
        return self._freq.get(key, 0)

    def _on_insert(self, key: Hashable) -> None:
        self._freq[key] = 1
        self._buckets.setdefault(1, OrderedDict())[key] = None
        self._min_freq = 1

    def _on_hit(self, key: Hashable) -> None:
        freq = self._freq[key]
        bucket = self._buckets[freq]
        del bucket[key]
        if not bucket:
            del self._buckets[freq]
            if self._min_freq == freq:
                self._min_freq = freq + 1
        self._freq[key] = freq + 1
        self._buckets.setdefault(freq + 1, OrderedDict())[key] = None

    _on_update = _on_hit

    def _on_remove(self, key: Hashable) -> None:
        freq = self._freq.pop(key)
        bucket = self._buckets[freq]
        del bucket[key]
        if not bucket:
            del self._buckets[freq]

    def _victim(self) -> Hashable:
        if self._min_freq not in self._buckets:
            self._min_freq = min(self._buckets)
        return next(iter(self._buckets[self._min_freq]))
