"""Time to live: every entry expires; the one closest to expiry is evicted first."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable
from typing import Any

from echo_ray.cache.eviction.base import EvictionPolicy


class TTLPolicy(EvictionPolicy):
    """Entries without an explicit ttl get the policy's default `ttl`.

    A heap of (deadline, seq, key) orders entries by expiry; stale heap rows
    (updated or removed keys) are skipped lazily and the heap is rebuilt when
    they outnumber live ones. Expired entries are dropped before any live one is
    evicted, and `get` never returns an expired entry.
    """

    name = "ttl"

    def __init__(self, *args: Any, ttl: float = 300.0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0:
            raise ValueError(f"ttl must be a positive number of seconds, got {ttl!r}")
        self.default_ttl = float(ttl)
        self._heap: list[tuple[float, int, Hashable]] = []
        self._seq = itertools.count()

    def put(self, key: Hashable, value: Any, ttl: float | None = None) -> bool:
        self._drop_expired()
        return super().put(key, value, self.default_ttl if ttl is None else ttl)

    def _on_insert(self, key: Hashable) -> None:
        heapq.heappush(self._heap, (self._expiry[key], next(self._seq), key))
        if len(self._heap) > 2 * len(self._data) + 64:
            self._heap = [(d, next(self._seq), k) for k, d in self._expiry.items()]
            heapq.heapify(self._heap)

    _on_update = _on_insert

    def _peek_live(self) -> tuple[float, Hashable] | None:
        heap = self._heap
        while heap:
            deadline, _, key = heap[0]
            if self._expiry.get(key) == deadline:
                return deadline, key
            heapq.heappop(heap)
        return None

    def _drop_expired(self) -> None:
        now = self._clock()
        while (top := self._peek_live()) is not None and top[0] <= now:
            self._expire(top[1])

    def _victim(self) -> Hashable:
        top = self._peek_live()
        assert top is not None, "victim requested from an empty TTL policy"
        return top[1]
