"""L2: zstandard-compressed entry bytes in this process.

Only entries worth it are kept: encoded size >= `min_bytes` (default 1 KiB) and
compression saving >= `min_saving` (default 20%). Smaller or incompressible
entries skip L2, where they would cost CPU and save little memory. Large entries
are judged on a 64 KiB sample first, so an incompressible 8 MB array costs one
small trial compression rather than a full one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import zstandard

from echo_ray.cache.eviction import make_policy
from echo_ray.cache.eviction.base import MISSING
from echo_ray.cache.tiers.base import (
    PURGE_BATCH,
    PURGE_EVERY_READS,
    Hit,
    TagIndex,
    TierStats,
)

SAMPLE_BYTES = 64 * 1024


class CompressedTier:
    """Stores `zstd(entry_bytes)`; weights are compressed sizes. Not thread-safe."""

    name = "l2"

    def __init__(self, max_bytes: int, policy: str = "lru", default_ttl: float | None = None,
                 min_bytes: int = 1024, min_saving: float = 0.2, level: int = 3,
                 clock: Callable[[], float] = time.monotonic):
        if isinstance(min_bytes, bool) or not isinstance(min_bytes, int) or min_bytes < 0:
            raise ValueError(f"min_bytes must be a non-negative int, got {min_bytes!r}")
        if not 0.0 <= min_saving < 1.0:
            raise ValueError(f"min_saving must be in [0, 1), got {min_saving!r}")
        kwargs: dict[str, Any] = {}
        if policy == "ttl":
            kwargs["ttl"] = default_ttl or 300.0
        self._policy = make_policy(policy, maxbytes=max_bytes, sizeof=len, clock=clock,
                                   on_evict=self._on_evict, **kwargs)
        self.min_bytes = min_bytes
        self.min_saving = min_saving
        self._compressor = zstandard.ZstdCompressor(level=level)
        self._decompressor = zstandard.ZstdDecompressor()
        self._tags = TagIndex()
        self.stats = TierStats()
        self._reads = 0
        self.raw_bytes_in = 0  # encoded bytes of every entry accepted
        self.compressed_bytes_in = 0  # their compressed size
        self.skipped_small = 0
        self.skipped_incompressible = 0

    def _on_evict(self, key: str, blob: bytes) -> None:
        self._tags.discard(key)

    @property
    def ratio(self) -> float:
        """Achieved compression ratio (raw / compressed) over everything accepted."""
        return self.raw_bytes_in / self.compressed_bytes_in if self.compressed_bytes_in else 0.0

    def _purge_some(self) -> None:
        """Drop up to PURGE_BATCH expired entries (amortised expiry; see tiers.base)."""
        self._policy.purge_expired(PURGE_BATCH)

    def get(self, key: str) -> Hit | None:
        self._reads += 1
        if self._reads % PURGE_EVERY_READS == 0:
            self._purge_some()
        blob = self._policy.get(key, MISSING)
        if blob is MISSING:
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return Hit(self._decompressor.decompress(blob), self._policy.ttl_remaining(key),
                   self._tags.tags_of(key))

    def put(self, key: str, entry: bytes, ttl: float | None, tags: Iterable[str] = ()) -> bool:
        """Compress and keep `entry` if it qualifies; otherwise drop any older copy."""
        self._purge_some()
        if len(entry) < self.min_bytes:
            self.skipped_small += 1
            self.delete(key)
            return False
        if len(entry) > 4 * SAMPLE_BYTES:
            middle = len(entry) // 2
            sample = entry[middle - SAMPLE_BYTES // 2: middle + SAMPLE_BYTES // 2]
            if len(self._compressor.compress(sample)) > (1.0 - self.min_saving) * len(sample):
                self.skipped_incompressible += 1
                self.delete(key)
                return False
        blob = self._compressor.compress(entry)
        if len(blob) > (1.0 - self.min_saving) * len(entry):
            self.skipped_incompressible += 1
            self.delete(key)
            return False
        if not self._policy.put(key, blob, ttl):
            self._tags.discard(key)
            return False
        self._tags.set(key, tags)
        self.raw_bytes_in += len(entry)
        self.compressed_bytes_in += len(blob)
        return True

    def delete(self, key: str) -> bool:
        self._tags.discard(key)
        return self._policy.delete(key)

    def keys_for_tags(self, tags: Iterable[str]) -> set[str]:
        return self._tags.keys(tags)

    def clear(self) -> None:
        self._policy.clear()
        self._tags.clear()

    def snapshot(self) -> dict[str, Any]:
        self.stats.evictions = self._policy.evictions
        self.stats.extra.update(
            expirations=self._policy.expirations,
            policy=self._policy.name,
            compression_ratio=round(self.ratio, 3),
            skipped_small=self.skipped_small,
            skipped_incompressible=self.skipped_incompressible,
        )
        return self.stats.snapshot(len(self._policy), self._policy.currbytes)
