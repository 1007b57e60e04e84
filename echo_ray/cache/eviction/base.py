"""The one interface every eviction policy implements.

A policy is a bounded key -> value mapping that decides which entry leaves when
room is needed. Capacity is an item count (`maxsize`), a weight budget
(`maxbytes`, weights from the `sizeof` callable), or both. Entries may carry a
time to live measured on the injectable `clock`; an expired entry is never
returned, and a heap of deadlines lets `purge_expired(limit)` drop the expired
entries in deadline order at O(log n) each, without scanning the live ones. Subclasses only keep their ordering structure in step through the
`_on_*` hooks and name the next victim in `_victim`.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable, Hashable, Iterator
from typing import Any

MISSING: Any = object()


def _check_limit(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int or None, got {value!r}")
    return value


class EvictionPolicy:
    """Base class: storage, weights, TTL and counters shared by all policies."""

    name = "base"

    def __init__(
        self,
        maxsize: int | None = None,
        maxbytes: int | None = None,
        sizeof: Callable[[Any], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_evict: Callable[[Hashable, Any], None] | None = None,
    ):
        self.maxsize = _check_limit("maxsize", maxsize)
        self.maxbytes = _check_limit("maxbytes", maxbytes)
        if self.maxsize is None and self.maxbytes is None:
            raise ValueError("give maxsize (items) and/or maxbytes (weight); both are None")
        if self.maxbytes is not None and sizeof is None:
            raise ValueError("sizeof is required when maxbytes is set")
        if sizeof is not None and not callable(sizeof):
            raise ValueError(f"sizeof must be callable, got {sizeof!r}")
        if not callable(clock):
            raise ValueError(f"clock must be a callable returning seconds, got {clock!r}")
        self._sizeof = sizeof
        self._clock = clock
        self._on_evict = on_evict
        self._data: dict = {}
        self._sizes: dict | None = {} if sizeof is not None else None
        self._expiry: dict = {}  # key -> deadline on clock, only for entries with a ttl
        # (deadline, seq, key) rows, a min-heap; rows whose key left or got another deadline
        # are stale and skipped lazily, and the heap is rebuilt when they outnumber live ones.
        self._deadlines: list[tuple[float, int, Hashable]] = []
        self._seq = itertools.count()
        self.currbytes = 0  # total weight; stays 0 without sizeof
        self.evictions = 0
        self.expirations = 0

    # -- subclass hooks -------------------------------------------------------------------
    def _on_insert(self, key: Hashable) -> None:
        """A new key was stored."""

    def _on_update(self, key: Hashable) -> None:
        """An existing key got a new value (counts as a use)."""

    def _on_hit(self, key: Hashable) -> None:
        """An existing, live key was read."""

    def _on_remove(self, key: Hashable) -> None:
        """A key left the store (deleted, expired or evicted)."""

    def _victim(self) -> Hashable:
        """The key to evict next; only called when the store is not empty."""
        raise NotImplementedError

    # -- public interface -----------------------------------------------------------------
    def get(self, key: Hashable, default: Any = None) -> Any:
        value = self._data.get(key, MISSING)
        if value is MISSING:
            return default
        if self._expiry and self._is_expired(key):
            self._expire(key)
            return default
        self._on_hit(key)
        return value

    def put(self, key: Hashable, value: Any, ttl: float | None = None) -> bool:
        """Store `value`; returns False if it can never fit (it is then not stored)."""
        deadline = self._deadline(ttl)
        weight = self._weigh(value)
        if self.maxbytes is not None and weight > self.maxbytes:
            self.delete(key)
            return False
        data = self._data
        if key in data:
            data[key] = value
            if self._sizes is not None:
                self.currbytes += weight - self._sizes[key]
                self._sizes[key] = weight
            self._set_deadline(key, deadline)
            self._on_update(key)
            self._shrink()
        else:
            self._reserve(weight)
            data[key] = value
            if self._sizes is not None:
                self._sizes[key] = weight
                self.currbytes += weight
            self._set_deadline(key, deadline)
            self._on_insert(key)
            self._shrink()
        return key in data

    def delete(self, key: Hashable) -> bool:
        if key not in self._data:
            return False
        self._remove(key)
        return True

    def __contains__(self, key: Hashable) -> bool:
        if key not in self._data:
            return False
        return not (self._expiry and self._is_expired(key))

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[Hashable]:
        return iter(list(self._data))

    def peek(self, key: Hashable, default: Any = None) -> Any:
        """The live value without counting a use."""
        if key in self:
            return self._data[key]
        return default

    def ttl_remaining(self, key: Hashable) -> float | None:
        """Seconds left for `key`, or None when it has no expiry (or is absent)."""
        deadline = self._expiry.get(key)
        return None if deadline is None else max(0.0, deadline - self._clock())

    def purge_expired(self, limit: int | None = None) -> int:
        """Drop expired entries now, soonest deadline first, at most `limit` of them (None:
        all); returns how many left. Costs O(log n) per entry dropped and nothing for live
        entries, so callers can run it on every write."""
        if not self._deadlines:
            return 0
        now = self._clock()
        removed = 0
        while limit is None or removed < limit:
            top = self._next_deadline()
            if top is None or top[0] > now:
                break
            self._expire(top[1])
            removed += 1
        return removed

    def clear(self) -> None:
        for key in list(self._data):
            self._remove(key)
        self._deadlines.clear()

    # -- shared machinery -----------------------------------------------------------------
    def _weigh(self, value: Any) -> int:
        if self._sizeof is None:
            return 1
        weight = self._sizeof(value)
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
            raise ValueError(f"sizeof must return a non-negative int, got {weight!r}")
        return weight

    def _deadline(self, ttl: float | None) -> float | None:
        if ttl is None:
            return None
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0:
            raise ValueError(f"ttl must be a positive number of seconds or None, got {ttl!r}")
        return self._clock() + ttl

    def _set_deadline(self, key: Hashable, deadline: float | None) -> None:
        if deadline is None:
            self._expiry.pop(key, None)
        else:
            self._expiry[key] = deadline
            heapq.heappush(self._deadlines, (deadline, next(self._seq), key))
            if len(self._deadlines) > 2 * len(self._expiry) + 64:
                self._deadlines = [(d, next(self._seq), k) for k, d in self._expiry.items()]
                heapq.heapify(self._deadlines)

    def _next_deadline(self) -> tuple[float, Hashable] | None:
        """(deadline, key) of the entry that expires first, or None if none has a ttl."""
        heap, expiry = self._deadlines, self._expiry
        while heap:
            deadline, _, key = heap[0]
            if expiry.get(key) == deadline:
                return deadline, key
            heapq.heappop(heap)
        return None

    def _is_expired(self, key: Hashable) -> bool:
        deadline = self._expiry.get(key)
        return deadline is not None and deadline <= self._clock()

    def _over(self, extra_items: int = 0, extra_bytes: int = 0) -> bool:
        if self.maxsize is not None and len(self._data) + extra_items > self.maxsize:
            return True
        return self.maxbytes is not None and self.currbytes + extra_bytes > self.maxbytes

    def _reserve(self, weight: int) -> None:
        """Evict until one more entry of `weight` fits."""
        while self._data and self._over(1, weight):
            self._evict(self._victim())

    def _shrink(self) -> None:
        """Evict while over capacity (after an update grew an entry)."""
        while self._data and self._over():
            self._evict(self._victim())

    def _remove(self, key: Hashable) -> Any:
        value = self._data.pop(key)
        if self._sizes is not None:
            self.currbytes -= self._sizes.pop(key)
        self._expiry.pop(key, None)
        self._on_remove(key)
        return value

    def _evict(self, key: Hashable) -> None:
        value = self._remove(key)
        self.evictions += 1
        if self._on_evict is not None:
            self._on_evict(key, value)

    def _expire(self, key: Hashable) -> None:
        value = self._remove(key)
        self.expirations += 1
        if self._on_evict is not None:
            self._on_evict(key, value)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(len={len(self)}, maxsize={self.maxsize}, "
                f"maxbytes={self.maxbytes}, currbytes={self.currbytes})")
