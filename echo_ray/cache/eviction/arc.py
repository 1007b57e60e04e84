"""ARC, the adaptive replacement cache (Megiddo & Modha, FAST 2003).

Resident entries are split between T1 (seen once recently) and T2 (seen at least
twice); ghost lists B1 and B2 remember the keys recently evicted from each. A miss
that hits a ghost list shows which side was too small, and moves the target size
`p` of T1 toward it. So ARC adapts between recency and frequency with no tuning
knob, which makes it the yardstick for the adaptive W-TinyLFU.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from echo_ray.cache.eviction.base import EvictionPolicy


class ARCPolicy(EvictionPolicy):
    """Sizes are weights when `maxbytes` is set (a ghost keeps its last weight), else
    items; with unit weights every step is the paper's. Deletes and expiries leave no
    ghost: only replacement does. An item limit given beside `maxbytes` is enforced by
    the base class, which evicts through `_victim` like any other policy.
    """

    name = "arc"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        capacity = self.maxbytes if self.maxbytes is not None else self.maxsize
        assert capacity is not None  # the base refuses a policy with neither limit
        self.capacity: int = capacity
        self.p = 0.0  # target weight of T1
        self._t1: OrderedDict = OrderedDict()  # key -> weight, LRU first
        self._t2: OrderedDict = OrderedDict()
        self._b1: OrderedDict = OrderedDict()
        self._b2: OrderedDict = OrderedDict()
        self.t1_weight = self.t2_weight = self.b1_weight = self.b2_weight = 0

    # -- hooks ----------------------------------------------------------------------------
    def _reserve(self, weight: int) -> None:
        """Nothing up front: which list gives up an entry depends on the new key (ghost or
        not), so `_on_insert` makes the room."""

    def _on_insert(self, key: Hashable) -> None:
        w = self._sizes[key] if self._sizes is not None else 1
        c = self.capacity
        if key in self._b1:  # case II: T1 was too small
            delta = max(self.b2_weight / self.b1_weight, 1) if self.b1_weight else 1
            self.p = min(float(c), self.p + delta * w)
            self.b1_weight -= self._b1.pop(key)
            self._make_room(w, in_b2=False)
            self._t2[key] = w
            self.t2_weight += w
        elif key in self._b2:  # case III: T2 was too small
            delta = max(self.b1_weight / self.b2_weight, 1) if self.b2_weight else 1
            self.p = max(0.0, self.p - delta * w)
            self.b2_weight -= self._b2.pop(key)
            self._make_room(w, in_b2=True)
            self._t2[key] = w
            self.t2_weight += w
        else:  # case IV: a key ARC has not seen lately
            while self._b1 and self.t1_weight + self.b1_weight + w > c:
                self.b1_weight -= self._b1.popitem(last=False)[1]
            while self._t1 and self.t1_weight + w > c:  # T1 is the whole cache: no ghost
                self._evict(next(iter(self._t1)))
            while self._b2 and self._total() + w > 2 * c:
                self.b2_weight -= self._b2.popitem(last=False)[1]
            self._make_room(w, in_b2=False)
            self._t1[key] = w
            self.t1_weight += w
        # With unit weights the steps above keep both bounds; uneven weights may overshoot.
        while self._b1 and self.t1_weight + self.b1_weight > c:
            self.b1_weight -= self._b1.popitem(last=False)[1]
        while self._b2 and self._total() > 2 * c:
            self.b2_weight -= self._b2.popitem(last=False)[1]

    def _total(self) -> int:
        return self.t1_weight + self.t2_weight + self.b1_weight + self.b2_weight

    def _on_hit(self, key: Hashable) -> None:
        t1 = self._t1
        if key in t1:
            w = t1.pop(key)
            self.t1_weight -= w
            self._t2[key] = w
            self.t2_weight += w
        else:
            self._t2.move_to_end(key)

    def _on_update(self, key: Hashable) -> None:
        w = self._sizes[key] if self._sizes is not None else 1
        for lst in (self._t1, self._t2):
            if key in lst:
                delta = w - lst[key]
                lst[key] = w
                if lst is self._t1:
                    self.t1_weight += delta
                else:
                    self.t2_weight += delta
        self._on_hit(key)
        while self._over() and len(self._data) > 1:  # a grown entry makes room for itself
            self._replace(in_b2=False, keep=key)

    def _on_remove(self, key: Hashable) -> None:
        w = self._t1.pop(key, None)
        if w is not None:
            self.t1_weight -= w
        else:
            self.t2_weight -= self._t2.pop(key)

    def _victim(self) -> Hashable:
        """Used by the base class only (an extra item limit): the T1 or T2 LRU entry that
        ARC itself would replace next."""
        return self._replace_choice(in_b2=False, keep=None)

    # -- replacement ----------------------------------------------------------------------
    def _make_room(self, w: int, in_b2: bool) -> None:
        """Replace until a new entry of weight `w` (stored, not yet in T1/T2) fits."""
        while (self._t1 or self._t2) and self.t1_weight + self.t2_weight + w > self.capacity:
            self._replace(in_b2, keep=None)

    def _replace_choice(self, in_b2: bool, keep: Hashable | None) -> Hashable:
        """The paper's test: T1's LRU entry when T1 is above its target `p` (or at it, for a
        B2 ghost hit), else T2's; the other list when the chosen one is empty. `keep` (an
        entry being updated) is passed over unless it is alone."""
        t1, t2 = self._t1, self._t2
        from_t1 = t1 and (not t2 or self.t1_weight > self.p
                          or (in_b2 and self.t1_weight >= self.p))
        for lst in ((t1, t2) if from_t1 else (t2, t1)):
            for k in lst:
                if k != keep:
                    return k
        return keep

    def _replace(self, in_b2: bool, keep: Hashable | None) -> None:
        """ARC's REPLACE: the LRU entry of T1 (when T1 is over its target) or of T2 leaves
        the cache, and its key goes to the matching ghost list."""
        victim = self._replace_choice(in_b2, keep)
        in_t1 = victim in self._t1
        w = self._t1[victim] if in_t1 else self._t2[victim]
        self._evict(victim)
        if in_t1:
            self._b1[victim] = w
            self.b1_weight += w
        else:
            self._b2[victim] = w
            self.b2_weight += w
