"""W-TinyLFU (Einziger, Friedman & Manes 2017), the policy of Caffeine and theine.

New entries land in a small window LRU (~1% of capacity). An entry leaving the
window is a candidate for the main region, a segmented LRU (probation 20% /
protected 80%). It is admitted only if the frequency sketch says it is used more
often than the main region's victim (the probation LRU entry); otherwise the
candidate itself is dropped. So a burst of one-hit wonders cannot flush the
frequently used entries, while the window still serves recency.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from echo_ray.cache.eviction.base import EvictionPolicy
from echo_ray.cache.eviction.sketch import CountMinSketch


class TinyLFUPolicy(EvictionPolicy):
    """Capacity is in weight units when `maxbytes` is set, else in items.

    `window_fraction` (default 0.01) and `protected_fraction` (0.8 of the main
    region) follow Caffeine. The sketch's doorkeeper (on by default; it measured
    0.1-0.8 points better on the LIRS traces) keeps one-hit wonders out of the
    counters.
    """

    name = "tinylfu"

    def __init__(self, *args: Any, window_fraction: float = 0.01,
                 protected_fraction: float = 0.8, doorkeeper: bool = True, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if not 0.0 < window_fraction < 1.0:
            raise ValueError(f"window_fraction must be in (0, 1), got {window_fraction!r}")
        if not 0.0 < protected_fraction < 1.0:
            raise ValueError(f"protected_fraction must be in (0, 1), got {protected_fraction!r}")
        capacity = self.maxbytes if self.maxbytes is not None else self.maxsize
        self.capacity = capacity
        self.window_capacity = max(1, int(capacity * window_fraction))
        self.main_capacity = max(0, capacity - self.window_capacity)
        self.protected_capacity = int(self.main_capacity * protected_fraction)
        items_hint = self.maxsize if self.maxsize is not None else max(16, capacity // 1024)
        self.sketch = CountMinSketch(items_hint, doorkeeper=doorkeeper)
        self._window: OrderedDict = OrderedDict()
        self._probation: OrderedDict = OrderedDict()
        self._protected: OrderedDict = OrderedDict()
        self._weight: dict[Hashable, int] = {}
        self._window_weight = 0
        self._probation_weight = 0
        self._protected_weight = 0

    # -- frequency ------------------------------------------------------------------------
    def frequency(self, key: Hashable) -> int:
        return self.sketch.estimate(key)

    # -- hooks ----------------------------------------------------------------------------
    def _reserve(self, weight: int) -> None:
        """Nothing to do up front: the admission step runs after the insert."""

    def _on_insert(self, key: Hashable) -> None:
        self.sketch.increment(key)
        w = self._sizes[key] if self._sizes is not None else 1
        self._weight[key] = w
        self._window[key] = None
        self._window_weight += w
        self._admit_from_window()

    def _on_hit(self, key: Hashable) -> None:
        self.sketch.increment(key)
        if key in self._window:
            self._window.move_to_end(key)
        elif key in self._protected:
            self._protected.move_to_end(key)
        else:  # probation hit: promote, demoting protected's LRU entries if it overflows
            w = self._weight[key]
            del self._probation[key]
            self._probation_weight -= w
            self._protected[key] = None
            self._protected_weight += w
            while self._protected_weight > self.protected_capacity and len(self._protected) > 1:
                old, _ = self._protected.popitem(last=False)
                ow = self._weight[old]
                self._protected_weight -= ow
                self._probation[old] = None
                self._probation_weight += ow

    def _on_update(self, key: Hashable) -> None:
        new_w = self._sizes[key] if self._sizes is not None else 1
        delta = new_w - self._weight[key]
        self._weight[key] = new_w
        if key in self._window:
            self._window_weight += delta
        elif key in self._protected:
            self._protected_weight += delta
        else:
            self._probation_weight += delta
        self._on_hit(key)
        self._admit_from_window()

    def _on_remove(self, key: Hashable) -> None:
        w = self._weight.pop(key)
        if key in self._window:
            del self._window[key]
            self._window_weight -= w
        elif key in self._protected:
            del self._protected[key]
            self._protected_weight -= w
        else:
            del self._probation[key]
            self._probation_weight -= w

    def _victim(self) -> Hashable:
        for region in (self._probation, self._protected, self._window):
            if region:
                return next(iter(region))
        raise KeyError("victim requested from an empty TinyLFU policy")

    # -- admission ------------------------------------------------------------------------
    def _main_weight(self) -> int:
        return self._probation_weight + self._protected_weight

    def _admit_from_window(self) -> None:
        """Move window overflow to the main region, each through the admission filter."""
        while self._window_weight > self.window_capacity and len(self._window) > 1:
            candidate, _ = self._window.popitem(last=False)
            cw = self._weight[candidate]
            self._window_weight -= cw
            self._probation[candidate] = None
            self._probation_weight += cw
            while self._main_weight() > self.main_capacity:
                victim = next(iter(self._probation))
                if victim == candidate:
                    victim = next(iter(self._protected), candidate)
                if victim == candidate:
                    self._evict(candidate)
                    break
                if self.frequency(candidate) > self.frequency(victim):
                    self._evict(victim)
                else:
                    self._evict(candidate)
                    break
