"""Count-min sketch of access frequencies with periodic halving (TinyLFU's memory).

Four rows of saturating counters (0..15, like Caffeine's 4-bit counters, one
byte each here). Every `sample_size` increments all counters are halved, so the
sketch forgets old popularity and follows shifts in the workload. The optional
doorkeeper (TinyLFU paper, section 3.4.2) absorbs each key's first sighting in a
period in a set of hashes, so one-hit wonders never reach the counters.
"""

from __future__ import annotations

from collections.abc import Hashable

_MASK64 = (1 << 64) - 1
# Hashing the tuple (key, salt) runs CPython's xxHash-based tuple hash in C, which
# spreads even consecutive ints (an int's own hash is itself).
_SALT = 0x5BD1E995
_HALVE = bytes(i >> 1 for i in range(256))
_ODD = bytes(i & 1 for i in range(256))
DEPTH = 4
MAX_COUNT = 15


class CountMinSketch:
    """Frequency estimates for about `capacity` distinct hot keys."""

    def __init__(self, capacity: int, sample_factor: int = 10, doorkeeper: bool = False):
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be a positive int, got {capacity!r}")
        if not isinstance(sample_factor, int) or sample_factor < 1:
            raise ValueError(f"sample_factor must be a positive int, got {sample_factor!r}")
        width = 16
        while width < capacity:
            width <<= 1
        self.width = width
        self._mask = width - 1
        self._table = bytearray(DEPTH * width)
        self.sample_size = sample_factor * width
        self.additions = 0
        self.resets = 0
        self._door: set[int] | None = set() if doorkeeper else None

    def _rows(self, h: int) -> tuple[int, int, int, int]:
        """The key's counter in each of the four rows, by double hashing (lo + i*hi)."""
        lo, hi = h & 0xFFFFFFFF, (h >> 32) | 1
        mask, width = self._mask, self.width
        return (lo & mask, width + ((lo + hi) & mask), 2 * width + ((lo + 2 * hi) & mask),
                3 * width + ((lo + 3 * hi) & mask))

    def increment(self, key: Hashable) -> None:
        h = hash((key, _SALT)) & _MASK64
        door = self._door
        if door is not None and h not in door:
            door.add(h)  # first sighting this period: the doorkeeper absorbs it
        else:
            a, b, c, d = self._rows(h)
            table = self._table
            ta, tb, tc, td = table[a], table[b], table[c], table[d]
            if ta == tb == tc == td == MAX_COUNT:
                return  # saturated: not an addition
            if ta < MAX_COUNT:
                table[a] = ta + 1
            if tb < MAX_COUNT:
                table[b] = tb + 1
            if tc < MAX_COUNT:
                table[c] = tc + 1
            if td < MAX_COUNT:
                table[d] = td + 1
        self.additions += 1
        if self.additions >= self.sample_size:
            self.reset()

    def estimate(self, key: Hashable) -> int:
        h = hash((key, _SALT)) & _MASK64
        a, b, c, d = self._rows(h)
        table = self._table
        count = min(table[a], table[b], table[c], table[d])
        if self._door is not None and h in self._door:
            count += 1
        return count

    def reset(self) -> None:
        """Halve every counter (the 'aging' step); odd counters lose their half unit."""
        odd = self._table.translate(_ODD).count(1)
        self._table = bytearray(self._table.translate(_HALVE))
        self.additions = max(0, (self.additions - odd // DEPTH) // 2)
        self.resets += 1
        if self._door is not None:
            self._door.clear()
