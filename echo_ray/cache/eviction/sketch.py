"""Access frequencies with periodic halving (TinyLFU's memory), counted in C.

TinyLFU needs, per key, how often it was used lately, capped at 15 (Caffeine's 4-bit
counters) and halved every `sample_size` increments so old popularity fades and the
workload's shifts are followed. Caffeine approximates this with a count-min sketch
because its counters must fit in a few bits per key. Here the counts are exact: a
dict of key -> count, filled in batches by `collections.Counter.update`, whose loop
is CPython's C helper (`_count_elements`). An increment only appends the key to a
list; every `batch` keys (1/64 of a sample period, 1,024 at most) one C call adds
them all. So the per-access cost is a list append, where the count-min sketch
(hash, four row indices, a doorkeeper set) cost about half of W-TinyLFU's time per
request on the L1 benchmark (see benchmarks/RESULTS.md).

Exact counts have no hash collisions, and a key seen once counts 1 (what the sketch's
doorkeeper gave it), so no doorkeeper is needed. Memory: one dict entry per key seen
since the last halving, plus the keys that kept a count through it; a halving drops
the keys whose count falls to 0, so the dict holds at most about `2 * sample_size`
keys (10 x the capacity, rounded up to a power of two, per period).
Between flushes `estimate` misses at most `batch` recent increments.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable

MAX_COUNT = 15


class FrequencyCounter:
    """Frequency estimates, capped at `MAX_COUNT`, for a cache of about `capacity` keys."""

    def __init__(self, capacity: int, sample_factor: int = 10):
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be a positive int, got {capacity!r}")
        if isinstance(sample_factor, bool) or not isinstance(sample_factor, int) \
                or sample_factor < 1:
            raise ValueError(f"sample_factor must be a positive int, got {sample_factor!r}")
        width = 16
        while width < capacity:
            width <<= 1
        self.sample_size = sample_factor * width
        self.batch = max(16, min(1024, self.sample_size // 64))
        self._counts: Counter = Counter()
        self._pending: list[Hashable] = []
        self.additions = 0  # increments since the last halving
        self.counted = 0  # increments ever counted
        self.resets = 0
        # Bumped whenever an estimate may change (a flush or a halving), so callers may
        # keep an estimate until it moves.
        self.version = 0

    def increment(self, key: Hashable) -> None:
        pending = self._pending
        pending.append(key)
        if len(pending) >= self.batch:
            self.flush()

    def flush(self) -> None:
        """Count the pending keys now (then halve, if a sample period ended)."""
        pending = self._pending
        if not pending:
            return
        self._counts.update(pending)  # the loop runs in C
        self.additions += len(pending)
        self.counted += len(pending)
        pending.clear()
        self.version += 1
        if self.additions >= self.sample_size:
            self._halve()

    def estimate(self, key: Hashable) -> int:
        count = self._counts.get(key, 0)
        return count if count < MAX_COUNT else MAX_COUNT

    def reset(self) -> None:
        """Count what is pending, then halve every count (the 'aging' step)."""
        pending = self._pending
        if pending:
            self._counts.update(pending)
            self.additions += len(pending)
            self.counted += len(pending)
            pending.clear()
        self._halve()

    def _halve(self) -> None:
        """Every count is capped at `MAX_COUNT` and halved (rounding down, as the 4-bit
        counters do); keys left at 0 are forgotten."""
        counts = self._counts
        kept = {k: (c if c < MAX_COUNT else MAX_COUNT) >> 1 for k, c in counts.items() if c > 1}
        counts.clear()
        counts.update(kept)
        self.additions //= 2
        self.resets += 1
        self.version += 1

    def __len__(self) -> int:
        """Keys with a count (pending increments not included)."""
        return len(self._counts)
