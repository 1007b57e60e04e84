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

from echo_ray.cache.eviction.base import MISSING
from echo_ray.cache.tiers.base import Hit, LocalTier
from echo_ray.checks import in_range, integer

SAMPLE_BYTES = 64 * 1024


class CompressedTier(LocalTier):
    """Stores `zstd(entry_bytes)`; weights are compressed sizes. Not thread-safe."""

    name = "l2"

    def __init__(self, max_bytes: int, policy: str = "lru", default_ttl: float | None = None,
                 min_bytes: int = 1024, min_saving: float = 0.2, level: int = 3,
                 clock: Callable[[], float] = time.monotonic):
        self.min_bytes = integer("min_bytes", min_bytes, minimum=0)
        self.min_saving = in_range("min_saving", min_saving, 0.0, 1.0, hi_open=True)
        super().__init__(policy, max_bytes, len, default_ttl=default_ttl, clock=clock)
        self._compressor = zstandard.ZstdCompressor(level=level)
        self._decompressor = zstandard.ZstdDecompressor()
        self.raw_bytes_in = 0  # encoded bytes of every entry accepted
        self.compressed_bytes_in = 0  # their compressed size
        self.skipped_small = 0
        self.skipped_incompressible = 0

    @property
    def ratio(self) -> float:
        """Achieved compression ratio (raw / compressed) over everything accepted."""
        return self.raw_bytes_in / self.compressed_bytes_in if self.compressed_bytes_in else 0.0

    def get(self, key: str) -> Hit | None:
        blob = self._lookup(key)
        return None if blob is MISSING else self._hit(key, self._decompressor.decompress(blob))

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
        if not self._store(key, blob, ttl, tags):
            return False
        self.raw_bytes_in += len(entry)
        self.compressed_bytes_in += len(blob)
        return True

    def snapshot(self) -> dict[str, Any]:
        return self._snapshot(
            compression_ratio=round(self.ratio, 3),
            skipped_small=self.skipped_small,
            skipped_incompressible=self.skipped_incompressible,
        )
